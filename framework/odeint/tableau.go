package odeint

// tableau is an explicit Runge–Kutta method: stage i (0-based) is evaluated at
// t0 + c[i]·dt on Y_i = y + dt·Σ_{j<i} a[i][j]·k_j. Fixed-grid steps return
// y + dt·Σ b[j]·k_j. Adaptive methods (err != nil) are FSAL: their b equals the
// last row of a, so the new state is the last stage input Y_{s−1}, and its
// derivative k_{s−1} is the next step's k_0.
type tableau struct {
	name  string
	order int
	c     []float64
	a     [][]float64
	b     []float64
	err   []float64 // b − b̂, the embedded error estimate (adaptive only)
	mid   []float64 // dense output: y(t0+dt/2) ≈ y + dt·Σ mid[j]·k_j (adaptive only)
	// float32 copies: the reference multiplies float32 tensors by Python floats,
	// which PyTorch rounds to float32 before the product.
	a32   [][]float32
	b32   []float32
	err32 []float32
	mid32 []float32
}

func (tb *tableau) stages() int { return len(tb.c) }

func (tb *tableau) adaptive() bool { return tb.err != nil }

func to32(v []float64) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func newTableau(t tableau) *tableau {
	t.a32 = make([][]float32, len(t.a))
	for i, row := range t.a {
		t.a32[i] = to32(row)
	}
	t.b32, t.err32, t.mid32 = to32(t.b), to32(t.err), to32(t.mid)
	return &t
}

var (
	tabEuler = newTableau(tableau{
		name: "euler", order: 1,
		c: []float64{0}, a: [][]float64{{}}, b: []float64{1},
	})
	tabMidpoint = newTableau(tableau{
		name: "midpoint", order: 2,
		c: []float64{0, 0.5}, a: [][]float64{{}, {0.5}}, b: []float64{0, 1},
	})
	tabHeun = newTableau(tableau{
		name: "heun", order: 2,
		c: []float64{0, 1}, a: [][]float64{{}, {1}}, b: []float64{0.5, 0.5},
	})
	// torchdiffeq's rk4 fixed-grid step is the 3/8 rule (rk4_alt_step_func).
	tabRK4 = newTableau(tableau{
		name: "rk4", order: 4,
		c: []float64{0, 1.0 / 3, 2.0 / 3, 1},
		a: [][]float64{{}, {1.0 / 3}, {-1.0 / 3, 1}, {1, -1, 1}},
		b: []float64{1.0 / 8, 3.0 / 8, 3.0 / 8, 1.0 / 8},
	})
	// Bogacki–Shampine 3(2), torchdiffeq's bosh3 (mid = _BS_C_MID).
	tabBosh3 = newTableau(tableau{
		name: "bosh3", order: 3,
		c:   []float64{0, 0.5, 0.75, 1},
		a:   [][]float64{{}, {0.5}, {0, 0.75}, {2.0 / 9, 1.0 / 3, 4.0 / 9}},
		b:   []float64{2.0 / 9, 1.0 / 3, 4.0 / 9, 0},
		err: []float64{2.0/9 - 7.0/24, 1.0/3 - 1.0/4, 4.0/9 - 1.0/3, -1.0 / 8},
		mid: []float64{0, 0.5, 0, 0},
	})
	// Dormand–Prince 5(4) with the DPS mid-point weights (seed_torch.py DP_*).
	tabDopri5 = newTableau(tableau{
		name: "dopri5", order: 5,
		c: []float64{0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1},
		a: [][]float64{
			{},
			{1.0 / 5},
			{3.0 / 40, 9.0 / 40},
			{44.0 / 45, -56.0 / 15, 32.0 / 9},
			{19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
			{9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
			{35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
		},
		b: []float64{35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0},
		err: []float64{35.0/384 - 1951.0/21600, 0, 500.0/1113 - 22642.0/50085, 125.0/192 - 451.0/720,
			-2187.0/6784 + 12231.0/42400, 11.0/84 - 649.0/6300, -1.0 / 60},
		mid: []float64{6025192743.0 / 30085553152 / 2, 0, 51252292925.0 / 65400821598 / 2,
			-2691868925.0 / 45128329728 / 2, 187940372067.0 / 1594534317056 / 2,
			-1776094331.0 / 19743644256 / 2, 11237099.0 / 235043384 / 2},
	})
)

// methods lists every solver in the order Methods reports them.
var methods = []*tableau{tabEuler, tabMidpoint, tabHeun, tabRK4, tabBosh3, tabDopri5}

func lookup(name string) *tableau {
	for _, tb := range methods {
		if tb.name == name {
			return tb
		}
	}
	return nil
}
