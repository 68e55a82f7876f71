package docker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// frame is one message of the daemon's multiplexed log stream.
func frame(stream byte, at time.Time, text string) []byte {
	msg := at.UTC().Format(time.RFC3339Nano) + " " + text + "\n"
	var h [8]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(msg)))
	return append(h[:], msg...)
}

// read reads every entry of a reader over body.
func read(t *testing.T, body []byte, follow bool) []gantry.LogEntry {
	t.Helper()
	_, cancel := context.WithCancel(context.Background())
	lr := &logReader{body: io.NopCloser(bytes.NewReader(body)), cancel: cancel, reorder: !follow, entries: make(chan gantry.LogEntry), done: make(chan struct{})}
	go lr.run()
	defer lr.Close()
	var out []gantry.LogEntry
	for {
		e, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}

// TestLogsInTimeOrder: the daemon may store a line of one stream after a
// line of the other that it stamped later; a reading that does not follow
// hands them over in time order, each stream's order and ties kept.
func TestLogsInTimeOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 20, 55, 19, 713819562, time.UTC)
	var body []byte
	body = append(body, frame(1, t0, "start")...)
	body = append(body, frame(1, t0.Add(32*time.Nanosecond), "done")...)
	body = append(body, frame(2, t0.Add(10*time.Nanosecond), "end")...)
	body = append(body, frame(1, t0.Add(time.Microsecond), "tie-out")...)
	body = append(body, frame(2, t0.Add(time.Microsecond), "tie-err")...)
	// More than the window, each stream in order, the two interleaved
	// late by a line.
	for i := range 2 * reorderWindow {
		at := t0.Add(time.Millisecond + time.Duration(i)*time.Microsecond)
		body = append(body, frame(1, at.Add(500*time.Nanosecond), fmt.Sprint("out", i))...)
		body = append(body, frame(2, at, fmt.Sprint("err", i))...)
	}
	got := read(t, body, false)
	if len(got) != 5+4*reorderWindow {
		t.Fatalf("%d entries, want %d", len(got), 5+4*reorderWindow)
	}
	want := []string{"start", "end", "done", "tie-out", "tie-err", "err0", "out0", "err1", "out1"}
	for i, w := range want {
		if got[i].Line != w {
			t.Errorf("entry %d = %q, want %q", i, got[i].Line, w)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Errorf("entry %d (%q) is before entry %d (%q)", i, got[i].Line, i-1, got[i-1].Line)
		}
	}
	// A follow hands each entry over as it comes.
	if f := read(t, body, true); f[1].Line != "done" || f[2].Line != "end" {
		t.Errorf("follow: %q, %q, want the daemon's order", f[1].Line, f[2].Line)
	}
}
