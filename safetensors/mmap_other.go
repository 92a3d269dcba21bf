//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f into memory: on systems without
// syscall.Mmap the file is loaded instead of mapped.
func mapFile(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// unmapFile releases the memory of mapFile (a no-op: the garbage collector
// owns it).
func unmapFile([]byte) error { return nil }
