package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AxisValue is one varied setting of a cell: its dotted key and its value as
// written in the experiment file.
type AxisValue struct{ Key, Value string }

// maxNameAxes caps the readable part of a cell's directory name (bytes).
const maxNameAxes = 96

// CellName returns a cell's directory name: its axis values, readable and
// sanitised (num_flows=4,share_params=false), then "-" and the first 8 hex
// digits of id, which keeps names unique when the values are cut short or
// sanitised alike. A cell without axes is named by id alone. Each key is its
// last dotted segment unless two axes share it; characters other than
// letters, digits and . _ + - = , become "_", and the readable part is
// capped at 96 bytes.
func CellName(axes []AxisValue, id string) string {
	if len(axes) == 0 {
		return id
	}
	last := func(k string) string { return k[strings.LastIndex(k, ".")+1:] }
	count := map[string]int{}
	for _, a := range axes {
		count[last(a.Key)]++
	}
	parts := make([]string, len(axes))
	for i, a := range axes {
		k := last(a.Key)
		if count[k] > 1 {
			k = a.Key
		}
		parts[i] = k + "=" + a.Value
	}
	s := sanitizeName(strings.Join(parts, ","))
	if len(s) > maxNameAxes {
		s = s[:maxNameAxes]
	}
	return s + "-" + id[:min(8, len(id))]
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("._+-=,", c) >= 0
		if !ok || i == 0 && c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// RepeatsFile records the finished repeats of a cell, so that raising
// `repeats` runs only the new ones.
const RepeatsFile = "repeats.json"

// RepeatRecord is one finished repeat of a cell: its number (1-based), its
// model seed and its metrics.
type RepeatRecord struct {
	Repeat  int            `json:"repeat"`
	Seed    int64          `json:"seed"`
	Metrics map[string]Num `json:"metrics"`
}

// Repeats reads the cell's finished repeats, in order; none when the file does
// not exist (a cell of an older layout, or never trained).
func (c Cell) Repeats() ([]RepeatRecord, error) {
	var recs []RepeatRecord
	err := readJSON(filepath.Join(c.Dir, RepeatsFile), &recs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, c.errorf("%w", err)
	}
	for i, r := range recs {
		if r.Repeat != i+1 {
			return nil, c.errorf("%s: record %d is repeat %d, want %d", RepeatsFile, i+1, r.Repeat, i+1)
		}
	}
	return recs, nil
}

// SaveRepeats replaces the cell's record of finished repeats; nil removes it.
func (c Cell) SaveRepeats(recs []RepeatRecord) error {
	path := filepath.Join(c.Dir, RepeatsFile)
	if recs == nil {
		if err := removeIfExists(path); err != nil {
			return c.errorf("remove %s: %w", RepeatsFile, err)
		}
		return nil
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return c.errorf("encode %s: %w", RepeatsFile, err)
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// RewriteMetrics replaces the metrics of a finished cell (run.json says
// "done") without touching its status or times: the runner shows the first N
// repeats this way when `repeats` is lowered.
func (c Cell) RewriteMetrics(m Metrics) error {
	if s, err := c.Status(); err != nil || s != StatusDone {
		if err == nil {
			err = c.errorf("status %q, not done: its metrics are Finish's to write", s)
		}
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return c.errorf("encode metrics: %w", err)
	}
	return WriteFileAtomic(filepath.Join(c.Dir, MetricsFile), append(data, '\n'))
}

// KeepSteps opens the cell's per-step stream for appending after keeping the
// records of repeats 1 … repeats only (those of a repeat cut short are
// dropped); repeats = 0 truncates it, as CreateSteps does.
func (c Cell) KeepSteps(repeats int) (*StepWriter, error) {
	if repeats == 0 {
		return c.CreateSteps()
	}
	old, err := ReadSteps(c.StepsPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, c.errorf("%w", err)
	}
	var b []byte
	for _, r := range old {
		if r.Repeat < 1 || r.Repeat > repeats {
			continue
		}
		line, err := json.Marshal(r)
		if err != nil {
			return nil, c.errorf("%s: %w", StepsFile, err)
		}
		b = append(append(b, line...), '\n')
	}
	if err := WriteFileAtomic(c.StepsPath(), b); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(c.StepsPath(), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, c.errorf("open %s: %v", StepsFile, err)
	}
	return &StepWriter{f: f}, nil
}

// String names a repeat record for logs.
func (r RepeatRecord) String() string { return fmt.Sprintf("repeat %d (seed %d)", r.Repeat, r.Seed) }
