package coupling

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

const fixtureDir = "../../../../shared/fixtures/seed/"
const prefix = "liquid_embedding.flow_reducer."

type fixture struct {
	meta    map[string]string
	f32     map[string]*tensor.Tensor
	i64     map[string][]int64
	i64Shap map[string][]int
}

// readFixture is a minimal safetensors reader (F32 and I64), enough for the
// seed fixtures; it keeps this package free of other in-progress packages.
func readFixture(t *testing.T, name string) *fixture {
	t.Helper()
	b, err := os.ReadFile(fixtureDir + name)
	if os.IsNotExist(err) {
		t.Skipf("fixture %s not found", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := b[8+n:]
	fx := &fixture{f32: map[string]*tensor.Tensor{}, i64: map[string][]int64{}, i64Shap: map[string][]int{}}
	for k, raw := range header {
		if k == "__metadata__" {
			if err := json.Unmarshal(raw, &fx.meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e struct {
			Dtype   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		buf := data[e.Offsets[0]:e.Offsets[1]]
		switch e.Dtype {
		case "F32":
			x := tensor.New(e.Shape...)
			for i := range x.Data {
				x.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			}
			fx.f32[k] = x
		case "I64":
			v := make([]int64, len(buf)/8)
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
			}
			fx.i64[k], fx.i64Shap[k] = v, e.Shape
		}
	}
	return fx
}

func (fx *fixture) config(t *testing.T, exact bool) stage.Config {
	cfg := stage.Config{Dims: map[string]int{}, Options: map[string]string{}}
	for _, k := range []string{"embedding_dim", "latent_dim", "hidden_dim", "num_flows"} {
		v, err := strconv.Atoi(fx.meta[k])
		if err != nil {
			t.Fatalf("metadata %s: %v", k, err)
		}
		cfg.Dims[k] = v
	}
	cfg.Options[OptSharePar] = strings.ToLower(fx.meta["share_params"])
	cfg.Options[OptExactLogdet] = strconv.FormatBool(exact)
	return cfg
}

var fixtures = []string{"seed_rk4.safetensors", "seed_euler_unshared.safetensors", "seed_dopri5.safetensors"}

// Declared names plus aliases are exactly the fixture's state_dict entries, and
// declared names exactly its gradient entries, with the same shapes.
func TestParamsMatchFixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			fx := readFixture(t, name)
			desc, err := New().Describe(context.Background(), fx.config(t, false))
			if err != nil {
				t.Fatal(err)
			}
			var declared, all, params, grads []string
			for _, p := range desc.Params {
				declared = append(declared, p.Name)
				for _, n := range append([]string{p.Name}, p.Aliases...) {
					all = append(all, n)
					if x := fx.f32["param."+prefix+n]; x == nil || !tensor.SameShape(x.Shape, p.Shape) {
						t.Errorf("%s: declared shape %v, fixture %v", n, p.Shape, x)
					}
				}
			}
			for k := range fx.f32 {
				if n, ok := strings.CutPrefix(k, "param."+prefix); ok {
					params = append(params, n)
				}
				if n, ok := strings.CutPrefix(k, "grad."+prefix); ok {
					grads = append(grads, n)
				}
			}
			for _, s := range [][]string{declared, all, params, grads} {
				sort.Strings(s)
			}
			if strings.Join(all, " ") != strings.Join(params, " ") {
				t.Errorf("names and aliases\n%v\nfixture state_dict\n%v", all, params)
			}
			if strings.Join(declared, " ") != strings.Join(grads, " ") {
				t.Errorf("declared names\n%v\nfixture gradients\n%v", declared, grads)
			}
		})
	}
}

// The fixture's log_det_jacobian is the flow reducer's ldj of E[ids].
func TestLogDetMatchesFixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			fx := readFixture(t, name)
			cfg := fx.config(t, false)
			params := tensor.Map{}
			for k, v := range fx.f32 {
				if n, ok := strings.CutPrefix(k, "param."+prefix); ok {
					params[n] = v
				}
			}
			ids, shape := fx.i64["input.input_ids"], fx.i64Shap["input.input_ids"]
			emb := fx.f32["param.liquid_embedding.embedding.weight"]
			D := cfg.Dims["embedding_dim"]
			x := tensor.New(shape[0], shape[1], D)
			for i, id := range ids {
				copy(x.Data[i*D:(i+1)*D], emb.Data[int(id)*D:(int(id)+1)*D])
			}
			res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}})
			if err != nil {
				t.Fatal(err)
			}
			want := fx.f32["output.log_det_jacobian"]
			got := res.Outputs["ldj"]
			if !tensor.SameShape(got.Shape, want.Shape) {
				t.Fatalf("ldj shape %v, fixture %v", got.Shape, want.Shape)
			}
			for i, v := range want.Data {
				if !near(float64(got.Data[i]), float64(v), 1e-5, 1e-4) {
					t.Errorf("ldj[%d] = %g, fixture %g", i, got.Data[i], v)
				}
			}
		})
	}
}
