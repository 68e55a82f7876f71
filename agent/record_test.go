package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// refLines is the reference line count: one per '\n', one more for bytes
// after the last.
func refLines(b []byte) int64 {
	n := int64(bytes.Count(b, []byte{'\n'}))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

func TestRecordLine(t *testing.T) {
	got := string(Record{ExitCode: 137, Signal: 9, StdoutLines: 10000, StderrLines: 2}.Line())
	want := `{"message":"gantry-agent: exit 137","logging.googleapis.com/labels":{"gantry-agent-record":"exit"},"gantryAgentRecord":{"v":2,"exitCode":137,"signal":9,"stdoutLines":10000,"stderrLines":2,"restarts":0,"health":"","failingStreak":0,"startedAt":"0001-01-01T00:00:00Z","finishedAt":"0001-01-01T00:00:00Z"}}` + "\n"
	if got != want {
		t.Fatalf("Line() =\n%s\nwant\n%s", got, want)
	}
	started := time.Date(2026, 12, 1, 19, 30, 0, 123456789, time.FixedZone("CET", 3600))
	r := Record{ExitCode: 3, StdoutLines: 10000, StderrLines: 2, Restarts: 1, Health: "unhealthy", FailingStreak: 3,
		StartedAt: started, FinishedAt: started.Add(62*time.Second + 376543211*time.Nanosecond)}
	got = string(r.Line())
	want = `{"message":"gantry-agent: exit 3","logging.googleapis.com/labels":{"gantry-agent-record":"exit"},"gantryAgentRecord":{"v":2,"exitCode":3,"signal":0,"stdoutLines":10000,"stderrLines":2,"restarts":1,"health":"unhealthy","failingStreak":3,"startedAt":"2026-12-01T18:30:00.123456789Z","finishedAt":"2026-12-01T18:31:02.5Z"}}` + "\n"
	if got != want {
		t.Fatalf("Line() =\n%s\nwant\n%s", got, want)
	}
}

// TestParseRecordV2: every field of version 2 reads back as written,
// times as the same instant in UTC.
func TestParseRecordV2(t *testing.T) {
	started := time.Date(2026, 12, 1, 19, 30, 0, 1, time.FixedZone("X", -7200))
	r := Record{ExitCode: 143, Signal: 15, StdoutLines: 4, StderrLines: 5, Restarts: 7, Health: "healthy", FailingStreak: 0,
		StartedAt: started, FinishedAt: started.Add(time.Hour)}
	got, err := ParseRecord(r.Line())
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(r.StartedAt) || !got.FinishedAt.Equal(r.FinishedAt) || got.StartedAt.Location() != time.UTC {
		t.Errorf("times %v and %v, want %v and %v in UTC", got.StartedAt, got.FinishedAt, r.StartedAt, r.FinishedAt)
	}
	r.StartedAt, r.FinishedAt = r.StartedAt.UTC(), r.FinishedAt.UTC()
	if got != r {
		t.Errorf("ParseRecord(Line()) = %+v, want %+v", got, r)
	}
	if !bytes.Equal(got.Line(), r.Line()) {
		t.Errorf("the line read back writes as %s, not %s", got.Line(), r.Line())
	}
	for _, bad := range []string{
		`{"gantryAgentRecord":{"v":2,"exitCode":0,"stdoutLines":0,"stderrLines":0}}`,
		`{"gantryAgentRecord":{"v":2,"exitCode":0,"stdoutLines":0,"stderrLines":0,"startedAt":"yesterday","finishedAt":"0001-01-01T00:00:00Z"}}`,
		`{"gantryAgentRecord":{"v":2,"exitCode":0,"stdoutLines":0,"stderrLines":0,"restarts":-1,"startedAt":"0001-01-01T00:00:00Z","finishedAt":"0001-01-01T00:00:00Z"}}`,
		`{"gantryAgentRecord":{"v":2,"exitCode":0,"stdoutLines":0,"stderrLines":0,"failingStreak":-1,"startedAt":"0001-01-01T00:00:00Z","finishedAt":"0001-01-01T00:00:00Z"}}`,
	} {
		if _, err := ParseRecord([]byte(bad)); err == nil || errors.Is(err, ErrNoRecord) {
			t.Errorf("ParseRecord(%s) = %v, want an error other than ErrNoRecord", bad, err)
		}
	}
}

// TestRecordV1: a version 1 record (from an older agent) still reads,
// writes back as it was, and verifies under its own MAC.
func TestRecordV1(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	r := Record{ExitCode: 3, StdoutLines: 2, StderrLines: 1, Run: "exec-1", v1: true}
	r.MAC = r.mac(secret, "c1")
	line := `{"message":"gantry-agent: exit 3","logging.googleapis.com/labels":{"gantry-agent-record":"exit"},"gantryAgentRecord":{"v":1,"exitCode":3,"signal":0,"stdoutLines":2,"stderrLines":1,"run":"exec-1","mac":"` + r.MAC + `"}}` + "\n"
	if string(r.Line()) != line {
		t.Fatalf("Line() = %s, want %s", r.Line(), line)
	}
	got, err := ParseRecord([]byte(line))
	if err != nil || got != r || !got.Verify(secret, "c1") {
		t.Fatalf("ParseRecord = %+v, %v (verifies %v), want %+v", got, err, got.Verify(secret, "c1"), r)
	}
	// The same fields under the version 2 MAC do not verify as version 1.
	v2 := r
	v2.v1 = false
	v2.MAC = v2.mac(secret, "c1")
	if v2.MAC == r.MAC {
		t.Error("the version 1 and 2 MACs of the same fields are equal")
	}
}

func TestParseRecord(t *testing.T) {
	r := Record{ExitCode: 3, StdoutLines: 1 << 40, StderrLines: 7}
	if got, err := ParseRecord(r.Line()); err != nil || got != r {
		t.Errorf("ParseRecord(Line()) = %+v, %v; want %+v", got, err, r)
	}
	// Cloud Logging's jsonPayload: the labels moved out, the rest kept.
	payload := `{"message":"gantry-agent: exit 0","gantryAgentRecord":{"v":1,"exitCode":0,"signal":0,"stdoutLines":5,"stderrLines":0}}`
	if got, err := ParseRecord([]byte(payload)); err != nil || got != (Record{StdoutLines: 5, v1: true}) {
		t.Errorf("ParseRecord(jsonPayload) = %+v, %v", got, err)
	}
	if _, err := ParseRecord([]byte(`{"message":"hello"}`)); !errors.Is(err, ErrNoRecord) {
		t.Errorf("an ordinary entry: %v, want ErrNoRecord", err)
	}
	for _, bad := range []string{
		`not json`,
		`{"gantryAgentRecord":{"v":3,"exitCode":0,"stdoutLines":0,"stderrLines":0}}`,
		`{"gantryAgentRecord":{"exitCode":0,"stdoutLines":0,"stderrLines":0}}`,
		`{"gantryAgentRecord":{"v":1,"stdoutLines":0,"stderrLines":0}}`,
		`{"gantryAgentRecord":{"v":1,"exitCode":0,"stderrLines":0}}`,
		`{"gantryAgentRecord":{"v":1,"exitCode":0,"stdoutLines":-1,"stderrLines":0}}`,
	} {
		if _, err := ParseRecord([]byte(bad)); err == nil || errors.Is(err, ErrNoRecord) {
			t.Errorf("ParseRecord(%s) = %v, want an error other than ErrNoRecord", bad, err)
		}
	}
}

// shortWriter takes at most limit bytes of each write.
type shortWriter struct {
	buf   bytes.Buffer
	limit int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		w.buf.Write(p[:w.limit])
		return w.limit, io.ErrShortWrite
	}
	return w.buf.Write(p)
}

