package vfs

import (
	"os"
	"sync"
	"syscall"
)

// Op names a file operation that a Fault can target.
type Op int

const (
	OpWrite Op = iota
	OpSync
	OpOpen
)

// Fault decides, for each operation, whether it fails. It is called with the
// operation, the file name and a per-operation counter starting at 1.
type Fault func(op Op, name string, n int) error

// FaultFS wraps an FS and makes chosen operations fail. Writes that fail with
// ErrShortWrite write half their bytes first, like a disk that filled up
// mid-write.
type FaultFS struct {
	FS
	mu     sync.Mutex
	fault  Fault
	counts map[Op]int
}

// NewFaultFS wraps fs; SetFault arms it.
func NewFaultFS(fs FS) *FaultFS { return &FaultFS{FS: fs, counts: map[Op]int{}} }

// SetFault replaces the fault function (nil disarms).
func (f *FaultFS) SetFault(fault Fault) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *FaultFS) check(op Op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[op]++
	if f.fault == nil {
		return nil
	}
	return f.fault(op, name, f.counts[op])
}

// Errors a Fault typically returns.
var (
	ENOSPC = &os.PathError{Op: "write", Err: syscall.ENOSPC}
	EIO    = &os.PathError{Op: "fsync", Err: syscall.EIO}
)

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

type faultFile struct {
	File
	fs   *FaultFS
	name string
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		// A failing write lands part of its bytes, as a full disk does.
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		// A failing write lands part of its bytes, as a full disk does.
		half := 0
		for _, b := range bufs {
			half += len(b)
		}
		half /= 2
		var part [][]byte
		for _, b := range bufs {
			k := min(len(b), half)
			part = append(part, b[:k])
			half -= k
		}
		n, _ := writeEach(f.File, part, off)
		return n, err
	}
	return f.File.WriteVAt(bufs, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return err
	}
	return f.File.Sync()
}
