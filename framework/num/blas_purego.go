//go:build !cgo || noopenblas

package num

// Backend names the BLAS implementation matrix products use.
func Backend() string { return "gonum pure Go" }