func TestLineCounter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   int64
	}{
		{"nothing", nil, 0},
		{"empty writes", []string{"", ""}, 0},
		{"one empty line", []string{"\n"}, 1},
		{"empty lines", []string{"\n\n", "\n"}, 3},
		{"no trailing newline", []string{"a\nb"}, 2},
		{"a line in pieces", []string{"a", "b", "c"}, 1},
		{"a line in pieces ended", []string{"a", "b", "c\n"}, 1},
		{"newline then partial", []string{"a\n", "b"}, 2},
		{"binary", []string{"\x00\r\n\xff", "\n\x00"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := NewLineCounter(&buf)
			for _, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if c.Lines() != tc.want || buf.String() != strings.Join(tc.writes, "") {
				t.Errorf("Lines() = %d, passed %q; want %d", c.Lines(), buf.String(), tc.want)
			}
		})
	}
	// Only what the writer took counts.
	w := &shortWriter{limit: 2}
	c := NewLineCounter(w)
	if n, err := c.Write([]byte("a\nb\nc\n")); n != 2 || err == nil {
		t.Fatalf("short Write = %d, %v", n, err)
	}
	if c.Lines() != 1 {
		t.Errorf("Lines() after a short write of %q = %d, want 1", w.buf.String(), c.Lines())
	}
}

