package model

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"liquidlab/framework/num"
	"liquidlab/framework/num/bf16"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
)

// Prefix maps a stage kind to the state_dict prefix of its parameters.
var Prefix = map[string]string{
	stage.KindFlows:     "liquid_embedding.flow_reducer.",
	stage.KindODE:       "liquid_embedding.",
	stage.KindAttention: "liquid_cell.",
	stage.KindLiquid:    "liquid_cell.liquid_cell.",
}

// Dims are the model's sizes, named as in SEED_MODEL.md.
type Dims struct {
	Vocab int // V
	D     int // embedding_dim
	L     int // latent_dim
	H     int // hidden_size
	F     int // hidden_dim (flow nets)
	K     int // num_flows

	// Tie makes output_proj.weight the embedding matrix itself (needs H == D).
	Tie bool

	// HeadPrecision is the output head's arithmetic: "" or "fp32" (float32
	// sgemm, the parity reference) or "bf16" (bfloat16 weights and inputs,
	// float32 accumulation, through package bf16 on CPUs with AVX512_BF16).
	HeadPrecision string

	// Block composes a per-token liquid stage and a per-token attention stage:
	// "" or "parallel" (both read e; the head reads e + y_liquid + y_attention)
	// or "sequential" (the attention reads u = e + y_liquid; the head reads
	// u + y_attention).
	Block string
}

// Block compositions (Dims.Block).
const (
	BlockParallel   = "parallel"
	BlockSequential = "sequential"
)

// Sequential reports whether the attention reads the liquid stage's output.
func (d Dims) Sequential() bool { return d.Block == BlockSequential }

// Head precisions (Dims.HeadPrecision).
const (
	HeadFP32 = "fp32"
	HeadBF16 = "bf16"
)

// HeadBF16 reports whether the head runs in bfloat16.
func (d Dims) HeadBF16() bool { return d.HeadPrecision == HeadBF16 }

// HeadPath names the kernel the output head's forward product runs on.
func (d Dims) HeadPath() string {
	if d.HeadBF16() {
		return bf16.Path()
	}
	if FP32HeadPacked() {
		return packed.Path()
	}
	return "fp32 sgemm (" + num.Backend() + ")"
}

// HeadKernelEnv names the environment variable that chooses the kernel of
// the float32 head's forward product and of the backward's two products
// dlogits·W_o and dlogitsᵀ·[e|1] (of either head): "sgemm" forces OpenBLAS's
// sgemm (for comparison), "packed" requires the AVX-512F packed-weight
// kernels, "" or "auto" takes them where the CPU has AVX-512F. Both give
// float32 products within rounding; the forward product is bit for bit
// OpenBLAS's AVX-512 sgemm's, the backward's (K in blocks) are not.
const HeadKernelEnv = "LIQUIDLAB_HEAD_KERNEL"

// FP32HeadPacked reports whether the head's float32 products (the fp32
// head's forward, either head's backward) run on package packed's kernels
// (see HeadKernelEnv). A Run reads it once, at its start.
func FP32HeadPacked() bool {
	switch os.Getenv(HeadKernelEnv) {
	case "sgemm":
		return false
	default:
		return packed.Available()
	}
}

// CheckHeadKernel validates HeadKernelEnv (New does too; commands call it
// before slow work).
func CheckHeadKernel() error {
	switch v := os.Getenv(HeadKernelEnv); v {
	case "", "auto", "sgemm":
		return nil
	case "packed":
		if !packed.Available() {
			return fmt.Errorf("%s=packed needs AVX-512F and a cgo build; this CPU has %s", HeadKernelEnv, bf16.CPU())
		}
		return nil
	default:
		return fmt.Errorf("%s=%q: want \"auto\", \"packed\" or \"sgemm\"", HeadKernelEnv, v)
	}
}

// Map returns the dims under the names stage.Config uses.
func (d Dims) Map() map[string]int {
	return map[string]int{"vocab_size": d.Vocab, "embedding_dim": d.D, "latent_dim": d.L,
		"hidden_size": d.H, "hidden_dim": d.F, "num_flows": d.K}
}

