//go:build cgo && !noopenblas

package graphstage

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	"gorgonia.org/gorgonia"

	"liquidlab/framework/num"
)

// init makes gorgonia (and gorgonia.org/tensor) run matrix products through
// OpenBLAS, as framework/num does for the fused kernels; importing num also sets
// OpenBLAS to one thread.
func init() { gorgonia.Use(netlib.Implementation{}) }

// Backend names the BLAS gorgonia's matrix products use.
func Backend() string { return num.Backend() }
