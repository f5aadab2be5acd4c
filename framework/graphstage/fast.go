package graphstage

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"

	"liquidlab/framework/num"
)

// fastKind names the kit's own kernel for a gorgonia op: elementwise float32
// arithmetic and the common unary functions, written straight into the step's
// output. Gorgonia's Do for these copies the first operand into the output
// and then runs a scalar Go loop over it (tensor's engine), which was most of
// a graph component's time at the quickstart's sizes (the price table in the
// README). fastNone: the op runs through gorgonia.
type fastKind uint8

const (
	fastNone fastKind = iota
	// binary: tensor op tensor of the same shape, tensor op scalar, scalar op tensor
	fastAdd
	fastSub
	fastMul
	fastDiv
	// unary
	fastAbs
	fastSign
	fastExp
	fastNeg
	fastSquare
	fastSqrt
	fastInv
	fastInvSqrt
	fastCube
	fastTanh
	fastSigmoid
	// structural: output shape from the node, parameters in step.fastArg
	fastMatMul // 2-D matrix product; fastArg: transA, transB (0/1)
	fastSum    // sum along one axis; fastArg[0]: the axis
	fastConcat // fastArg[0]: the axis
	fastSlice  // one axis; fastArg: axis, start, end (step 1)
)

var fastBinary = map[string]fastKind{"+": fastAdd, "-": fastSub, "⊙": fastMul, "÷": fastDiv}

var fastUnary = map[string]fastKind{"abs": fastAbs, "sign": fastSign, "exp": fastExp, "neg": fastNeg,
	"square": fastSquare, "sqrt": fastSqrt, "inv": fastInv, "invSqrt": fastInvSqrt, "cube": fastCube,
	"tanh": fastTanh, "sigmoid": fastSigmoid}

var fastMatMuls = map[string][3]int{"A × B": {0, 0}, "Aᵀ × B": {1, 0}, "A × Bᵀ": {0, 1}, "Aᵀ × Bᵀ": {1, 1}}

// fastOf is the kit's kernel for op and its parameters, or fastNone.
// Gorgonia's op types are unexported: they are told apart by type name and
// String (an elemBinOp prints its operator and whether it returns the
// operands' type, which only comparisons do; a matrix product its operands
// and their transposition), and a slice's axis is read by reflection.
func fastOf(op G.Op) (fastKind, [3]int) {
	var none [3]int
	s := op.String()
	switch fmt.Sprintf("%T", op) {
	case "gorgonia.elemBinOp":
		if f := strings.Fields(s); len(f) == 2 && f[1] == "false" {
			return fastBinary[f[0]], none
		}
	case "gorgonia.elemUnaryOp":
		return fastUnary[s], none
	case "gorgonia.linAlgBinOp":
		if t, ok := fastMatMuls[s]; ok {
			return fastMatMul, t
		}
	case "gorgonia.sumOp":
		var ax int
		if _, err := fmt.Sscanf(s, "Σ[%d]", &ax); err == nil && s == fmt.Sprintf("Σ[%d]", ax) {
			return fastSum, [3]int{ax}
		}
	case "gorgonia.concatOp":
		var ax int
		if _, err := fmt.Sscanf(s, "Concat(axis=%d)", &ax); err == nil {
			return fastConcat, [3]int{ax}
		}
	case "*gorgonia.sliceOp":
		v := reflect.ValueOf(op).Elem()
		sl, along := v.FieldByName("Slice"), v.FieldByName("along")
		if !sl.IsValid() || !along.IsValid() || along.Kind() != reflect.Int || sl.IsNil() {
			return fastNone, none
		}
		r, ok := op.(T.Slice)
		if !ok || r.Step() > 1 || r.End() <= r.Start() { // step 0 is 1
			return fastNone, none
		}
		return fastSlice, [3]int{int(along.Int()), r.Start(), r.End()}
	}
	return fastNone, none
}

// f32Arg is a float32 argument of a fast kernel: a scalar, or a tensor whose
// elements are its data in order.
type f32Arg struct {
	d      *T.Dense // nil for a scalar
	scalar float32
}

func asF32(v G.Value) (f32Arg, bool) {
	switch v := v.(type) {
	case *G.F32:
		return f32Arg{scalar: float32(*v)}, true
	case *T.Dense:
		if v.Dtype() != T.Float32 || v.IsView() || v.Shape().IsScalar() || v.DataSize() != v.Shape().TotalSize() {
			return f32Arg{}, false
		}
		return f32Arg{d: v}, true
	}
	return f32Arg{}, false
}

