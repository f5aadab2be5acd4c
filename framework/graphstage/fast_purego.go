//go:build !cgo || noopenblas

package graphstage

func binVV(k fastKind, o, a, b []float32)                   { binVVGo(k, o, a, b) }
func binVS(k fastKind, o, a []float32, s float32)           { binVSGo(k, o, a, s) }
func binSV(k fastKind, o []float32, s float32, b []float32) { binSVGo(k, o, s, b) }
func unaryKernel(k fastKind, o, a []float32)                { unaryGo(k, o, a) }
