//go:build !linux

package num

import "errors"

func allowedCPUs() ([]int, error) { return nil, errors.New("pinning worker threads needs Linux") }

func pinThread(int) error { return errors.New("pinning worker threads needs Linux") }

func pinThreadTo([]int) error { return errors.New("pinning worker threads needs Linux") }
