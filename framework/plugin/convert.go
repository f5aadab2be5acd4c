package plugin

import (
	"fmt"
	"unsafe"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Conversions between the stage package's types and the wire messages.

func configToProto(c stage.Config) *proto.StageConfig {
	p := &proto.StageConfig{Dims: make(map[string]int64, len(c.Dims)), Options: make(map[string]string, len(c.Options))}
	for k, v := range c.Dims {
		p.Dims[k] = int64(v)
	}
	for k, v := range c.Options {
		p.Options[k] = v
	}
	return p
}

func configFromProto(p *proto.StageConfig) stage.Config {
	c := stage.Config{Dims: make(map[string]int, len(p.GetDims())), Options: make(map[string]string, len(p.GetOptions()))}
	for k, v := range p.GetDims() {
		c.Dims[k] = int(v)
	}
	for k, v := range p.GetOptions() {
		c.Options[k] = v
	}
	return c
}

func intsToProto(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

func intsFromProto(s []int64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

func descriptionToProto(d *stage.Description) *proto.StageDescription {
	p := &proto.StageDescription{Kind: d.Kind, Name: d.Name, Version: d.Version, Inputs: d.Inputs, Outputs: d.Outputs}
	for _, s := range d.Params {
		p.Params = append(p.Params, &proto.ParamSpec{Name: s.Name, Shape: intsToProto(s.Shape), Init: string(s.Init),
			FanIn: int64(s.FanIn), Aliases: s.Aliases, NoGrad: s.NoGrad})
	}
	for _, s := range d.State {
		p.State = append(p.State, &proto.StateSpec{Name: s.Name, Shape: intsToProto(s.Shape)})
	}
	for _, o := range d.Options {
		p.Options = append(p.Options, &proto.OptionSpec{Name: o.Name, Type: o.Type, Default: o.Default, Choices: o.Choices, Help: o.Help})
	}
	if m := d.Memory; m != nil {
		p.Memory = &proto.MemoryHint{Saved: m.Saved, Work: m.Work, State: m.State, Row: m.Row}
	}
	return p
}

func descriptionFromProto(p *proto.StageDescription) *stage.Description {
	d := &stage.Description{Kind: p.GetKind(), Name: p.GetName(), Version: p.GetVersion(), Inputs: p.GetInputs(), Outputs: p.GetOutputs()}
	for _, s := range p.GetParams() {
		d.Params = append(d.Params, stage.ParamSpec{Name: s.GetName(), Shape: intsFromProto(s.GetShape()), Init: stage.Init(s.GetInit()),
			FanIn: int(s.GetFanIn()), Aliases: s.GetAliases(), NoGrad: s.GetNoGrad()})
	}
	for _, s := range p.GetState() {
		d.State = append(d.State, stage.StateSpec{Name: s.GetName(), Shape: intsFromProto(s.GetShape())})
	}
	for _, o := range p.GetOptions() {
		d.Options = append(d.Options, stage.OptionSpec{Name: o.GetName(), Type: o.GetType(), Default: o.GetDefault(), Choices: o.GetChoices(), Help: o.GetHelp()})
	}
	if m := p.GetMemory(); m != nil {
		// A negative value from a plugin means nothing; the host's budget
		// saturates large ones.
		d.Memory = &stage.MemoryHint{Saved: max(m.GetSaved(), 0), Work: max(m.GetWork(), 0), State: max(m.GetState(), 0), Row: max(m.GetRow(), 0)}
	}
	return d
}

// shmWriter places tensors in a region from off on; tensors found in
// handoffs (by their first element) already lie in shared memory and are
// sent as descriptors to where they are.
type shmWriter struct {
	r        *region
	off      int
	handoffs map[*float32]handoff
}

// encodeMap turns a map into descriptors: written into w's region, or, with w
// nil, as bytes that alias the tensors' data (proto marshalling copies them).
// Nil entries are skipped: to a stage a nil tensor and a missing one are alike.
func encodeMap(what string, m tensor.Map, w *shmWriter) ([]*proto.Tensor, error) {
	out := make([]*proto.Tensor, 0, len(m))
	for _, name := range m.Names() {
		t := m[name]
		if t == nil {
			continue
		}
		if err := checkShape(t.Shape, len(t.Data)); err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, name, err)
		}
		p := &proto.Tensor{Name: name, Shape: intsToProto(t.Shape), Dtype: proto.DType_DTYPE_FLOAT32}
		if w == nil {
			p.Data = rawBytes(t.Data)
		} else if h, ok := w.handoff(t.Data); ok {
			p.Region, p.Offset = h.name, h.off
		} else {
			n := 4 * len(t.Data)
			if w.off+n > len(w.r.mem) {
				return nil, fmt.Errorf("%s %q does not fit in region %s (internal error)", what, name, w.r.name)
			}
			copy(floats(w.r.mem[w.off:w.off+n]), t.Data)
			p.Region, p.Offset = w.r.name, uint64(w.off)
			w.off += alignUp(n)
		}
		out = append(out, p)
	}
	return out, nil
}

func (w *shmWriter) handoff(data []float32) (handoff, bool) {
	if len(data) == 0 || w.handoffs == nil {
		return handoff{}, false
	}
	h, ok := w.handoffs[&data[0]]
	return h, ok
}

func checkShape(shape []int, n int) error {
	want := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && want > maxTensorSize/4/d {
			return fmt.Errorf("shape %v is too large", shape)
		}
		want *= d
	}
	if want != n {
		return fmt.Errorf("%d values for shape %v", n, shape)
	}
	return nil
}

// decodeMap turns descriptors back into tensors. Shared-memory tensors alias
// the mapping unless copyOut is set; byte tensors alias the message's bytes
// when they are aligned for float32.
func decodeMap(what string, ps []*proto.Tensor, lookup func(string) *region, copyOut bool) (tensor.Map, error) {
	m := make(tensor.Map, len(ps))
	for _, p := range ps {
		name := p.GetName()
		if name == "" {
			return nil, fmt.Errorf("%s without a name", what)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%s %q appears twice", what, name)
		}
		if p.GetDtype() != proto.DType_DTYPE_FLOAT32 {
			return nil, fmt.Errorf("%s %q has dtype %v, only float32 is supported", what, name, p.GetDtype())
		}
		var shape []int // nil for a scalar, as tensor.New() makes it
		if len(p.GetShape()) > 0 {
			shape = make([]int, len(p.GetShape()))
		}
		numel := 1
		for i, d := range p.GetShape() {
			if d < 0 || (d > 0 && int64(numel) > maxTensorSize/4/d) {
				return nil, fmt.Errorf("%s %q has invalid shape %v", what, name, p.GetShape())
			}
			shape[i] = int(d)
			numel *= int(d)
		}
		var data []float32
		switch {
		case p.GetRegion() != "":
			r := lookup(p.GetRegion())
			if r == nil {
				return nil, fmt.Errorf("%s %q refers to unknown shared-memory region %q", what, name, p.GetRegion())
			}
			v, err := view(r, p.GetOffset(), numel)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", what, name, err)
			}
			data = v
			if copyOut {
				data = append([]float32(nil), v...)
			}
		default:
			b := p.GetData()
			if len(b) != 4*numel {
				return nil, fmt.Errorf("%s %q has %d bytes for shape %v (want %d)", what, name, len(b), shape, 4*numel)
			}
			if numel > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
				data = floats(b)
			} else {
				data = make([]float32, numel)
				copy(rawBytes(data), b)
			}
		}
		if data == nil {
			data = []float32{}
		}
		m[name] = &tensor.Tensor{Shape: shape, Data: data}
	}
	return m, nil
}
