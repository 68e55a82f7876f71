package agent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// Record is the log completeness record: how the main command ended and
// how many lines the agent wrote on each of its streams. With
// Config.Record the agent writes it as the last line of its stderr, so
// that whoever reads the container's logs (Cloud Logging on Cloud Run)
// knows when it has read every line, and can tell a loss from a delay.
//
// On the stream it is one JSON object on one line, the same every time
// but for the numbers:
//
//	{"message":"gantry-agent: exit 3","logging.googleapis.com/labels":{"gantry-agent-record":"exit"},"gantryAgentRecord":{"v":2,"exitCode":3,"signal":0,"stdoutLines":10000,"stderrLines":2,"restarts":1,"health":"unhealthy","failingStreak":3,"startedAt":"2026-12-01T19:30:00.123456789Z","finishedAt":"2026-12-01T19:31:02.5Z"}}
//
// Cloud Run's logging agent turns such a line into a structured entry:
// message becomes its text, the labels its labels, and gantryAgentRecord
// stays in its jsonPayload. A line is each '\n'-terminated run of bytes
// (empty lines count), plus one more if a stream ended with bytes after
// its last '\n'; the record's own line is not counted. If stderr ended
// with such bytes, a '\n' is written after them, before the record.
type Record struct {
	// ExitCode is the main command's exit code, 128+N when signal N
	// killed it, or 127 or 126 when it could not be started (not found,
	// not executable).
	ExitCode int
	// Signal is N when signal N killed the main command, else 0.
	Signal int
	// StdoutLines and StderrLines count the lines written on each
	// stream, over every run of the main command.
	StdoutLines, StderrLines int64
	// Restarts counts the restarts the restart policy made
	// (Config.Restart); ExitCode and Signal are those of the last run.
	Restarts int
	// Health is the health at the end (gantry.HealthStarting,
	// HealthHealthy or HealthUnhealthy; a monitor reads unhealthy once
	// the main command has exited, as Docker's), or "" without a
	// healthcheck; FailingStreak is its failing streak.
	Health        string
	FailingStreak int
	// StartedAt and FinishedAt are when the last run started and ended;
	// zero when the main command never ran. In the JSON they are RFC 3339
	// with nanoseconds, in UTC.
	StartedAt, FinishedAt time.Time
	// Run names the run the record ends (on Cloud Run the execution,
	// from CLOUD_RUN_EXECUTION), and MAC proves that the agent holding
	// the container's secret wrote it (see LineCounter.SignRecords and
	// Verify); both are empty in an unsigned record.
	Run, MAC string

	// v1 marks a record read from a version 1 line, which has none of
	// the fields version 2 added and whose MAC covers fewer fields.
	v1 bool
}