// fastDo runs the step with its kit kernel, into its preallocated output when
// it has one of the right shape, else into new memory. ok is false when the
// arguments are not what the kernels take (another dtype, a view, two
// scalars, shapes that differ); the caller then runs gorgonia's Do.
func (st *step) fastDo(args []G.Value) (G.Value, bool) {
	if st.fast >= fastMatMul {
		return st.fastStructural(args)
	}
	var a, b f32Arg
	var ok bool
	if a, ok = asF32(args[0]); !ok {
		return nil, false
	}
	binary := st.fast < fastAbs
	if binary {
		if b, ok = asF32(args[1]); !ok {
			return nil, false
		}
	}
	shape := T.Shape(nil)
	switch {
	case a.d != nil && b.d != nil:
		if !a.d.Shape().Eq(b.d.Shape()) {
			return nil, false
		}
		shape = a.d.Shape()
	case a.d != nil:
		shape = a.d.Shape()
	case b.d != nil:
		shape = b.d.Shape()
	default:
		return nil, false
	}
	out := st.output(shape)
	o := out.Float32s()
	switch {
	case !binary:
		unaryKernel(st.fast, o, a.d.Float32s())
	case a.d != nil && b.d != nil:
		binVV(st.fast, o, a.d.Float32s(), b.d.Float32s())
	case a.d != nil:
		binVS(st.fast, o, a.d.Float32s(), b.scalar)
	default:
		binSV(st.fast, o, a.scalar, b.d.Float32s())
	}
	return out, true
}

// output is the memory the step writes into: its preallocated output when it
// has the shape, else new.
func (st *step) output(shape T.Shape) *T.Dense {
	if out := st.prealloc; out != nil && out.Dtype() == T.Float32 && out.Shape().Eq(shape) {
		return out
	}
	return T.New(T.Of(T.Float32), T.WithShape(shape.Clone()...))
}

// fastStructural runs a matrix product, sum, concatenation or slice; the
// output has the node's shape (gorgonia's shape inference), and the arguments
// must be float32 tensors with their elements in order.
func (st *step) fastStructural(args []G.Value) (G.Value, bool) {
	ds := make([]*T.Dense, len(args))
	for i, v := range args {
		a, ok := asF32(v)
		if !ok || a.d == nil {
			return nil, false
		}
		ds[i] = a.d
	}
	shape := st.shape
	if shape.IsScalar() {
		return nil, false
	}
	prod := func(s []int) int {
		n := 1
		for _, d := range s {
			n *= d
		}
		return n
	}
	in := ds[0].Shape()
	p := st.fastArg
	switch st.fast {
	case fastMatMul:
		b := ds[1].Shape()
		if len(in) != 2 || len(b) != 2 || len(shape) != 2 {
			return nil, false
		}
		m, k := in[0], in[1]
		if p[0] == 1 {
			m, k = k, m
		}
		kb, n := b[0], b[1]
		if p[1] == 1 {
			kb, n = n, kb
		}
		if k != kb || shape[0] != m || shape[1] != n {
			return nil, false
		}
		out := st.output(shape)
		if k == 0 {
			clear(out.Float32s()) // Gemm would scale the stale values by 0 (NaN stays)
			return out, true
		}
		num.Gemm(p[0] == 1, p[1] == 1, m, n, k, 1, ds[0].Float32s(), in[1], ds[1].Float32s(), b[1], 0, out.Float32s(), n)
		return out, true
	case fastSum:
		ax := p[0]
		if ax < 0 || ax >= len(in) || in[ax] == 0 || !slices.Equal(shape, slices.Delete(slices.Clone(in), ax, ax+1)) {
			return nil, false
		}
		out := st.output(shape)
		sumAxis(out.Float32s(), ds[0].Float32s(), prod(in[:ax]), in[ax], prod(in[ax+1:]))
		return out, true
	case fastConcat:
		ax := p[0]
		if ax < 0 || ax >= len(shape) {
			return nil, false
		}
		outer, inner := prod(shape[:ax]), prod(shape[ax:])
		total := 0
		for _, d := range ds {
			s := d.Shape()
			if len(s) != len(shape) || !slices.Equal(s[:ax], shape[:ax]) || !slices.Equal(s[ax+1:], shape[ax+1:]) {
				return nil, false
			}
			total += prod(s[ax:])
		}
		if total != inner {
			return nil, false
		}
		out := st.output(shape)
		o, off := out.Float32s(), 0
		for _, d := range ds {
			src, w := d.Float32s(), prod(d.Shape()[ax:])
			for r := range outer {
				copy(o[r*inner+off:r*inner+off+w], src[r*w:(r+1)*w])
			}
			off += w
		}
		return out, true
	case fastSlice:
		ax, lo, hi := p[0], p[1], p[2]
		if ax < 0 || ax >= len(in) || hi > in[ax] {
			return nil, false
		}
		outer, inner := prod(in[:ax]), prod(in[ax+1:])
		if prod(shape) != outer*(hi-lo)*inner {
			return nil, false
		}
		out := st.output(shape)
		o, src, w := out.Float32s(), ds[0].Float32s(), (hi-lo)*inner
		for r := range outer {
			copy(o[r*w:(r+1)*w], src[(r*in[ax]+lo)*inner:(r*in[ax]+hi)*inner])
		}
		return out, true
	}
	return nil, false
}