func TestWriteRecordSeals(t *testing.T) {
	var out, errb bytes.Buffer
	outc, errc := NewLineCounter(&out), NewLineCounter(&errb)
	outc.Write([]byte("1\n2\n3"))
	errc.Write([]byte("oops\n"))
	if err := WriteRecord(outc, errc, Record{ExitCode: 4, StdoutLines: 99}); err != nil {
		t.Fatal(err)
	}
	outc.Write([]byte("late\n"))
	errc.Write([]byte("late\n"))
	want := "oops\n" + string(Record{ExitCode: 4, StdoutLines: 3, StderrLines: 1}.Line())
	if out.String() != "1\n2\n3" || errb.String() != want {
		t.Errorf("stdout %q stderr %q; want %q and %q", out.String(), errb.String(), "1\n2\n3", want)
	}

	// A last line of stderr without '\n' is ended first, and counted
	// once.
	errb.Reset()
	errc = NewLineCounter(&errb)
	errc.Write([]byte("a\nb"))
	WriteRecord(nil, errc, Record{})
	if want := "a\nb\n" + string(Record{StderrLines: 2}.Line()); errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
}

// FuzzLineCounter: whatever the bytes, however they are split into
// writes and however much of each write the underlying writer takes, the
// counter's count is the reference count of what the writer received.
func FuzzLineCounter(f *testing.F) {
	f.Add([]byte("a\nb\n\nc"), []byte{1, 2, 3})
	f.Add([]byte("\n\n\n"), []byte{0})
	f.Add([]byte("no newline"), []byte{})
	f.Add([]byte("\x00\n\xff\r\n"), []byte{2, 0x81, 1})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		w := &shortWriter{limit: len(data) + 1}
		c := NewLineCounter(w)
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(splits) {
				s := splits[i]
				n = min(n, int(s&0x7f))
				// The high bit makes the writer take only half.
				if s&0x80 != 0 {
					w.limit = n / 2
				} else {
					w.limit = len(data) + 1
				}
			}
			m, _ := c.Write(rest[:n])
			rest = rest[m:]
			if i > len(data)+len(splits)+1 {
				break
			}
		}
		if got, want := c.Lines(), refLines(w.buf.Bytes()); got != want {
			t.Fatalf("Lines() = %d, reference count of %q is %d", got, w.buf.Bytes(), want)
		}
		if !bytes.HasPrefix(data, w.buf.Bytes()) {
			t.Fatalf("the writer got %q, not a prefix of %q", w.buf.Bytes(), data)
		}
	})
}

// runRecorded runs cmd as an agent's main command with Record and
// returns what reached stdout and stderr (the record cut off) and the
// record, checking that the record is the last line of stderr.
func runRecorded(t *testing.T, cfg Config) (stdout, stderr []byte, r Record) {
	t.Helper()
	out, errb := &syncBuffer{}, &syncBuffer{}
	if cfg.Stdout == nil {
		cfg.Stdout = out
	}
	if cfg.Stderr == nil {
		cfg.Stderr = errb
	}
	cfg.Record = true
	a := startAgent(t, cfg)
	a.Wait()
	e := []byte(errb.String())
	if !bytes.HasSuffix(e, []byte("}}\n")) {
		t.Fatalf("stderr does not end with the record: ...%q", e[max(0, len(e)-200):])
	}
	i := bytes.LastIndex(e[:len(e)-1], []byte("\n")) + 1
	r, err := ParseRecord(e[i:])
	if err != nil {
		t.Fatalf("the last line of stderr, %q: %v", e[i:], err)
	}
	if !bytes.Equal(e[i:], r.Line()) {
		t.Fatalf("the record line %q is not as Line writes it", e[i:])
	}
	if bytes.Count(e, []byte("gantryAgentRecord")) != 1 {
		t.Fatalf("stderr holds more than one record: %q", e)
	}
	// The times are the last run's, which the agent reports too; the
	// callers compare the rest.
	st := a.Status()
	if r.StartedAt.IsZero() || !r.StartedAt.Equal(st.StartedAt) || !r.FinishedAt.Equal(st.FinishedAt) || r.FinishedAt.Before(r.StartedAt) {
		t.Fatalf("record started %v finished %v; the agent says %v and %v", r.StartedAt, r.FinishedAt, st.StartedAt, st.FinishedAt)
	}
	r.StartedAt, r.FinishedAt = time.Time{}, time.Time{}
	return []byte(out.String()), e[:i], r
}

