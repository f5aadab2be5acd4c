//go:build !cgo || noopenblas

package coupling

// layerRowsC reports false in the pure-Go build: layerForward runs its Go
// loop (seedRow), whose bits the cgo build's C kernel reproduces.
func layerRowsC(in, out, x0, ldj, th, ut []float32, rows, D, H int, as, at, g float32, odd, inPlace bool) bool {
	return false
}