// sumAxis sums a [outer, n, inner] over its middle axis into o [outer, inner],
// in index order.
func sumAxis(o, a []float32, outer, n, inner int) {
	if inner == 1 {
		for r := range outer {
			s := float32(0)
			for _, v := range a[r*n : (r+1)*n] {
				s += v
			}
			o[r] = s
		}
		return
	}
	for r := range outer {
		or := o[r*inner : (r+1)*inner]
		copy(or, a[r*n*inner:r*n*inner+inner])
		for j := 1; j < n; j++ {
			binVV(fastAdd, or, or, a[(r*n+j)*inner:(r*n+j+1)*inner])
		}
	}
}

// cgoMin is the length below which the Go loop beats a cgo call (the C
// kernels are used from it on where cgo is on).
const cgoMin = 128

// The Go kernels: the reference the C kernels (fast_cgo.go) match bit for bit,
// and the kernels of the pure-Go build and of short vectors.

func binVVGo(k fastKind, o, a, b []float32) {
	o, b = o[:len(a)], b[:len(a)]
	switch k {
	case fastAdd:
		for i := range a {
			o[i] = a[i] + b[i]
		}
	case fastSub:
		for i := range a {
			o[i] = a[i] - b[i]
		}
	case fastMul:
		for i := range a {
			o[i] = a[i] * b[i]
		}
	case fastDiv:
		for i := range a {
			o[i] = a[i] / b[i]
		}
	}
}

func binVSGo(k fastKind, o, a []float32, s float32) {
	o = o[:len(a)]
	switch k {
	case fastAdd:
		for i := range a {
			o[i] = a[i] + s
		}
	case fastSub:
		for i := range a {
			o[i] = a[i] - s
		}
	case fastMul:
		for i := range a {
			o[i] = a[i] * s
		}
	case fastDiv:
		for i := range a {
			o[i] = a[i] / s
		}
	}
}

func binSVGo(k fastKind, o []float32, s float32, b []float32) {
	o = o[:len(b)]
	switch k {
	case fastAdd:
		for i := range b {
			o[i] = s + b[i]
		}
	case fastSub:
		for i := range b {
			o[i] = s - b[i]
		}
	case fastMul:
		for i := range b {
			o[i] = s * b[i]
		}
	case fastDiv:
		for i := range b {
			o[i] = s / b[i]
		}
	}
}

// unaryGo is the unary kernels' arithmetic: gorgonia's definitions, except
// exp, tanh and sigmoid, which are package num's ExpFast and TanhFast (the
// fused kernels' functions; ExpFast saturates outside [−86, 88]).
func unaryGo(k fastKind, o, a []float32) {
	o = o[:len(a)]
	for i, x := range a {
		var y float32
		switch k {
		case fastAbs:
			y = math.Float32frombits(math.Float32bits(x) &^ (1 << 31))
		case fastSign:
			y = x
			if x < 0 {
				y = -1
			} else if x > 0 {
				y = 1
			}
		case fastExp:
			y = num.ExpFast(x)
		case fastNeg:
			y = -x
		case fastSquare:
			y = x * x
		case fastSqrt:
			y = float32(math.Sqrt(float64(x)))
		case fastInv:
			y = 1 / x
		case fastInvSqrt:
			y = 1 / float32(math.Sqrt(float64(x)))
		case fastCube:
			y = x * x * x
		case fastTanh:
			y = num.TanhFast(x)
		case fastSigmoid:
			y = 1 / (1 + num.ExpFast(-x))
		}
		o[i] = y
	}
}