// recordTime is how the record writes a time: RFC 3339 with nanoseconds,
// in UTC, the zero time included, so that it reads back to the same
// instant and MACs over the same text.
func recordTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// mac is the record's MAC under secret for container id: HMAC-SHA256
// over a label and every field, each length-prefixed, in hex.
func (r Record) mac(secret []byte, id string) string {
	h := hmac.New(sha256.New, secret)
	fields := []string{"gantry-agent record v1", id, r.Run,
		strconv.Itoa(r.ExitCode), strconv.Itoa(r.Signal),
		strconv.FormatInt(r.StdoutLines, 10), strconv.FormatInt(r.StderrLines, 10)}
	if !r.v1 {
		fields[0] = "gantry-agent record v2"
		fields = append(fields, strconv.Itoa(r.Restarts), r.Health, strconv.Itoa(r.FailingStreak),
			recordTime(r.StartedAt), recordTime(r.FinishedAt))
	}
	for _, f := range fields {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Verify reports whether r was signed with secret for container id: a
// line a program printed to look like a record has no valid MAC, and
// one copied from another container or run does not match its id or run.
func (r Record) Verify(secret []byte, id string) bool {
	want := r.mac(secret, id)
	return r.MAC != "" && hmac.Equal([]byte(r.MAC), []byte(want))
}

// RecordVersion is the version ("v") of the record format this package
// writes. Version 2 added restarts, health, failingStreak, startedAt and
// finishedAt, all covered by the MAC; ParseRecord still reads version 1
// records (without them), and Verify checks them as they were signed.
const RecordVersion = 2

// RecordLabel is the key of the label that marks the record's log entry;
// its value is "exit".
const RecordLabel = "gantry-agent-record"

// Line returns the record as it is written: one JSON object and '\n'.
func (r Record) Line() []byte {
	var signed []byte
	if r.MAC != "" {
		run, _ := json.Marshal(r.Run)
		signed = fmt.Appendf(nil, `,"run":%s,"mac":%q`, run, r.MAC)
	}
	v, more := RecordVersion, []byte(nil)
	if r.v1 {
		v = 1
	} else {
		health, _ := json.Marshal(r.Health)
		more = fmt.Appendf(nil, `,"restarts":%d,"health":%s,"failingStreak":%d,"startedAt":%q,"finishedAt":%q`,
			r.Restarts, health, r.FailingStreak, recordTime(r.StartedAt), recordTime(r.FinishedAt))
	}
	return fmt.Appendf(nil, `{"message":"gantry-agent: exit %d","logging.googleapis.com/labels":{%q:"exit"},"gantryAgentRecord":{"v":%d,"exitCode":%d,"signal":%d,"stdoutLines":%d,"stderrLines":%d%s%s}}`+"\n",
		r.ExitCode, RecordLabel, v, r.ExitCode, r.Signal, r.StdoutLines, r.StderrLines, more, signed)
}

// ErrNoRecord is what ParseRecord returns for an object that holds no
// record.
var ErrNoRecord = errors.New("agent: no gantry-agent record")

// ParseRecord reads a record from a JSON object holding a
// gantryAgentRecord member: the line Line returns, or the jsonPayload of
// the log entry Cloud Logging made of it. An object without the member
// is ErrNoRecord; a record of another version, or with a negative
// count, is an error.
func ParseRecord(obj []byte) (Record, error) {
	var v struct {
		R *struct {
			V           *int   `json:"v"`
			ExitCode    *int   `json:"exitCode"`
			Signal      int    `json:"signal"`
			StdoutLines *int64 `json:"stdoutLines"`
			StderrLines *int64 `json:"stderrLines"`
			// Version 2.
			Restarts      int     `json:"restarts"`
			Health        string  `json:"health"`
			FailingStreak int     `json:"failingStreak"`
			StartedAt     *string `json:"startedAt"`
			FinishedAt    *string `json:"finishedAt"`

			Run string `json:"run"`
			MAC string `json:"mac"`
		} `json:"gantryAgentRecord"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(obj), &v); err != nil {
		return Record{}, fmt.Errorf("agent: reading a record: %w", err)
	}
	r := v.R
	switch {
	case r == nil:
		return Record{}, ErrNoRecord
	case r.V == nil || (*r.V != RecordVersion && *r.V != 1):
		return Record{}, fmt.Errorf("agent: a gantry-agent record of an unknown version")
	case r.ExitCode == nil || r.StdoutLines == nil || r.StderrLines == nil:
		return Record{}, fmt.Errorf("agent: a gantry-agent record without its exit code or counts")
	case *r.StdoutLines < 0 || *r.StderrLines < 0 || r.Restarts < 0 || r.FailingStreak < 0:
		return Record{}, fmt.Errorf("agent: a gantry-agent record with a negative count")
	}
	rec := Record{ExitCode: *r.ExitCode, Signal: r.Signal, StdoutLines: *r.StdoutLines, StderrLines: *r.StderrLines, Run: r.Run, MAC: r.MAC}
	if *r.V == 1 {
		rec.v1 = true
		return rec, nil
	}
	if r.StartedAt == nil || r.FinishedAt == nil {
		return Record{}, fmt.Errorf("agent: a gantry-agent record without its times")
	}
	var err error
	for _, t := range []struct {
		dst *time.Time
		src string
	}{{&rec.StartedAt, *r.StartedAt}, {&rec.FinishedAt, *r.FinishedAt}} {
		if *t.dst, err = time.Parse(time.RFC3339Nano, t.src); err != nil {
			return Record{}, fmt.Errorf("agent: a gantry-agent record with a bad time: %w", err)
		}
		if t.dst.IsZero() {
			// The zero time as time.Time{} (no location), as the agent
			// writes a record of a command that never ran.
			*t.dst = time.Time{}
		} else {
			*t.dst = t.dst.UTC()
		}
	}
	rec.Restarts, rec.Health, rec.FailingStreak = r.Restarts, r.Health, r.FailingStreak
	return rec, nil
}

// LineCounter is an io.Writer that passes writes on to another writer
// and counts the lines it passed, as the record counts them. Writes are
// serialized, so the count is that of the bytes the underlying writer
// received in that order, whoever wrote them. Once sealed it takes no
// more writes: they are discarded.
type LineCounter struct {
	mu      sync.Mutex
	w       io.Writer
	lines   int64
	partial bool // the last byte passed on was not '\n'
	sealed  bool
	// With SignRecords: the key, container and run records are signed
	// for.
	secret  []byte
	id, run string
}

// SignRecords makes WriteRecord sign the records it writes through c
// (the stderr counter): with secret, the container's, for container id
// and run, so that a reader holding the secret can tell the agent's
// record from a line that only looks like one.
func (c *LineCounter) SignRecords(secret []byte, id, run string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secret, c.id, c.run = bytes.Clone(secret), id, run
}

// NewLineCounter returns a LineCounter writing to w.
func NewLineCounter(w io.Writer) *LineCounter {
	return &LineCounter{w: w}
}

// Write passes p on and counts the lines in what the underlying writer
// took.
func (c *LineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return len(p), nil
	}
	n, err := c.w.Write(p)
	n = max(0, min(n, len(p)))
	c.count(p[:n])
	return n, err
}

func (c *LineCounter) count(p []byte) {
	if len(p) == 0 {
		return
	}
	c.lines += int64(bytes.Count(p, newline))
	c.partial = p[len(p)-1] != '\n'
}

var newline = []byte{'\n'}

// Lines returns the lines passed on so far; bytes after the last '\n'
// count as one.
func (c *LineCounter) Lines() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.linesLocked()
}

func (c *LineCounter) linesLocked() int64 {
	if c.partial {
		return c.lines + 1
	}
	return c.lines
}

// seal stops c taking writes and returns its final count.
func (c *LineCounter) seal() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sealed = true
	return c.linesLocked()
}

// WriteRecord writes r's line to the writer under errc, after sealing
// both counters, so that the record is the last thing either stream
// gets. The counts are taken from the counters at that moment; r's
// exit code and signal are kept. outc may be nil. When stderr's last
// line has no '\n', one is written first so that the record is a line
// of its own; that line was counted already and still counts once.
func WriteRecord(outc, errc *LineCounter, r Record) error {
	if outc != nil {
		r.StdoutLines = outc.seal()
	}
	errc.mu.Lock()
	defer errc.mu.Unlock()
	errc.sealed = true
	r.StderrLines = errc.linesLocked()
	if errc.secret != nil {
		r.Run = errc.run
		r.MAC = r.mac(errc.secret, errc.id)
	}
	line := r.Line()
	if errc.partial {
		line = append([]byte{'\n'}, line...)
	}
	_, err := errc.w.Write(line)
	return err
}
