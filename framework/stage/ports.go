package stage

// Port names: the names of the tensors stages exchange, one place for the host,
// the built-in components and plugin authors alike. A kind's inputs and outputs
// are those of its built-in implementations (`liquidlab plugins` lists them).
const (
	PortX          = "x"          // flows input: embedded tokens [B,S,D]
	PortZ          = "z"          // flows output / ode input: reduced vector [B,S,L]
	PortLDJ        = "ldj"        // flows output: log-det of the Jacobian [B,S]
	PortTSpan      = "t_span"     // ode input: integration interval [2]
	PortE          = "e"          // ode output / attention and liquid input: [B,S,H]
	PortTimestamps = "timestamps" // attention and liquid input: [B,S]
	PortH          = "h"          // liquid state / hidden vector [B,H]
	PortC          = "c"          // attention output: context [B,H]
	PortW          = "w"          // attention output: weights [B,S]
	PortScore      = "score"      // single-query attention output: raw scores [B,S]
	PortY          = "y"          // per-token output feeding the head [B,S,H]
	// PortRows is an optional per-token input [B,S] the host sends to the
	// attention stage when it reads only some rows of the output y (1 where it
	// reads, 0 elsewhere), in inference only: a stage may skip the other rows
	// (the causal attention skips their query blocks) or ignore the input.
	PortRows = "rows"
)
