package main

import (
	"liquidlab/examples/gatedrec"
	"liquidlab/framework/registry"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/causal"
	"liquidlab/plugins/attention/causalgraph"
	"liquidlab/plugins/attention/singlequery"
	"liquidlab/plugins/flows/coupling"
	"liquidlab/plugins/flows/couplinggraph"
	"liquidlab/plugins/flows/realnvp"
	"liquidlab/plugins/liquid/adaptive"
	"liquidlab/plugins/liquid/cfc"
	"liquidlab/plugins/liquid/ltc"
	"liquidlab/plugins/liquid/scan"
	"liquidlab/plugins/liquid/scangraph"
	"liquidlab/plugins/ode/odefunc"
	"liquidlab/plugins/ode/odefuncgraph"
)

// builtinComponents are the stage implementations compiled into this binary. Add
// a component here to make it selectable by name in experiments.
var builtinComponents = []registry.Component{
	{Kind: stage.KindFlows, Name: "coupling", New: func() stage.Stage { return coupling.New() }},
	{Kind: stage.KindFlows, Name: "realnvp", New: func() stage.Stage { return realnvp.New() }},
	{Kind: stage.KindODE, Name: "odefunc", New: func() stage.Stage { return odefunc.New() }},
	{Kind: stage.KindAttention, Name: "singlequery", New: func() stage.Stage { return singlequery.New() }},
	{Kind: stage.KindAttention, Name: "causal", New: func() stage.Stage { return causal.New() }},
	{Kind: stage.KindLiquid, Name: "ltc", New: func() stage.Stage { return ltc.New() }},
	{Kind: stage.KindLiquid, Name: "scan", New: func() stage.Stage { return scan.New() }},
	{Kind: stage.KindLiquid, Name: "cfc", New: func() stage.Stage { return cfc.New() }},
	{Kind: stage.KindLiquid, Name: "adaptive", New: func() stage.Stage { return adaptive.New() }},
	// graph components (framework/graphstage): gorgonia forward graphs, symbolic backward
	{Kind: stage.KindLiquid, Name: "gated-recurrence", New: func() stage.Stage { return gatedrec.New() }},
	{Kind: stage.KindFlows, Name: couplinggraph.Name, New: func() stage.Stage { return couplinggraph.New() }},
	{Kind: stage.KindLiquid, Name: scangraph.Name, New: func() stage.Stage { return scangraph.New() }},
	{Kind: stage.KindODE, Name: odefuncgraph.Name, New: func() stage.Stage { return odefuncgraph.New() }},
	{Kind: stage.KindAttention, Name: causalgraph.Name, New: func() stage.Stage { return causalgraph.New() }},
}

// builtinRegistry is the registry of builtinComponents, sorted.
func builtinRegistry() *registry.Registry {
	r, err := registry.FromList(builtinComponents)
	if err != nil {
		panic(err) // a duplicate in the list above is a programmer error
	}
	return r
}

// builtinStage returns a new instance of a built-in implementation.
func builtinStage(kind, name string) (stage.Stage, error) { return builtinRegistry().New(kind, name) }

// builtinNames lists the built-in implementation names per kind, sorted.
func builtinNames() map[string][]string {
	out := map[string][]string{}
	r := builtinRegistry()
	for _, k := range stage.Kinds {
		out[k] = r.Names(k)
	}
	return out
}

// defaultNames are the seed's implementations, by kind.
var defaultNames = map[string]string{
	stage.KindFlows:     "coupling",
	stage.KindODE:       "odefunc",
	stage.KindAttention: "singlequery",
	stage.KindLiquid:    "ltc",
}

// defaultBuiltins returns an in-process instance of the seed's implementation of
// every kind.
func defaultBuiltins() map[string]stage.Stage {
	out := map[string]stage.Stage{}
	for kind, name := range defaultNames {
		st, err := builtinStage(kind, name)
		if err != nil {
			panic(err) // defaultNames names a component the list lacks: a programmer error
		}
		out[kind] = st
	}
	return out
}
