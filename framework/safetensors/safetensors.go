// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header mapping tensor names to dtype, shape
// and byte offsets (plus an optional "__metadata__" string map), then the raw
// little-endian data.
//
// Read validates everything before returning: header size, JSON, dtypes, that
// shapes match byte lengths, that offsets lie inside the file and do not overlap.
// Errors are one line naming the file, the tensor and the problem. Float tensors
// (F32, F64, F16, BF16) are returned as float32; integer tensors (I64, I32, U8…)
// as int64. Write emits F32 and I64 in sorted name order, as the PyTorch reference
// does. Read returns fresh slices; nothing aliases the input.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"

	"liquidlab/framework/tensor"
)

// File is the content of a safetensors file.
type File struct {
	Floats   map[string]*tensor.Tensor // float tensors, as float32
	Ints     map[string]IntTensor      // integer tensors, as int64
	DTypes   map[string]string         // the stored dtype of every tensor
	Metadata map[string]string
}

// IntTensor is an integer tensor.
type IntTensor struct {
	Shape []int
	Data  []int64
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

var dtypeSize = map[string]int{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

// ReadFile reads and validates a safetensors file.
func ReadFile(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a safetensors image held in memory.
func Parse(raw []byte) (*File, error) {
	if len(raw) < 8 {
		return nil, fmt.Errorf("not a safetensors file: %d bytes, shorter than the 8-byte header length", len(raw))
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > uint64(len(raw)-8) || n > 100<<20 {
		return nil, fmt.Errorf("not a safetensors file: header length %d exceeds the file (%d bytes)", n, len(raw))
	}
	hdr := raw[8 : 8+n]
	var rawMap map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &rawMap); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %v", err)
	}
	data := raw[8+n:]
	f := &File{Floats: map[string]*tensor.Tensor{}, Ints: map[string]IntTensor{}, DTypes: map[string]string{}, Metadata: map[string]string{}}
	type span struct {
		lo, hi int64
		name   string
	}
	var spans []span
	for name, msg := range rawMap {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a string map: %v", err)
			}
			continue
		}
		var e entry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %v", name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", name, e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", name, e.Shape)
			}
		}
		nbytes, ok := byteSize(e.Shape, size)
		if !ok {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs more than 2^63 bytes", name, e.Shape, e.DType)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) {
			return nil, fmt.Errorf("tensor %q: data offsets [%d,%d] outside the %d data bytes", name, lo, hi, len(data))
		}
		if hi-lo != nbytes {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, offsets give %d", name, e.Shape, e.DType, nbytes, hi-lo)
		}
		count := nbytes / int64(size)
		spans = append(spans, span{lo, hi, name})
		b := data[lo:hi]
		f.DTypes[name] = e.DType
		shape := append([]int{}, e.Shape...)
		switch e.DType {
		case "F32", "F64", "F16", "BF16":
			out := make([]float32, count)
			for i := range out {
				switch e.DType {
				case "F32":
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
				case "F64":
					out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
				case "BF16":
					out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
				case "F16":
					out[i] = half(binary.LittleEndian.Uint16(b[2*i:]))
				}
			}
			f.Floats[name] = &tensor.Tensor{Shape: shape, Data: out}
		default:
			out := make([]int64, count)
			for i := range out {
				switch e.DType {
				case "I64":
					out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
				case "I32":
					out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
				case "I16":
					out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
				case "I8":
					out[i] = int64(int8(b[i]))
				default:
					out[i] = int64(b[i])
				}
			}
			f.Ints[name] = IntTensor{Shape: shape, Data: out}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi {
			return nil, fmt.Errorf("tensors %q and %q overlap in the data section", spans[i-1].name, spans[i].name)
		}
	}
	return f, nil
}

// byteSize is the number of bytes of a tensor of the given shape (dimensions
// not negative) and element size; ok is false when it exceeds 2^63 − 1, which
// a plain product would wrap around to a small or zero size.
func byteSize(shape []int, size int) (n int64, ok bool) {
	if slices.Contains(shape, 0) {
		return 0, true
	}
	u := uint64(size)
	for _, d := range shape {
		hi, lo := bits.Mul64(u, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		u = lo
	}
	return int64(u), true
}

func half(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int((h >> 10) & 0x1f)
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		v := float32(frac) / 1024 * float32(math.Pow(2, -14))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | frac<<13)
}

// WriteFile writes float tensors as F32 and int tensors as I64, names sorted,
// atomically (temporary file, then rename).
func WriteFile(path string, floats map[string]*tensor.Tensor, ints map[string]IntTensor, meta map[string]string) error {
	img, err := Encode(floats, ints, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, img, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Encode returns the safetensors image of the given tensors.
func Encode(floats map[string]*tensor.Tensor, ints map[string]IntTensor, meta map[string]string) ([]byte, error) {
	names := make([]string, 0, len(floats)+len(ints))
	for n := range floats {
		names = append(names, n)
	}
	for n := range ints {
		if _, dup := floats[n]; dup {
			return nil, fmt.Errorf("tensor %q given as float and int", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	var body bytes.Buffer
	for _, n := range names {
		lo := int64(body.Len())
		if t, ok := floats[n]; ok {
			if tensor.Numel(t.Shape) != len(t.Data) {
				return nil, fmt.Errorf("tensor %q: %d values for shape %v", n, len(t.Data), t.Shape)
			}
			var b [4]byte
			for _, v := range t.Data {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
				body.Write(b[:])
			}
			header[n] = entry{DType: "F32", Shape: nonNil(t.Shape), Offsets: [2]int64{lo, int64(body.Len())}}
			continue
		}
		t := ints[n]
		if tensor.Numel(t.Shape) != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: %d values for shape %v", n, len(t.Data), t.Shape)
		}
		var b [8]byte
		for _, v := range t.Data {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			body.Write(b[:])
		}
		header[n] = entry{DType: "I64", Shape: nonNil(t.Shape), Offsets: [2]int64{lo, int64(body.Len())}}
	}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+body.Len())
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	return append(out, body.Bytes()...), nil
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}
