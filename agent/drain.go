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
// drainGrace of silence, so that nothing the process wrote before it
// exited is lost (that is already in the pipe and reads at once) and a
// background process that inherited the pipe but stays silent does not
// hold the stream open. One that keeps writing does hold it open, as it
// would hold docker exec's; with a limit, the drainer reports io.EOF that
// long after the exit whatever still arrives.
type drainer struct {
	f      *os.File
	limit  time.Duration
	exited atomic.Bool
	exitAt atomic.Int64 // UnixNano, set before exited
}

func newDrainer(f *os.File, done <-chan struct{}, limit time.Duration) *drainer {
	d := &drainer{f: f, limit: limit}
	go func() {
		<-done
		d.exitAt.Store(time.Now().UnixNano())
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
			deadline := time.Now().Add(drainGrace)
			if d.limit > 0 {
				end := time.Unix(0, d.exitAt.Load()).Add(d.limit)
				if !time.Now().Before(end) {
					return 0, io.EOF
				}
				if end.Before(deadline) {
					deadline = end
				}
			}
			d.f.SetReadDeadline(deadline)
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
