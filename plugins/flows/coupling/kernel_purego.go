//go:build !cgo || noopenblas

package coupling

// layerRowsC reports false in the pure-Go build: layerForward runs its Go
// loop (seedRow), whose bits the cgo build's C kernel reproduces.
func layerRowsC(in, out, x0, ldj, th, ut []float32, rows, D, H int, as, at, g float32, odd, inPlace bool) bool {
	return false
}

// layerBackRowsC reports false in the pure-Go build: layerBackward runs its
// Go loop, whose bits the cgo build's C kernel reproduces.
func layerBackRowsC(in, th, ut, dY, dX0, dldj []float32, rows, D, H int, as, at, g float32, exact, odd bool) (sg, sas, sat float64, ok bool) {
	return 0, 0, 0, false
}
