package fake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
)

const (
	// entryOverhead is what one kept line costs beyond its text, for the
	// log limit.
	entryOverhead = 48
)

// logBuffer is a container's kept output across all its runs. Lines are
// numbered from 0 for the container's life; dropped lines keep their
// numbers, so readers never see a line twice.
type logBuffer struct {
	mu      sync.Mutex
	entries []gantry.LogEntry
	first   int // number of entries[0]
	bytes   int
	limit   int
	last    time.Time
	running bool
	removed bool
	epoch   int           // counts runs, so a follower stops at the end of its own
	wake    chan struct{} // closed on each change, then replaced lazily
}

// notify wakes the followers. Call with b.mu held.
func (b *logBuffer) notify() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

func (b *logBuffer) begin() {
	b.mu.Lock()
	b.running = true
	b.epoch++
	b.mu.Unlock()
}

func (b *logBuffer) end() {
	b.mu.Lock()
	b.running = false
	b.notify()
	b.mu.Unlock()
}

func (b *logBuffer) remove() {
	b.mu.Lock()
	b.running = false
	b.removed = true
	b.entries = nil
	b.notify()
	b.mu.Unlock()
}

// add keeps one line (a part of one, when partial), dropping the oldest
// ones beyond the limit. Call with b.mu held.
func (b *logBuffer) add(s gantry.Stream, line []byte, partial bool) {
	now := time.Now()
	if now.Before(b.last) {
		now = b.last
	}
	b.last = now
	b.entries = append(b.entries, gantry.LogEntry{Stream: s, Time: now, Line: string(line), Partial: partial})
	b.bytes += len(line) + entryOverhead
	for b.bytes > b.limit && len(b.entries) > 0 {
		b.bytes -= len(b.entries[0].Line) + entryOverhead
		b.entries[0] = gantry.LogEntry{}
		b.entries = b.entries[1:]
		b.first++
	}
}

// write keeps the complete lines of *partial followed by p and leaves the
// rest in *partial. As Docker's log drivers do, a line is cut into parts of
// gantry.MaxLogLine bytes, each but the last marked partial. With cr, a
// carriage return before the newline (as a terminal writes) is dropped
// too.
func (b *logBuffer) write(s gantry.Stream, partial *[]byte, p []byte, cr bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.removed {
		return
	}
	added := false
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := gantry.MaxLogLine - len(*partial)
			if len(p) < room {
				*partial = append(*partial, p...)
				break
			}
			*partial = append(*partial, p[:room]...)
			p = p[room:]
			b.add(s, *partial, true)
			*partial = (*partial)[:0]
			added = true
			continue
		}
		line := p[:i]
		if len(*partial) > 0 {
			*partial = append(*partial, line...)
			line = *partial
		}
		if cr && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		for len(line) > gantry.MaxLogLine {
			b.add(s, line[:gantry.MaxLogLine], true)
			line = line[gantry.MaxLogLine:]
		}
		b.add(s, line, false)
		*partial = (*partial)[:0]
		p = p[i+1:]
		added = true
	}
	if added {
		b.notify()
	}
}

// flush keeps what is left in *partial as a last line, partial since no
// newline ended it.
func (b *logBuffer) flush(s gantry.Stream, partial *[]byte) {
	if len(*partial) == 0 {
		return
	}
	b.mu.Lock()
	if !b.removed {
		b.add(s, *partial, true)
		b.notify()
	}
	b.mu.Unlock()
	*partial = (*partial)[:0]
}

// streamWriter is a Go image's stdout or stderr. Writes block while the
// container is paused and are discarded once the run has ended.
type streamWriter struct {
	r       *run
	stream  gantry.Stream
	partial []byte
}

func (w *streamWriter) Write(p []byte) (int, error) {
	r := w.r
	r.gate.Lock()
	defer r.gate.Unlock()
	for r.gPaused && !r.ended {
		r.resumed.Wait()
	}
	if !r.ended {
		r.c.logs.write(w.stream, &w.partial, p, false)
	}
	return len(p), nil
}

