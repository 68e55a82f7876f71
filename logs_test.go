package gantry_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/gantryhq/gantry"
)

// sliceReader is a LogReader over fixed entries.
type sliceReader struct {
	entries    []gantry.LogEntry
	timestamps bool
	err        error
	closed     bool
}

func (r *sliceReader) Next() (gantry.LogEntry, error) {
	if len(r.entries) == 0 {
		if r.err != nil {
			return gantry.LogEntry{}, r.err
		}
		return gantry.LogEntry{}, io.EOF
	}
	e := r.entries[0]
	r.entries = r.entries[1:]
	return e, nil
}
func (r *sliceReader) Timestamps() bool { return r.timestamps }
func (r *sliceReader) Close() error     { r.closed = true; return nil }

var t0 = time.Date(2026, 11, 28, 9, 40, 0, 123456789, time.UTC)

func entries() []gantry.LogEntry {
	return []gantry.LogEntry{
		{Stream: gantry.Stdout, Time: t0, Line: "out 1"},
		{Stream: gantry.Stderr, Time: t0.Add(time.Millisecond), Line: "err 1"},
		{Stream: gantry.Stdout, Time: t0.Add(2 * time.Millisecond), Line: ""},
		{Stream: gantry.Stdout, Time: t0.Add(3 * time.Millisecond), Line: strings.Repeat("x", 70000)},
	}
}

func TestCopyLogs(t *testing.T) {
	var out, errb bytes.Buffer
	r := &sliceReader{entries: entries()}
	if err := gantry.CopyLogs(&out, &errb, r); err != nil {
		t.Fatal(err)
	}
	if want := "out 1\n\n" + strings.Repeat("x", 70000) + "\n"; out.String() != want {
		t.Errorf("stdout = %.40q..., want %.40q...", out.String(), want)
	}
	if errb.String() != "err 1\n" {
		t.Errorf("stderr = %q", errb.String())
	}
	if !r.closed {
		t.Error("CopyLogs did not close the reader")
	}
}

func TestCopyLogsTimestamps(t *testing.T) {
	var out bytes.Buffer
	r := &sliceReader{entries: entries()[:1], timestamps: true}
	if err := gantry.CopyLogs(&out, nil, r); err != nil {
		t.Fatal(err)
	}
	if want := "2026-11-28T09:40:00.123456789Z out 1\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestCopyLogsPassesReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := &sliceReader{entries: entries()[:1], err: boom}
	if err := gantry.CopyLogs(io.Discard, io.Discard, r); !errors.Is(err, boom) {
		t.Fatalf("CopyLogs() = %v, want %v", err, boom)
	}
}

// TestWriteMultiplexedDecodesWithMoby proves the stream is byte-compatible
// with Docker's by decoding it with moby's own stdcopy.
func TestWriteMultiplexedDecodesWithMoby(t *testing.T) {
	for _, ts := range []bool{false, true} {
		var mux bytes.Buffer
		if err := gantry.WriteMultiplexed(&mux, &sliceReader{entries: entries(), timestamps: ts}); err != nil {
			t.Fatal(err)
		}
		var gotOut, gotErr bytes.Buffer
		if _, err := stdcopy.StdCopy(&gotOut, &gotErr, &mux); err != nil {
			t.Fatalf("stdcopy.StdCopy: %v", err)
		}
		var wantOut, wantErr bytes.Buffer
		if err := gantry.CopyLogs(&wantOut, &wantErr, &sliceReader{entries: entries(), timestamps: ts}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
			t.Errorf("timestamps=%v stdout (-want +got):\n%.500s", ts, diff)
		}
		if diff := cmp.Diff(wantErr.String(), gotErr.String()); diff != "" {
			t.Errorf("timestamps=%v stderr (-want +got):\n%s", ts, diff)
		}
	}
}

func TestWriteMultiplexedHeader(t *testing.T) {
	var mux bytes.Buffer
	r := &sliceReader{entries: []gantry.LogEntry{{Stream: gantry.Stderr, Line: "ab"}}}
	if err := gantry.WriteMultiplexed(&mux, r); err != nil {
		t.Fatal(err)
	}
	want := []byte{2, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', '\n'}
	if !bytes.Equal(mux.Bytes(), want) {
		t.Errorf("frame = %v, want %v", mux.Bytes(), want)
	}
}

func TestLogsOptionsWants(t *testing.T) {
	for _, tt := range []struct {
		o        gantry.LogsOptions
		out, err bool
	}{
		{gantry.LogsOptions{}, true, true},
		{gantry.LogsOptions{Stdout: true}, true, false},
		{gantry.LogsOptions{Stderr: true}, false, true},
		{gantry.LogsOptions{Stdout: true, Stderr: true}, true, true},
	} {
		if tt.o.Wants(gantry.Stdout) != tt.out || tt.o.Wants(gantry.Stderr) != tt.err {
			t.Errorf("%+v: Wants(stdout, stderr) = %v, %v; want %v, %v", tt.o, tt.o.Wants(gantry.Stdout), tt.o.Wants(gantry.Stderr), tt.out, tt.err)
		}
	}
}

func TestTimestampsKeepNineDigits(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	for at, want := range map[time.Time]string{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC):         "2026-01-02T03:04:05.000000000Z a\n",
		time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC): "2026-01-02T03:04:05.120000000Z a\n",
		time.Date(2026, 1, 2, 4, 4, 5, 7, loc):              "2026-01-02T03:04:05.000000007Z a\n",
	} {
		var out bytes.Buffer
		r := &sliceReader{entries: []gantry.LogEntry{{Stream: gantry.Stdout, Time: at, Line: "a"}}, timestamps: true}
		if err := gantry.CopyLogs(&out, nil, r); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("CopyLogs of a line at %v = %q, want %q", at, out.String(), want)
		}
	}
}

func TestPartialLinesGetNoNewline(t *testing.T) {
	long := strings.Repeat("x", gantry.MaxLogLine) + "tail"
	var parts []gantry.LogEntry
	gantry.SplitLogLine(gantry.LogEntry{Stream: gantry.Stderr, Line: long}, func(e gantry.LogEntry) bool {
		parts = append(parts, e)
		return true
	})
	if len(parts) != 2 || !parts[0].Partial || parts[1].Partial || len(parts[0].Line) != gantry.MaxLogLine || parts[1].Line != "tail" {
		t.Fatalf("SplitLogLine of %d bytes gave %d parts: partial %v/%v", len(long), len(parts), parts[0].Partial, parts[len(parts)-1].Partial)
	}
	parts = append(parts, gantry.LogEntry{Stream: gantry.Stderr, Line: "no newline at the end", Partial: true})
	var out, errb bytes.Buffer
	if err := gantry.CopyLogs(&out, &errb, &sliceReader{entries: parts}); err != nil {
		t.Fatal(err)
	}
	if want := long + "\nno newline at the end"; errb.String() != want {
		t.Errorf("CopyLogs wrote %d bytes ending %q, want the %d bytes as written", errb.Len(), errb.String()[max(0, errb.Len()-30):], len(want))
	}
	n := 0
	if gantry.SplitLogLine(gantry.LogEntry{Line: long + long}, func(gantry.LogEntry) bool { n++; return n < 2 }) || n != 2 {
		t.Errorf("SplitLogLine did not stop when yield returned false (%d calls)", n)
	}
}
