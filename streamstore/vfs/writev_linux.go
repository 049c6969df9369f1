package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// maxIovecs is Linux's IOV_MAX: the most buffers one pwritev takes.
const maxIovecs = 1024

// WriteVAt writes bufs with pwritev, continuing after short writes.
func (f osFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	for len(bufs) > 0 {
		batch := bufs[:min(len(bufs), maxIovecs)]
		n, err := unix.Pwritev(int(f.Fd()), batch, off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			total += n
		}
		if err != nil {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		// Drop what was written, cutting into a buffer written in part.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
				n = 0
			}
		}
	}
	return total, nil
}
