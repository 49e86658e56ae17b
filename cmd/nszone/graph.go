package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/graph"
)

func graphCmd(o *options) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "graph [-c FILE] [--format dot|mermaid]",
		Short: "Draw the zones file: host, uplink, LAN, internet, zones and what each may reach",
		Long: `graph draws the zones file as a Graphviz DOT (default) or Mermaid picture: the
host with its uplink, the LAN, the internet, and every zone joined to the host
by its link, with one arrow to each place its policy lets it open connections
to (labelled with the allow terms, pinholes included). It reads only the file:
no zone needs to be up, and no root is needed.`,
		Example: `  nszone graph | dot -Tsvg -o zones.svg
  nszone graph -c zones.yaml --format mermaid`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(graph.Formats, format) {
				return usagef("--format %q: want %s", format, strings.Join(graph.Formats, " or "))
			}
			f, err := loadConfig(o)
			if err != nil {
				return err
			}
			out, err := graph.Render(f, format)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), out)
			return err
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVar(&format, "format", graph.DOT, "dot or mermaid")
	return c
}