// flush keeps the unterminated last line. Call with r.gate held.
func (w *streamWriter) flush() { w.r.c.logs.flush(w.stream, &w.partial) }

// Logs returns the container's output across all its runs. Tail counts
// the lines of both streams from Since on, as Docker's does, and the
// streams are chosen afterwards. A following reader ends when the
// run that was going on when Logs was called ends; on a container that is
// not running, Follow changes nothing. A container marked for removal is
// an ErrConflict, as in moby.
func (rt *Runtime) Logs(ctx context.Context, id string, opts gantry.LogsOptions) (_ gantry.LogReader, err error) {
	defer gantry.WrapOp(&err, "fake", "logs", id)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err == nil && c.removing {
		err = fmt.Errorf("%w: cannot get logs from a container marked for removal", gantry.ErrConflict)
	}
	rt.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.logs.reader(ctx, opts), nil
}

func (b *logBuffer) reader(ctx context.Context, opts gantry.LogsOptions) *logReader {
	r := &logReader{b: b, ctx: ctx, opts: opts, closed: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	end := b.first + len(b.entries)
	r.end = end
	r.follow = opts.Follow && b.running
	r.epoch = b.epoch
	switch {
	case opts.Tail == gantry.TailNone:
		r.next = end
	case opts.Tail > 0:
		r.next = b.first
		for i, n := len(b.entries)-1, 0; i >= 0; i-- {
			if r.since(&b.entries[i]) {
				n++
				if n == opts.Tail {
					r.next = b.first + i
					break
				}
			}
		}
	default:
		r.next = b.first
	}
	return r
}

// logReader reads a logBuffer. Next and Close may be called from different
// goroutines; Next itself is for one goroutine at a time.
type logReader struct {
	b      *logBuffer
	ctx    context.Context
	opts   gantry.LogsOptions
	next   int
	end    int // where a reader that does not follow stops
	follow bool
	epoch  int
	err    error
	until  *time.Timer

	closeOnce sync.Once
	closed    chan struct{}
}

func (r *logReader) selects(e *gantry.LogEntry) bool {
	return r.opts.Wants(e.Stream) && r.since(e)
}

func (r *logReader) since(e *gantry.LogEntry) bool {
	return r.opts.Since.IsZero() || !e.Time.Before(r.opts.Since)
}

// Next returns the next selected entry, io.EOF at the end (for a follower,
// once its run has ended or Until has passed), ctx's error once the
// context given to Logs ends, and io.EOF after Close.
func (r *logReader) Next() (gantry.LogEntry, error) {
	for r.err == nil {
		if err := r.ctx.Err(); err != nil {
			r.fail(err)
			break
		}
		select {
		case <-r.closed:
			r.fail(io.EOF)
			return gantry.LogEntry{}, r.err
		default:
		}
		b := r.b
		b.mu.Lock()
		r.next = max(r.next, b.first)
		for last := b.first + len(b.entries); r.next < last && (r.follow || r.next < r.end); {
			e := &b.entries[r.next-b.first]
			r.next++
			if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
				r.err = io.EOF
				break
			}
			if r.selects(e) {
				entry := *e
				b.mu.Unlock()
				return entry, nil
			}
		}
		if r.err != nil || !r.follow || !b.running || b.epoch != r.epoch {
			b.mu.Unlock()
			r.fail(io.EOF)
			break
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		var until <-chan time.Time
		if !r.opts.Until.IsZero() {
			if r.until == nil {
				r.until = time.NewTimer(time.Until(r.opts.Until))
			}
			until = r.until.C
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			r.fail(r.ctx.Err())
		case <-r.closed:
			r.fail(io.EOF)
		case <-until:
			r.fail(io.EOF)
		}
	}
	return gantry.LogEntry{}, r.err
}

func (r *logReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	if r.until != nil {
		r.until.Stop()
	}
}

// Timestamps reports whether Logs was asked for timestamps.
func (r *logReader) Timestamps() bool { return r.opts.Timestamps }

// Close ends the reader; a Next waiting for new lines returns io.EOF.
func (r *logReader) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}
