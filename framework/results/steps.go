package results

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// StepsFile is the name of a cell's per-step metrics stream: one JSON object
// per line and training step, every repeat in the same file (field repeat).
const StepsFile = "metrics.jsonl"

// StepRecord is one line of a cell's per-step metrics stream: one per
// training step, with the validation metrics on the steps where eval.every
// asks for them (and after the last step).
type StepRecord struct {
	Repeat     int      `json:"repeat"`
	Step       int      `json:"step"`
	Loss       Num      `json:"loss"`
	LR         Num      `json:"lr"`
	GradNorm   Num      `json:"grad_norm"`
	TokensPerS Num      `json:"tokens_per_s"`
	ElapsedS   Num      `json:"elapsed_s"`
	ValidLoss  *float64 `json:"valid_loss,omitempty"`
	ValidAcc   *float64 `json:"valid_acc,omitempty"`
}

// Num is a float64 whose JSON form also covers NaN and ±Inf, as the strings
// "NaN", "+Inf" and "-Inf".
type Num float64

// MarshalJSON writes v as a JSON number, or a string when it is not finite.
func (v Num) MarshalJSON() ([]byte, error) { return jfloat(v).MarshalJSON() }

// UnmarshalJSON reads what MarshalJSON writes.
func (v *Num) UnmarshalJSON(b []byte) error { return (*jfloat)(v).UnmarshalJSON(b) }

// StepsPath is the path of the cell's per-step metrics stream.
func (c Cell) StepsPath() string { return filepath.Join(c.Dir, StepsFile) }

// StepWriter appends StepRecords to a stream, one line each, flushed per line
// so that a crash loses at most the line being written.
type StepWriter struct {
	f      *os.File
	repeat int
}

// CreateSteps truncates the cell's stream and opens it for writing.
func (c Cell) CreateSteps() (*StepWriter, error) {
	f, err := os.Create(c.StepsPath())
	if err != nil {
		return nil, c.errorf("create %s: %v", StepsFile, err)
	}
	return &StepWriter{f: f}, nil
}

// SetRepeat sets the repeat number (1-based) written with the next records.
func (w *StepWriter) SetRepeat(k int) { w.repeat = k }

// Write appends one record (its Repeat is set to the writer's).
func (w *StepWriter) Write(r StepRecord) error {
	if w.f == nil {
		return os.ErrClosed
	}
	r.Repeat = w.repeat
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.f.Write(append(b, '\n'))
	return err
}

// Close closes the stream; closing it again does nothing.
func (w *StepWriter) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// ReadSteps reads a per-step stream. A truncated last line (a run killed while
// writing) is ignored; any other malformed line is an error naming it.
func ReadSteps(path string) ([]StepRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readSteps(f, path)
}

func readSteps(r io.Reader, name string) ([]StepRecord, error) {
	var out []StepRecord
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var pending error
	line := 0
	for sc.Scan() {
		line++
		if pending != nil {
			return nil, pending
		}
		var rec StepRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			pending = fmt.Errorf("%s:%d: %v", name, line, err)
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}
