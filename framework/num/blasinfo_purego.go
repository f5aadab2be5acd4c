//go:build !cgo || noopenblas

package num

func openblasCore() (core, config string) { return "", "" }
