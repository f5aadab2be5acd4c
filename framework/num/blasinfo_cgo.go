//go:build cgo && !noopenblas

package num

// char* openblas_get_corename(void);
// char* openblas_get_config(void);
import "C"

import "strings"

func openblasCore() (core, config string) {
	return strings.TrimSpace(C.GoString(C.openblas_get_corename())), strings.TrimSpace(C.GoString(C.openblas_get_config()))
}