func TestRecordCounts(t *testing.T) {
	const big = 300 << 10 // beyond Cloud Logging's 256 KiB entry
	var tenThousand strings.Builder
	for i := range 10000 {
		fmt.Fprintln(&tenThousand, i)
	}
	for _, tc := range []struct {
		name   string
		script string
		// Exact output; a last line of stderr without '\n' gets one
		// before the record.
		stdout, stderr   string
		outLines, errLin int64
		code             int
	}{
		{"nothing", `exit 3`, "", "", 0, 0, 3},
		{"empty lines", `printf '\n\n\n'; printf '\n' >&2`, "\n\n\n", "\n", 3, 1, 0},
		{"no trailing newline", `printf 'a\nb'; printf c >&2`, "a\nb", "c\n", 2, 1, 0},
		{"ten thousand lines", `i=0; while [ $i -lt 10000 ]; do echo $i; i=$((i+1)); done`, tenThousand.String(), "", 10000, 0, 0},
		{"lines beyond 256 KiB", fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x; echo; head -c %d /dev/zero | tr '\0' y; head -c %d /dev/zero | tr '\0' z >&2; echo >&2`, big, 2*big, big),
			strings.Repeat("x", big) + "\n" + strings.Repeat("y", 2*big), strings.Repeat("z", big) + "\n", 2, 1, 0},
		{"binary data", `printf 'a\000\r\nb\377\n\000'; printf '\000\000' >&2`, "a\x00\r\nb\xff\n\x00", "\x00\x00\n", 3, 1, 0},
		{"interleaved", `i=0; while [ $i -lt 1000 ]; do echo o; echo e >&2; printf x >&2; i=$((i+1)); done`,
			strings.Repeat("o\n", 1000), strings.Repeat("e\nx", 1000) + "\n", 1000, 1001, 0},
		{"killed", `echo before; kill -TERM $$`, "before\n", "", 1, 0, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, r := runRecorded(t, Config{Cmd: []string{"sh", "-c", tc.script}})
			if string(stdout) != tc.stdout || string(stderr) != tc.stderr {
				t.Fatalf("stdout (%d bytes) or stderr (%d bytes) not as written", len(stdout), len(stderr))
			}
			sig := 0
			if tc.code > 128 {
				sig = tc.code - 128
			}
			want := Record{ExitCode: tc.code, Signal: sig, StdoutLines: tc.outLines, StderrLines: tc.errLin}
			if r != want {
				t.Errorf("record %+v, want %+v", r, want)
			}
		})
	}
}

// TestRecordCountsLargeBinaryOutput: 2 MiB of pseudo-random bytes on
// stdout, which holds newlines at random places, counted exactly.
func TestRecordCountsLargeBinaryOutput(t *testing.T) {
	const size = 2<<20 + 12345
	stdout, _, r := runRecorded(t, Config{Cmd: []string{os.Args[0]}, Env: genEnv(size)})
	if len(stdout) != size {
		t.Fatalf("stdout got %d bytes, want %d", len(stdout), size)
	}
	if want := refLines(stdout); r.StdoutLines != want || want < 1000 {
		t.Errorf("stdout lines %d, reference %d", r.StdoutLines, want)
	}
}

// TestRecordCountsWhatTheCallerWrote: a caller's own messages through the
// counter it passes as Stderr are counted, in order with the command's.
func TestRecordCountsWhatTheCallerWrote(t *testing.T) {
	errb := &syncBuffer{}
	errc := NewLineCounter(errb)
	fmt.Fprintf(errc, "caller: starting\n")
	a := startAgent(t, Config{Cmd: []string{"sh", "-c", "echo cmd >&2"}, Stderr: errc, Record: true})
	a.Wait()
	st := a.Status()
	want := "caller: starting\ncmd\n" + string(Record{StderrLines: 2, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt}.Line())
	if errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
}

// TestRecordAfterALeftoverWriter: a process the main command left
// behind that keeps writing is cut off as before, and the record, which
// counts exactly what reached the stream, is still the last line.
func TestRecordAfterALeftoverWriter(t *testing.T) {
	setExitGrace(t, 100*time.Millisecond)
	stdout, _, r := runRecorded(t, Config{Cmd: []string{"sh", "-c", `(while :; do echo x; sleep 0.005; done) & echo main`}})
	if r.StdoutLines != refLines(stdout) || !strings.Contains(string(stdout), "main\n") {
		t.Errorf("record %+v for stdout %q", r, stdout)
	}
}

// TestSignedRecord: a counter told to sign writes a record that carries
// its run and a MAC that verifies under the container's secret and ID
// only; a line printed to look like it, or a record changed in any
// field, does not verify.
func TestSignedRecord(t *testing.T) {
	var errb bytes.Buffer
	errc := NewLineCounter(&errb)
	secret := []byte("0123456789abcdef0123456789abcdef")
	errc.SignRecords(secret, "c1", "exec-1")
	fmt.Fprintln(errc, "a line")
	started := time.Now()
	if err := WriteRecord(nil, errc, Record{ExitCode: 3, Restarts: 2, Health: "healthy", FailingStreak: 1, StartedAt: started, FinishedAt: started.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimPrefix(errb.String(), "a line\n")
	r, err := ParseRecord([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if r.Restarts != 2 || r.Health != "healthy" || r.FailingStreak != 1 || !r.StartedAt.Equal(started) || !r.FinishedAt.Equal(started.Add(time.Second)) {
		t.Fatalf("record %+v: the version 2 fields did not read back", r)
	}
	if r.Run != "exec-1" || r.StderrLines != 1 || r.ExitCode != 3 || !r.Verify(secret, "c1") {
		t.Fatalf("record %+v: want run exec-1, 1 stderr line, exit 3, and a MAC that verifies", r)
	}
	for name, bad := range map[string]func() bool{
		"another secret":    func() bool { return r.Verify([]byte("another secret, 32 bytes long..."), "c1") },
		"another container": func() bool { return r.Verify(secret, "c2") },
		"another count":     func() bool { f := r; f.StdoutLines++; return f.Verify(secret, "c1") },
		"another run":       func() bool { f := r; f.Run = "exec-2"; return f.Verify(secret, "c1") },
		"unsigned":          func() bool { f := r; f.MAC = ""; return f.Verify(secret, "c1") },
		"another exit code": func() bool { f := r; f.ExitCode = 0; return f.Verify(secret, "c1") },
		"more restarts":     func() bool { f := r; f.Restarts++; return f.Verify(secret, "c1") },
		"another health":    func() bool { f := r; f.Health = "unhealthy"; return f.Verify(secret, "c1") },
		"another streak":    func() bool { f := r; f.FailingStreak = 0; return f.Verify(secret, "c1") },
		"another start":     func() bool { f := r; f.StartedAt = f.StartedAt.Add(time.Nanosecond); return f.Verify(secret, "c1") },
		"another finish":    func() bool { f := r; f.FinishedAt = f.FinishedAt.Add(-time.Nanosecond); return f.Verify(secret, "c1") },
		"read as version 1": func() bool { f := r; f.v1 = true; return f.Verify(secret, "c1") },
	} {
		if bad() {
			t.Errorf("a record with %s verifies", name)
		}
	}
}

// FuzzParseRecord: any input either fails to parse or gives a record
// whose own line parses back to it, MAC and all.
func FuzzParseRecord(f *testing.F) {
	at := time.Date(2026, 12, 1, 20, 0, 0, 5, time.UTC)
	f.Add(Record{ExitCode: 3, StdoutLines: 2}.Line())
	f.Add(Record{ExitCode: 143, Signal: 15, Restarts: 2, Health: "unhealthy", FailingStreak: 4, StartedAt: at, FinishedAt: at.Add(time.Second), Run: "r", MAC: "ab"}.Line())
	f.Add([]byte(`{"gantryAgentRecord":{"v":1,"exitCode":0,"signal":0,"stdoutLines":0,"stderrLines":0}}`))
	f.Add([]byte(`{"gantryAgentRecord":{"v":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		back, err := ParseRecord(r.Line())
		if err != nil {
			t.Fatalf("the line of a parsed record does not parse: %v\n%s", err, r.Line())
		}
		if !back.StartedAt.Equal(r.StartedAt) || !back.FinishedAt.Equal(r.FinishedAt) {
			t.Fatalf("times changed in a round trip: %+v, then %+v", r, back)
		}
		back.StartedAt, back.FinishedAt, r.StartedAt, r.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if back != r {
			t.Fatalf("round trip changed the record: %+v, then %+v", r, back)
		}
	})
}
