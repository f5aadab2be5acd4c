// Package stage defines the contract every model component speaks, in process and
// across the plugin boundary alike: a stage is one differentiable function of the
// model (flows, ODE dynamics, liquid cell, attention).
//
// The host owns parameters, optimiser, data and the clock; a stage holds no
// trainable state of its own. A call is coarse: one whole chunk through the stage.
//
//   - Describe(cfg) names the stage and lists its parameters (local names, shapes,
//     initialisers, checkpoint aliases), the state it carries between chunks, and the
//     options it accepts, so the host can validate an experiment before running it.
//   - Forward(cfg, params, inputs, state) returns outputs, the new state and, when
//     asked to, a handle to what it saved for the backward pass.
//   - Backward(handle, output grads) returns input grads and parameter grads, and
//     releases the handle.
//   - Release(handle) drops a saved handle without a backward pass.
//
// Tensors passed in are read, never modified, and may be retained only until the
// call returns, except that a stage may keep references to its inputs under a
// handle; the host does not modify them until Backward or Release.
package stage

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"liquidlab/framework/tensor"
)

// Kinds of stage, one per plugins/ folder.
const (
	KindFlows     = "flows"
	KindODE       = "ode"
	KindLiquid    = "liquid"
	KindAttention = "attention"
)

// Kinds lists the stage kinds in pipeline order.
var Kinds = []string{KindFlows, KindODE, KindAttention, KindLiquid}

// Init says how the host initialises a parameter.
//
//	"zeros", "ones", "const:V", "normal:STD", "uniform:BOUND",
//	"linear_weight" / "linear_bias" (PyTorch nn.Linear's default, fan-in = last dim
//	of the weight), "embedding" (N(0,1), row PaddingRow zeroed).
type Init string

// ParamSpec declares one parameter.
type ParamSpec struct {
	Name    string   // local name, e.g. "initial_proj.weight"; the host adds the stage prefix
	Shape   []int    // [] for a scalar
	Init    Init     //
	FanIn   int      // for linear_weight / linear_bias
	Aliases []string // further local names the same tensor has in a checkpoint
	NoGrad  bool     // part of the state_dict but never receives a gradient
}

// StateSpec declares a tensor a stage carries from chunk to chunk; -1 stands for
// the batch size.
type StateSpec struct {
	Name  string
	Shape []int
}

// OptionSpec declares an option a stage accepts in the experiment.
type OptionSpec struct {
	Name    string
	Type    string // "string", "int", "float", "bool"
	Default string
	Choices []string // for strings; empty means any
	Help    string
}

// Description is what Describe returns.
type Description struct {
	Kind    string
	Name    string
	Version string
	Params  []ParamSpec
	State   []StateSpec
	Options []OptionSpec
	Inputs  []string
	Outputs []string
	// Memory is the stage's own estimate of its activations for the host's
	// memory budget; nil: unknown (see MemoryHint). The plugin protocol carries
	// it (StageDescription.memory).
	Memory *MemoryHint
}

// Config is a stage's configuration: the model's dimensions and the stage's
// options, both as given in the experiment (options already validated and with
// defaults filled in by the host).
type Config struct {
	Dims    map[string]int
	Options map[string]string
}

// Dim returns a dimension or an error naming it.
func (c Config) Dim(name string) (int, error) {
	v, ok := c.Dims[name]
	if !ok {
		return 0, fmt.Errorf("dimension %q is not set", name)
	}
	return v, nil
}

// String returns a canonical text form, used to cache parsed configurations.
func (c Config) String() string {
	keys := make([]string, 0, len(c.Dims)+len(c.Options))
	for k := range c.Dims {
		keys = append(keys, "d:"+k)
	}
	for k := range c.Options {
		keys = append(keys, "o:"+k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		if k[0] == 'd' {
			s += k + "=" + strconv.Itoa(c.Dims[k[2:]]) + ";"
		} else {
			s += k + "=" + strconv.Quote(c.Options[k[2:]]) + ";"
		}
	}
	return s
}

// ForwardRequest is one chunk through a stage.
type ForwardRequest struct {
	Params   tensor.Map // by local name
	Inputs   tensor.Map
	State    tensor.Map // nil or empty on the first chunk
	NeedGrad bool       // save what Backward needs and return a handle
}

// ForwardResult is what Forward returns.
type ForwardResult struct {
	Outputs tensor.Map
	State   tensor.Map
	Handle  uint64             // 0 when nothing was saved
	Stats   map[string]float64 // e.g. "nfe", "accepted", "rejected"
}

// BackwardResult is what Backward returns.
type BackwardResult struct {
	InputGrads tensor.Map // by input name; inputs with no gradient are absent
	ParamGrads tensor.Map // by local parameter name; NoGrad parameters are absent
}

// Stage is the contract.
type Stage interface {
	Describe(ctx context.Context, cfg Config) (*Description, error)
	Forward(ctx context.Context, cfg Config, req *ForwardRequest) (*ForwardResult, error)
	Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*BackwardResult, error)
	Release(ctx context.Context, handle uint64) error
}
