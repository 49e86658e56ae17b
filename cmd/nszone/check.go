package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/check"
	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/zones"
)

func checkCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "check [-c FILE] [ZONE...] [-o table|json]",
		Short: "Prove each zone's policy by probing from inside it",
		Long: `check derives from each zone's policy what it should reach, then tries it from
inside the zone with real connections, on IPv4 and IPv6:

  internet, lan  TCP to the zones file's check.internet and check.lan targets
                 (defaults: 1.1.1.1:443 and [2606:4700:4700::1111]:443; the
                 host's default gateways on ports 53 and 80)
  host           TCP and UDP to a listener check opens briefly on the host, at
                 the zone's gateway addresses and every other host address
  zone:NAME      TCP and UDP to a listener check opens in each other zone
  dns            a DNS query (check.dns, default example.com) to the zone's
                 servers and the host's upstream servers
  pinhole        each ADDR:PORT term of the zone's allow list

A target outside nszone that does not answer the host itself is skipped: it
proves nothing. Exit status 0 when every observation matches the policy, 1 when
one does not.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return withManager(cmd, o, false, func(m *zones.Manager, f *config.File) error {
				rep, err := check.Run(m, f, args)
				if err != nil {
					return err
				}
				if o.output == "json" {
					if err := writeJSON(cmd, rep); err != nil {
						return err
					}
				} else {
					printCheck(cmd, rep)
				}
				if bad, total := rep.Mismatches(); bad > 0 {
					return exitError{exitFailed, fmt.Sprintf("check: %d of %d observations do not match the policy", bad, total)}
				}
				return nil
			})
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return c
}

func printCheck(cmd *cobra.Command, rep *check.Report) {
	out := cmd.OutOrStdout()
	if len(rep.Zones) == 0 {
		fmt.Fprintln(out, "no zone is up: nothing to check")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tCLASS\tTARGET\tPROTO\tEXPECTED\tOBSERVED\tOK\t")
	for _, z := range rep.Zones {
		for _, r := range z.Results {
			mark := "ok"
			switch {
			case !r.OK:
				mark = "MISMATCH"
			case r.Observed == "skipped":
				mark = "-"
			}
			note := ""
			if !r.OK || r.Observed == "skipped" {
				note = r.Note
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", z.Name, r.Class, r.Target, r.Proto, r.Expected, r.Observed, mark, note)
		}
	}
	w.Flush()
	if bad, total := rep.Mismatches(); bad == 0 {
		fmt.Fprintf(out, "all %d observations match the policy\n", total)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(out, n)
	}
}
