package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// Shells with a completion script.
var completionShells = []string{"bash", "zsh", "fish"}

func completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `completion prints a script that completes nszone's commands, flags and zone
names (read from the zones file: -c FILE on the command line, else
$NSZONE_CONFIG, else /etc/nszone/zones.yaml) in bash, zsh or fish.

make install puts them where the shells look for them:
  bash  PREFIX/share/bash-completion/completions/nszone  (needs bash-completion)
  zsh   PREFIX/share/zsh/site-functions/_nszone
  fish  PREFIX/share/fish/vendor_completions.d/nszone.fish
To try one in the current shell instead: source <(nszone completion bash).`,
		Example: `  source <(nszone completion bash)
  nszone completion zsh > "${fpath[1]}/_nszone"
  nszone completion fish > ~/.config/fish/completions/nszone.fish`,
		ValidArgs:         completionShells,
		ValidArgsFunction: cobra.FixedCompletions(completionShells, cobra.ShellCompDirectiveNoFileComp),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(completionShells, args[0]) {
				return usagef("completion: name one shell: %s", strings.Join(completionShells, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

// addCompletions teaches the commands to complete zone names, the zones
// file and the values of -o and --format.
func addCompletions(root *cobra.Command, o *options) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "up", "down", "status", "check", "log":
			c.ValidArgsFunction = completeZones(o, true)
		case "exec", "unit":
			c.ValidArgsFunction = completeZones(o, false)
		}
		if c.Flags().Lookup("config") != nil {
			_ = c.MarkFlagFilename("config", "yaml", "yml")
		}
		if c.Flags().Lookup("output") != nil {
			_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
		}
		if c.Flags().Lookup("format") != nil {
			_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"dot", "mermaid"}, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

// completeZones completes the names of the zones file's zones, each with its
// allow list as the description. multi: any number of zones (up, down, ...);
// else one zone, then the shell's own completion (exec's program, unit's
// service).
func completeZones(o *options, multi bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !multi && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault // the program and its arguments
		}
		f, err := loadConfig(o)
		if err != nil {
			return cobra.AppendActiveHelp(nil, "no zone names: "+err.Error()), cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, z := range f.Zones {
			if slices.Contains(args, z.Name) || !strings.HasPrefix(z.Name, toComplete) {
				continue
			}
			allow := make([]string, len(z.Allow))
			for i, t := range z.Allow {
				allow[i] = t.String()
			}
			desc := "allow nothing"
			if len(allow) > 0 {
				desc = "allow " + strings.Join(allow, ", ")
			}
			out = append(out, cobra.CompletionWithDesc(z.Name, desc))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
