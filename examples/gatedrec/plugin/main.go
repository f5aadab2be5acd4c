// Command plugin serves the gated-recurrence example (package gatedrec) as a
// standalone liquid plugin binary: go build -o bin/plugins/gated-recurrence
// ./examples/gatedrec/plugin, then name that path as components.liquid.impl
// (experiments/graph-example.toml does).
package main

import (
	"liquidlab/examples/gatedrec"
	"liquidlab/framework/plugin"
	"liquidlab/framework/stage"
)

func main() { plugin.Serve(stage.KindLiquid, gatedrec.New()) }