// Validate checks the sizes the seed's model can be built with.
func (d Dims) Validate() error {
	switch {
	case d.Vocab < 2:
		return fmt.Errorf("vocab_size %d: need at least 2", d.Vocab)
	case d.D < 2 || d.D%2 != 0:
		return fmt.Errorf("embedding_dim %d: need an even number ≥ 2 (the coupling layers split it in halves)", d.D)
	case d.L < 1 || d.L > d.D:
		return fmt.Errorf("latent_dim %d: need 1 ≤ latent_dim ≤ embedding_dim (%d)", d.L, d.D)
	case d.H < 1:
		return fmt.Errorf("hidden_size %d: need ≥ 1", d.H)
	case d.F < 1:
		return fmt.Errorf("hidden_dim %d: need ≥ 1", d.F)
	case d.K < 0:
		return fmt.Errorf("num_flows %d: need ≥ 0", d.K)
	case d.Tie && d.H != d.D:
		return fmt.Errorf("tie_output needs hidden_size == embedding_dim (%d ≠ %d)", d.H, d.D)
	case d.HeadPrecision != "" && d.HeadPrecision != HeadFP32 && d.HeadPrecision != HeadBF16:
		return fmt.Errorf("head_precision %q: want \"fp32\" or \"bf16\"", d.HeadPrecision)
	case d.Block != "" && d.Block != BlockParallel && d.Block != BlockSequential:
		return fmt.Errorf("block %q: want \"parallel\" or \"sequential\"", d.Block)
	case d.HeadBF16() && !bf16.Available():
		// Never a silent fallback to float32.
		return fmt.Errorf("head_precision bf16 needs AVX512_BF16; this CPU has %s", bf16.CPU())
	}
	return CheckHeadKernel()
}

// Model is the seed model assembled from stages.
type Model struct {
	Dims    Dims
	Stages  map[string]stage.Stage
	Configs map[string]stage.Config
	Descs   map[string]*stage.Description
	Params  Params

	// PaddingIdx is the embedding row that receives no gradient (the seed's
	// nn.Embedding(padding_idx=0); negative for none).
	PaddingIdx int

	emb, wo, bo *Param

	// perToken is set when the liquid stage reads every token's "e" and writes
	// "y" (a causal scan): it then runs on every chunk and the head reads e + y.
	// Otherwise it is the seed's cell, run once on the attention's context.
	perToken bool
	// attnPerToken is set when the attention stage writes a per-token "y",
	// which the head then reads too.
	attnPerToken bool

	scratch scratch

	// The bf16 head's packed weight (HeadBF16) and the Params version it was
	// packed from; packedOK is false until the first pack and after every
	// training Run (an optimiser step follows it).
	packed        bf16.Packed
	packedVersion uint64
	packedOK      bool
	// The same for the float32 head's [W_o | b_o] (scratch.wob): wobOK is
	// false until the first pack, after every training Run and after
	// DropScratch.
	wobVersion uint64
	wobOK      bool
	// The same for the float32 head's W_o packed for package packed's kernel
	// (FP32HeadPacked).
	pk        packed.Matrix
	pkVersion uint64
	pkOK      bool
	// W_o packed as the right operand of dlogits·W_o (PackKN), for the
	// backward of either head; repacked on every training Run.
	pkT packed.Matrix
	// A block's [e] packed for the backward's dlogitsᵀ·[e|1] (scratch).
	pkE packed.Matrix
}

// PerTokenLiquid reports whether the liquid stage feeds the head.
func (m *Model) PerTokenLiquid() bool { return m.perToken }

