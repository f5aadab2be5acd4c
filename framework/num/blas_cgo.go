//go:build cgo && !noopenblas

package num

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int num_threads);
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
	// OpenBLAS's own worker threads spin for a long while after each call,
	// stealing a core from the Go code that runs between matrix products (the
	// ODE steps, the softmax). Gemm parallelises large products itself instead,
	// across goroutines that each call single-threaded OpenBLAS.
	C.openblas_set_num_threads(1)
}

// Backend names the BLAS implementation matrix products use.
func Backend() string { return "openblas (cgo, gonum/netlib)" }
