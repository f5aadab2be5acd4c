//go:build !cgo || noopenblas

package graphstage

// Backend names the BLAS gorgonia's matrix products use.
func Backend() string { return "gonum pure Go" }
