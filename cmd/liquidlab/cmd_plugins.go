package main

import (
	"context"
	"fmt"
	"strings"

	"liquidlab/framework/stage"
)

func init() {
	register("plugins", command{summary: "list the built-in components with their versions and options", run: cmdPlugins})
}

func cmdPlugins(e *env, args []string) error {
	fs := newFlags(e, "plugins", "plugins\n\nLists the built-in components by kind: name, version, inputs, outputs and the\noptions an experiment may set under [components.<kind>] options = { … }.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Describe needs dimensions; the seed README's configuration serves.
	cfg := stage.Config{Dims: map[string]int{"vocab_size": 32000, "embedding_dim": 512, "latent_dim": 128,
		"hidden_size": 256, "hidden_dim": 128, "num_flows": 4}, Options: map[string]string{}}
	for _, c := range builtinRegistry().List() {
		d, err := c.New().Describe(context.Background(), cfg)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.Kind, c.Name, err)
		}
		fmt.Fprintf(e.stdout, "%s/%s %s  (inputs %s → outputs %s)\n", c.Kind, d.Name, d.Version, strings.Join(d.Inputs, ", "), strings.Join(d.Outputs, ", "))
		for _, o := range d.Options {
			ch := ""
			if len(o.Choices) > 0 {
				ch = " {" + strings.Join(o.Choices, ", ") + "}"
			}
			fmt.Fprintf(e.stdout, "    %-14s %-6s default %-8q%s  %s\n", o.Name, o.Type, o.Default, ch, o.Help)
		}
		if len(d.State) > 0 {
			var names []string
			for _, s := range d.State {
				names = append(names, s.Name)
			}
			fmt.Fprintf(e.stdout, "    carries state between chunks: %s\n", strings.Join(names, ", "))
		}
	}
	fmt.Fprintln(e.stdout, "\nA plugin binary (go build ./plugins/<kind>) is selected by path: impl = \"./path/to/binary\".")
	return nil
}
