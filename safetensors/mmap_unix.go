//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only into memory. The mapping
// stays valid after f is closed; release it with unmapFile.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

// unmapFile releases a mapping made by mapFile.
func unmapFile(b []byte) error {
	if b == nil {
		return nil
	}
	return syscall.Munmap(b)
}
