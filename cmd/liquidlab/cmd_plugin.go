package main

import (
	"fmt"

	"liquidlab/framework/plugin"
)

// `liquidlab plugin serve <kind> <name>` is how the host runs its built-in
// stages as go-plugin subprocesses (see plugin.Builtin). Started by hand it
// only prints that it is a plugin and exits.
func init() {
	register("plugin", command{
		summary: "serve a built-in stage as a plugin process (started by liquidlab itself)",
		hidden:  true,
		run:     runPlugin,
	})
}

func runPlugin(e *env, args []string) error {
	const synopsis = "plugin serve <kind> <name>"
	if len(args) == 0 || args[0] != "serve" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(e.stderr, "Usage: liquidlab %s\n\nServes a built-in stage over the plugin protocol; liquidlab starts it itself.\n", synopsis)
			return nil
		}
		return fmt.Errorf("plugin: expected %q: %w", synopsis, errUsage)
	}
	fs := newFlags(e, "plugin serve", synopsis)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("plugin serve: expected <kind> <name>, got %d arguments: %w", fs.NArg(), errUsage)
	}
	kind, name := fs.Arg(0), fs.Arg(1)
	impl, err := builtinStage(kind, name)
	if err != nil {
		return fmt.Errorf("plugin serve: %w", err)
	}
	plugin.Serve(kind, impl)
	return nil
}
