package agent

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// drainer reads a process's output pipe or pty. Once the process has
// exited it keeps reading while data arrives and reports io.EOF after
// drainGrace of silence, so a background grandchild that inherited the
// pipe cannot hold a session open, yet nothing the process wrote before
// it exited is lost: that is already in the pipe and reads at once.
type drainer struct {
	f      *os.File
	exited atomic.Bool
}

func newDrainer(f *os.File, done <-chan struct{}) *drainer {
	d := &drainer{f: f}
	go func() {
		<-done
		d.exited.Store(true)
		// Wakes a read that is blocked right now.
		f.SetReadDeadline(time.Now().Add(drainGrace))
	}()
	return d
}

// Read reads into p. EIO, which a pty master returns once every slave
// descriptor is closed, is end of file.
func (d *drainer) Read(p []byte) (int, error) {
	for {
		fresh := d.exited.Load()
		if fresh {
			d.f.SetReadDeadline(time.Now().Add(drainGrace))
		}
		n, err := d.f.Read(p)
		switch {
		case err == nil || n > 0:
			return n, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			if fresh {
				return 0, io.EOF
			}
			// The deadline was set by the exit watcher while this read was
			// being issued; read again with a deadline of its own.
			continue
		case errors.Is(err, syscall.EIO):
			return 0, io.EOF
		}
		return 0, err
	}
}
