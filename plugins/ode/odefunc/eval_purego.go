//go:build !cgo || noopenblas

package odefunc

// evalRowsC reports false in the pure-Go build: Func.Eval runs evalRow, whose
// bits the cgo build's C kernel reproduces (eval_cgo.go).
func evalRowsC(dy, y, gamma, beta []float32, rows, h int) bool { return false }

// evalCombC reports false in the pure-Go build (Func.EvalComb's Go loop).
func evalCombC(dy, base []float32, sc float32, cs []float32, vs [][]float32, gamma, beta []float32, r0, r1, h int) bool {
	return false
}

func addBias(a, be []float32, rows, h int) { addBiasGo(a, be, rows, h) }

func residual(e, y, e0 []float32, s float32) { residualGo(e, y, e0, s) }

// vjpRowsC reports false in the pure-Go build (Func.VJP runs vjpRow).
func vjpRowsC(y, g, gy, gamma, s []float32, acc []float64, rows, h int) bool { return false }
