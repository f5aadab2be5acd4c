package model

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"liquidlab/framework/safetensors"
	"liquidlab/framework/tensor"
)

// SaveCheckpoint writes every parameter to a safetensors file under its PyTorch
// state_dict name (a shared tensor under each of its names, as PyTorch saves it),
// with the dimensions and stage options as metadata.
func (m *Model) SaveCheckpoint(path string, meta map[string]string) error {
	md := map[string]string{"format": "liquidlab checkpoint (PyTorch state_dict names)"}
	for k, v := range m.Dims.Map() {
		md[k] = fmt.Sprint(v)
	}
	for kind, cfg := range m.Configs {
		md["stage."+kind] = m.Descs[kind].Name + " " + m.Descs[kind].Version
		keys := make([]string, 0, len(cfg.Options))
		for k := range cfg.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			md["option."+kind+"."+k] = cfg.Options[k]
		}
	}
	for k, v := range meta {
		md[k] = v
	}
	img, err := safetensors.Encode(m.Params.StateDict(), nil, md)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return writeFileAtomic(path, img)
}

// writeFileAtomic replaces path with data through a temporary file in the same
// directory, synced and renamed over path. Every write, sync and close error
// is returned (a full disk or a file-size limit is a failed checkpoint, not a
// short one), and on error the temporary file is removed, so a failed write
// leaves neither a torn checkpoint nor a leftover that fills the disk.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			// The temporary file is gone; name the checkpoint only.
			if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Path == tmp {
				err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
			}
			err = fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadCheckpoint reads a safetensors state_dict — one this package wrote, or
// one exported from the PyTorch original with
// safetensors.torch.save_file(model.state_dict(), path) — into the model.
// Names a fixture prefixes with "param." are accepted too; anything else under
// another prefix (grad., input., output.) is ignored.
func (m *Model) LoadCheckpoint(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	sd := map[string]*tensor.Tensor{}
	for name, t := range f.Floats {
		switch {
		case len(name) > 6 && name[:6] == "param.":
			sd[name[6:]] = t
		case hasPrefix(name, "grad.", "input.", "output."):
		default:
			sd[name] = t
		}
	}
	if err := m.Params.LoadStateDict(sd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func hasPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}
