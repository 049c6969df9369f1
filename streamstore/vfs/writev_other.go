//go:build !linux

package vfs

// WriteVAt writes bufs with a WriteAt each (no pwritev here).
func (f osFile) WriteVAt(bufs [][]byte, off int64) (int, error) { return writeEach(f, bufs, off) }
