package stage

import "context"

// outKey carries a call's output allocator in its context.
type outKey struct{}

// WithOutputs returns ctx with alloc as the allocator OutputBuf uses. The
// plugin server sets it for each Forward and Backward: alloc(n) returns n
// zeroed values in the call's shared-memory reply region, or nil when it
// cannot (OutputBuf then makes a slice).
func WithOutputs(ctx context.Context, alloc func(n int) []float32) context.Context {
	return context.WithValue(ctx, outKey{}, alloc)
}

// OutputBuf returns n zeroed values for a tensor the stage returns from the
// current Forward or Backward (an output, an input or parameter gradient)
// and keeps no reference to afterwards — not under a handle, not in a cache.
// In a plugin it lies in the shared memory the reply travels in: the tensor
// is sent without a copy, in memory that is reused from call to call, where a
// fresh slice costs a page fault per 4 KiB (about 10 µs each on the machines
// of the README's tables: 25 ms for an 8 MB gradient). In process the model
// hands its stages an arena of the same kind (framework/model, outbuf.go) for
// every Forward and Backward; elsewhere it is make([]float32, n).
func OutputBuf(ctx context.Context, n int) []float32 {
	if alloc, ok := ctx.Value(outKey{}).(func(int) []float32); ok && n > 0 {
		if b := alloc(n); b != nil {
			return b[:n:n]
		}
	}
	return make([]float32, n)
}

// OutputAlloc is OutputBuf bound to ctx, for kernels that take an allocator.
func OutputAlloc(ctx context.Context) func(n int) []float32 {
	return func(n int) []float32 { return OutputBuf(ctx, n) }
}
