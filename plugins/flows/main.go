// Command flows is the standalone plugin binary of the flows stage: it serves
// the default implementation, coupling.New(), over liquidlab's plugin protocol.
//
// It is also the example to copy for a plugin of your own. Implement
// stage.Stage (liquidlab/framework/stage) in a package, then write a main like
// this one that calls plugin.Serve with the stage's kind and your value:
//
//	package main
//
//	import (
//		"liquidlab/framework/plugin"
//		"liquidlab/framework/stage"
//
//		"example.com/mystage"
//	)
//
//	func main() { plugin.Serve(stage.KindFlows, mystage.New()) }
//
// Build it (go build -o myflows .) and name the binary in an experiment by
// path, optionally pinned by its sha256 (sha256sum myflows). liquidlab starts it
// as a subprocess, talks gRPC to it through hashicorp/go-plugin with tensors in
// shared memory, and stops it when done; the process also exits when liquidlab
// dies. Run directly, the binary only says that it is a plugin. Log with hclog
// to stderr; LIQUIDLAB_PLUGIN_LOG_LEVEL sets the level.
package main

import (
	"liquidlab/framework/plugin"
	"liquidlab/framework/stage"
	"liquidlab/plugins/flows/coupling"
)

func main() { plugin.Serve(stage.KindFlows, coupling.New()) }
