package results

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Metrics is the content of metrics.json.
type Metrics struct {
	Values  map[string]float64   `json:"values"`
	Samples map[string][]float64 `json:"samples,omitempty"` // repeats per metric
	Bench   []BenchRow           `json:"bench,omitempty"`
	Notes   []string             `json:"notes,omitempty"`
}

// BenchRow is one measured configuration of a long-sequence benchmark.
type BenchRow struct {
	Mode      string
	SeqLen    int
	Batch     int
	ChunkSize int
	PeakMemGB float64
	// EstMemGB is the memory budget's estimate of the peak (runner.EstimateMemory).
	EstMemGB   float64   `json:",omitempty"`
	TimesS     []float64 // seconds per batch, one per repeat
	MedianS    float64
	SpreadS    float64
	TokensPerS float64
	Notes      []string
}

// jfloat is a float64 whose JSON form also covers NaN and ±Inf, as the
// strings "NaN", "+Inf" and "-Inf": a diverged run must still be recorded.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(v)
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = jfloat(math.NaN())
		case "+Inf", "Inf":
			*f = jfloat(math.Inf(1))
		case "-Inf":
			*f = jfloat(math.Inf(-1))
		default:
			return fmt.Errorf("invalid number %q (want a number, \"NaN\", \"+Inf\" or \"-Inf\")", s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("invalid number %s", b)
	}
	*f = jfloat(v)
	return nil
}

func toJ(xs []float64) []jfloat {
	if xs == nil {
		return nil
	}
	out := make([]jfloat, len(xs))
	for i, x := range xs {
		out[i] = jfloat(x)
	}
	return out
}

func fromJ(xs []jfloat) []float64 {
	if xs == nil {
		return nil
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

type metricsJSON struct {
	Values  map[string]jfloat   `json:"values"`
	Samples map[string][]jfloat `json:"samples,omitempty"`
	Bench   []BenchRow          `json:"bench,omitempty"`
	Notes   []string            `json:"notes,omitempty"`
}

// MarshalJSON encodes m, writing non-finite values as strings.
func (m Metrics) MarshalJSON() ([]byte, error) {
	j := metricsJSON{Values: map[string]jfloat{}, Bench: m.Bench, Notes: m.Notes}
	for k, v := range m.Values {
		j.Values[k] = jfloat(v)
	}
	if len(m.Samples) > 0 {
		j.Samples = make(map[string][]jfloat, len(m.Samples))
		for k, v := range m.Samples {
			j.Samples[k] = toJ(v)
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var j metricsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metrics{Values: make(map[string]float64, len(j.Values)), Bench: j.Bench, Notes: j.Notes}
	for k, v := range j.Values {
		m.Values[k] = float64(v)
	}
	if len(j.Samples) > 0 {
		m.Samples = make(map[string][]float64, len(j.Samples))
		for k, v := range j.Samples {
			m.Samples[k] = fromJ(v)
		}
	}
	return nil
}

type benchJSON struct {
	Mode       string   `json:"mode"`
	SeqLen     int      `json:"seq_len"`
	Batch      int      `json:"batch"`
	ChunkSize  int      `json:"chunk_size"`
	PeakMemGB  jfloat   `json:"peak_mem_gb"`
	TimesS     []jfloat `json:"times_s,omitempty"`
	MedianS    jfloat   `json:"median_s"`
	SpreadS    jfloat   `json:"spread_s"`
	TokensPerS jfloat   `json:"tokens_per_s"`
	Notes      []string `json:"notes,omitempty"`
}

// MarshalJSON encodes r with snake_case keys, writing non-finite values as
// strings.
func (r BenchRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(benchJSON{
		Mode: r.Mode, SeqLen: r.SeqLen, Batch: r.Batch, ChunkSize: r.ChunkSize,
		PeakMemGB: jfloat(r.PeakMemGB), TimesS: toJ(r.TimesS), MedianS: jfloat(r.MedianS),
		SpreadS: jfloat(r.SpreadS), TokensPerS: jfloat(r.TokensPerS), Notes: r.Notes,
	})
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (r *BenchRow) UnmarshalJSON(b []byte) error {
	var j benchJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = BenchRow{
		Mode: j.Mode, SeqLen: j.SeqLen, Batch: j.Batch, ChunkSize: j.ChunkSize,
		PeakMemGB: float64(j.PeakMemGB), TimesS: fromJ(j.TimesS), MedianS: float64(j.MedianS),
		SpreadS: float64(j.SpreadS), TokensPerS: float64(j.TokensPerS), Notes: j.Notes,
	}
	return nil
}
