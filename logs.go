package gantry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Stream is an output stream of a container. Its values are the stream
// bytes of Docker's multiplexed log format.
type Stream uint8

// The output streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// LogEntry is one line a container wrote.
type LogEntry struct {
	Stream Stream
	// Time is when the line was written (for a cloud backend, the
	// timestamp its logging service recorded).
	Time time.Time
	// Line is the text, without its trailing newline.
	Line string
	// Partial reports that the container wrote no newline after Line:
	// Line is a part of a longer line (see MaxLogLine) or the last output
	// of a run that did not end with a newline. The log writers then
	// write no newline either, so the bytes come out as they went in.
	Partial bool
}

// MaxLogLine is the longest Line a LogEntry holds. As Docker's log drivers
// do, a longer line is split into parts of MaxLogLine bytes, each but the
// last marked Partial.
const MaxLogLine = 16 << 10

// SplitLogLine calls yield with e, or with the parts of e when its Line is
// longer than MaxLogLine, in order, until yield returns false.
func SplitLogLine(e LogEntry, yield func(LogEntry) bool) bool {
	for len(e.Line) > MaxLogLine {
		part := e
		part.Line, part.Partial = e.Line[:MaxLogLine], true
		if !yield(part) {
			return false
		}
		e.Line = e.Line[MaxLogLine:]
	}
	return yield(e)
}

// TailNone, as LogsOptions.Tail, returns no past lines: with Follow, only
// lines written from now on.
const TailNone = -1

// LogsOptions selects the output Logs returns.
type LogsOptions struct {
	// Stdout and Stderr select the streams; when neither is set, both are
	// returned.
	Stdout bool
	Stderr bool
	// Since and Until bound the entries' times; zero means unbounded.
	// Both are inclusive, as in Docker.
	Since time.Time
	Until time.Time
	// Tail, when positive, returns only the last Tail lines before
	// following. Zero returns all; TailNone returns none. As Docker does,
	// the last Tail lines are taken from both streams and the stream is
	// chosen afterwards, so Tail: 5 with Stderr gives the stderr lines
	// among the last five.
	Tail int
	// Follow keeps the reader open for new lines until the container
	// stops (or Until passes, or the context ends).
	Follow bool
	// Timestamps asks the log writers (CopyLogs, WriteMultiplexed) to
	// prefix each line with its time in UTC, in RFC 3339 with nine
	// fractional digits always, as docker logs --timestamps does
	// (TimestampFormat). Entries always carry their time.
	Timestamps bool
}

// Validate reports a malformed LogsOptions as ErrInvalidArgument.
func (o LogsOptions) Validate() error {
	if o.Tail < TailNone {
		return &FieldError{Field: "Tail", Value: strconv.Itoa(o.Tail), Reason: "want a count, 0 for all or TailNone"}
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && o.Until.Before(o.Since) {
		return &FieldError{Field: "Until", Value: o.Until.Format(time.RFC3339Nano), Reason: "is before Since " + o.Since.Format(time.RFC3339Nano)}
	}
	return nil
}

// Wants reports whether the options select entries of stream s.
func (o LogsOptions) Wants(s Stream) bool {
	if !o.Stdout && !o.Stderr {
		return true
	}
	return (s == Stdout && o.Stdout) || (s == Stderr && o.Stderr)
}

// LogReader yields log entries in order.
type LogReader interface {
	// Next returns the next entry, or io.EOF when there are no more (for
	// a following reader, once the container has stopped). Once Next has
	// returned an error it returns it again.
	Next() (LogEntry, error)
	// Timestamps reports whether the reader was opened with
	// LogsOptions.Timestamps, for the log writers.
	Timestamps() bool
	// Close releases the reader; a pending Next returns. After Close,
	// Next returns io.EOF, once any entries already read ahead are
	// drained.
	Close() error
}

// CopyLogs writes each entry of r to stdout or stderr by its stream, one
// line each, prefixed with its time when r was opened with Timestamps. It
// returns nil when r reaches io.EOF, and closes r either way. A nil writer
// discards its stream.
func CopyLogs(stdout, stderr io.Writer, r LogReader) error {
	defer r.Close()
	var buf []byte
	for {
		e, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		w := stdout
		if e.Stream == Stderr {
			w = stderr
		}
		if w == nil {
			continue
		}
		buf = appendLine(buf[:0], e, r.Timestamps())
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

// WriteMultiplexed writes r to w in Docker's multiplexed stream format, as
// the Docker API sends logs of a container without a terminal: each line is
// a frame with an 8-byte header (the stream byte, three zero bytes, the
// big-endian uint32 length of the payload) followed by the payload. moby's
// stdcopy.StdCopy decodes it. It returns nil at io.EOF and closes r.
func WriteMultiplexed(w io.Writer, r LogReader) error {
	defer r.Close()
	buf := make([]byte, 8, 256)
	for {
		e, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		buf = appendLine(buf[:8], e, r.Timestamps())
		clear(buf[:8])
		buf[0] = byte(e.Stream)
		binary.BigEndian.PutUint32(buf[4:8], uint32(len(buf)-8))
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

func appendLine(buf []byte, e LogEntry, timestamps bool) []byte {
	if timestamps {
		buf = e.Time.UTC().AppendFormat(buf, TimestampFormat)
		buf = append(buf, ' ')
	}
	buf = append(buf, e.Line...)
	if e.Partial {
		return buf
	}
	return append(buf, '\n')
}

// TimestampFormat is the layout of docker logs --timestamps: RFC 3339 with
// nine fractional digits, trailing zeros kept, so every prefix has the
// same width (time.RFC3339Nano drops them).
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"