// New describes every stage and builds the parameter store: the host's
// embedding, then each stage's parameters in pipeline order, then the head.
// options holds each kind's validated options.
func New(ctx context.Context, dims Dims, stages map[string]stage.Stage, options map[string]map[string]string) (*Model, error) {
	if err := dims.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Dims: dims, Stages: stages, Configs: map[string]stage.Config{}, Descs: map[string]*stage.Description{}, PaddingIdx: 0}
	emb := stage.ParamSpec{Name: "liquid_embedding.embedding.weight", Shape: []int{dims.Vocab, dims.D}, Init: "embedding"}
	if dims.Tie {
		// One tensor under both names; the head's gradient adds into it.
		emb.Aliases = []string{"output_proj.weight"}
	}
	if err := m.Params.add("host", "", emb); err != nil {
		return nil, err
	}
	for _, kind := range stage.Kinds {
		st, ok := stages[kind]
		if !ok || st == nil {
			return nil, fmt.Errorf("no %s stage given", kind)
		}
		cfg := stage.Config{Dims: dims.Map(), Options: options[kind]}
		if cfg.Options == nil {
			cfg.Options = map[string]string{}
		}
		desc, err := st.Describe(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s stage: describe: %w", kind, err)
		}
		if desc.Kind != kind {
			return nil, fmt.Errorf("%s stage: implementation %q says it is a %q stage", kind, desc.Name, desc.Kind)
		}
		m.Configs[kind], m.Descs[kind] = cfg, desc
		for _, ps := range desc.Params {
			if err := m.Params.add(kind, Prefix[kind], ps); err != nil {
				return nil, err
			}
		}
	}
	m.perToken = contains(m.Descs[stage.KindLiquid].Inputs, stage.PortE) && contains(m.Descs[stage.KindLiquid].Outputs, stage.PortY)
	m.attnPerToken = contains(m.Descs[stage.KindAttention].Outputs, stage.PortY)
	if dims.Sequential() && !(m.perToken && m.attnPerToken) {
		return nil, fmt.Errorf("block = \"sequential\" needs a per-token liquid stage (inputs e, outputs y) and a per-token attention stage (output y); %s and %s are not both",
			m.Descs[stage.KindLiquid].Name, m.Descs[stage.KindAttention].Name)
	}
	if !dims.Tie {
		if err := m.Params.add("host", "", stage.ParamSpec{Name: "output_proj.weight", Shape: []int{dims.Vocab, dims.H}, Init: "linear_weight", FanIn: dims.H}); err != nil {
			return nil, err
		}
	}
	if err := m.Params.add("host", "", stage.ParamSpec{Name: "output_proj.bias", Shape: []int{dims.Vocab}, Init: "linear_bias", FanIn: dims.H}); err != nil {
		return nil, err
	}
	m.emb = m.Params.Get("liquid_embedding.embedding.weight")
	m.wo = m.Params.Get("output_proj.weight")
	m.bo = m.Params.Get("output_proj.bias")
	if m.wo != m.emb {
		// backwardFlows writes only the batch's rows (a tied head writes all)
		m.emb.TrackRows(dims.D)
	}
	return m, nil
}

// Init initialises every parameter from a seed (PyTorch's default rules), with
// the embedding's padding row zeroed as nn.Embedding does.
func (m *Model) Init(seed uint64) error {
	if err := m.Params.Init(seed); err != nil {
		return err
	}
	if p := m.PaddingIdx; p >= 0 && p < m.Dims.Vocab {
		clear(m.emb.Value.Data[p*m.Dims.D : (p+1)*m.Dims.D])
	}
	m.Params.Changed()
	return nil
}

// Describe summarises the stages, one line each.
func (m *Model) Describe() []string {
	var out []string
	for _, k := range stage.Kinds {
		d := m.Descs[k]
		out = append(out, fmt.Sprintf("%s: %s %s %v", k, d.Name, d.Version, m.Configs[k].Options))
	}
	out = append(out, "parameters: "+strconv.Itoa(m.Params.Count()))
	return out
}

// MatmulFLOPs returns the floating-point operations of the model's matrix
// products per token in the forward pass (2 per multiply-add): the flows'
// initial projection and coupling nets, W_e, the attention's key and value
// projections, and the output head. The liquid cell and attention query act
// once per sequence and are left out.
func (d Dims) MatmulFLOPs() float64 {
	f := float64(d.D*d.D) + float64(d.K)*4*float64(d.D/2)*float64(d.F) +
		float64(d.L*d.H) + 2*float64(d.H*d.H) + float64(d.H)*float64(d.Vocab)
	return 2 * f
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
