package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
)

// Logs returns the container's output across its runs, as the daemon's log
// driver kept it. The daemon is always asked for its timestamps, which
// become LogEntry.Time and are cut from the line; opts.Timestamps only
// tells the log writers to print them. Tail, Since, Until and the stream
// choice are the daemon's own (so Tail counts both streams before one is
// chosen, as Docker does).
func (r *Runtime) Logs(ctx context.Context, id string, opts gantry.LogsOptions) (_ gantry.LogReader, err error) {
	defer gantry.WrapOp(&err, backend, "logs", id)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := r.join(ctx)
	c, err := r.resolve(ctx, id)
	if err != nil {
		cancel()
		return nil, err
	}
	lo := client.ContainerLogsOptions{
		ShowStdout: opts.Wants(gantry.Stdout),
		ShowStderr: opts.Wants(gantry.Stderr),
		Timestamps: true,
		Follow:     opts.Follow,
	}
	switch {
	case opts.Tail == gantry.TailNone:
		lo.Tail = "0"
	case opts.Tail > 0:
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = unixNano(opts.Since)
	}
	if !opts.Until.IsZero() {
		lo.Until = unixNano(opts.Until)
	}
	body, err := r.cli.ContainerLogs(ctx, c.ID, lo)
	if err != nil {
		cancel()
		return nil, r.closedOr(classify(err, "read logs"))
	}
	lr := &logReader{
		r:          r,
		id:         id,
		body:       body,
		cancel:     cancel,
		timestamps: opts.Timestamps,
		tty:        c.Config.Tty,
		reorder:    !opts.Follow,
		entries:    make(chan gantry.LogEntry),
		done:       make(chan struct{}),
	}
	go lr.run()
	return lr, nil
}

// unixNano writes t as the API's "seconds.nanoseconds" timestamp, which
// keeps every digit Docker's own timestamps have.
func unixNano(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// logReader turns the daemon's log stream into entries. A goroutine
// decodes the stream and hands each entry over unbuffered, so the daemon
// is read no faster than Next is called.
type logReader struct {
	r          *Runtime
	id         string
	body       io.ReadCloser
	cancel     context.CancelFunc
	timestamps bool
	// tty: the container has a terminal, so its stream has no frames and
	// its lines end in \r\n.
	tty bool
	// reorder: entries are put back in time order across the two streams
	// before they are handed over (see deliver).
	reorder bool
	pending []gantry.LogEntry

	entries chan gantry.LogEntry // closed when the stream ends
	done    chan struct{}        // closed by Close
	once    sync.Once

	mu  sync.Mutex
	err error // why the stream ended; set before entries is closed
}

// errReaderClosed ends the decoding when Close is called.
var errReaderClosed = errors.New("log reader closed")

func (lr *logReader) run() {
	defer lr.cancel()
	var err error
	if lr.tty {
		err = lr.decodeRaw()
	} else {
		// stdcopy hands each frame of the multiplexed stream to the
		// writer of its stream in one Write, and the daemon sends each
		// log message as one frame; so a Write is one message, and a line
		// Docker split (over 16 KiB) stays split.
		_, err = stdcopy.StdCopy(streamWriter{lr, gantry.Stdout}, streamWriter{lr, gantry.Stderr}, lr.body)
	}
	for err == nil && len(lr.pending) > 0 {
		err = lr.send(lr.pending[0])
		lr.pending = lr.pending[1:]
	}
	switch {
	case err == nil, errors.Is(err, errReaderClosed):
		err = io.EOF
	default:
		err = lr.r.closedOr(classify(err, "read logs"))
		gantry.WrapOp(&err, backend, "logs", lr.id)
	}
	lr.mu.Lock()
	lr.err = err
	lr.mu.Unlock()
	close(lr.entries)
}

// decodeRaw reads the stream of a container with a terminal, which has no
// frames: one stream, each message a line of its own.
func (lr *logReader) decodeRaw() error {
	br := bufio.NewReader(lr.body)
	for {
		msg, err := br.ReadBytes('\n')
		if len(msg) > 0 {
			if werr := lr.emit(gantry.Stdout, msg); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type streamWriter struct {
	lr     *logReader
	stream gantry.Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.lr.emit(w.stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// emit parses one message, "<RFC 3339 time> <text>[\n]", and hands it to
// Next. The trailing newline (\r\n from a terminal) is cut; a message
// without one (the last line of a run, or a part of a line Docker split)
// is Partial, and keeps its text whole, as does any other \r.
func (lr *logReader) emit(stream gantry.Stream, msg []byte) error {
	stamp, text, ok := bytes.Cut(msg, []byte{' '})
	if !ok {
		return fmt.Errorf("log message %q has no timestamp", msg)
	}
	t, err := time.Parse(time.RFC3339Nano, string(stamp))
	if err != nil {
		return fmt.Errorf("log message timestamp: %w", err)
	}
	text, complete := bytes.CutSuffix(text, []byte{'\n'})
	if complete && lr.tty {
		text = bytes.TrimSuffix(text, []byte{'\r'})
	}
	return lr.deliver(gantry.LogEntry{Stream: stream, Time: t, Line: string(text), Partial: !complete})
}

// reorderWindow is how many entries a reading that does not follow holds
// to put them in time order.
const reorderWindow = 64

// deliver hands e to Next. The daemon stamps each stream's messages as
// it reads them and stores them in the order it writes them, so a line
// on one stream can come after a line of the other stamped a few
// microseconds later (measured on Docker 20.10: "docker logs" prints
// them so). A reading that does not follow holds the last reorderWindow
// entries and hands over the earliest, which puts them in time order
// (each stream's own order is kept, as are ties); a follow hands each
// over as it comes.
func (lr *logReader) deliver(e gantry.LogEntry) error {
	if !lr.reorder {
		return lr.send(e)
	}
	i := len(lr.pending)
	for i > 0 && e.Time.Before(lr.pending[i-1].Time) {
		i--
	}
	lr.pending = slices.Insert(lr.pending, i, e)
	if len(lr.pending) <= reorderWindow {
		return nil
	}
	first := lr.pending[0]
	lr.pending = lr.pending[1:]
	return lr.send(first)
}

// send hands e to Next, or gives up when the reader is closed.
func (lr *logReader) send(e gantry.LogEntry) error {
	select {
	case lr.entries <- e:
		return nil
	case <-lr.done:
		return errReaderClosed
	}
}

// Next returns the next entry, or io.EOF once the stream has ended.
func (lr *logReader) Next() (gantry.LogEntry, error) {
	select {
	case e, ok := <-lr.entries:
		if ok {
			return e, nil
		}
	case <-lr.done:
		return gantry.LogEntry{}, io.EOF
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return gantry.LogEntry{}, lr.err
}

// Timestamps reports whether the reader was opened with
// LogsOptions.Timestamps.
func (lr *logReader) Timestamps() bool { return lr.timestamps }

// Close ends the stream; a pending Next returns io.EOF.
func (lr *logReader) Close() error {
	lr.once.Do(func() {
		close(lr.done)
		lr.cancel()
		lr.body.Close()
	})
	return nil
}
