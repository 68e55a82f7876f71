package logfilter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func jobEntry() *loggingpb.LogEntry {
	return &loggingpb.LogEntry{
		LogName: "projects/p1/logs/run.googleapis.com%2Fstdout",
		Resource: &monitoredres.MonitoredResource{
			Type:   "cloud_run_job",
			Labels: map[string]string{"project_id": "p1", "location": "us-central1", "job_name": "build-7"},
		},
		Labels: map[string]string{
			"run.googleapis.com/execution_name": "build-7-abcde",
			"run.googleapis.com/task_index":     "12",
		},
		Timestamp:        timestamppb.New(t0),
		ReceiveTimestamp: timestamppb.New(t0.Add(time.Second)),
		Severity:         ltype.LogSeverity_WARNING,
		InsertId:         "id-0001",
		Payload:          &loggingpb.LogEntry_TextPayload{TextPayload: "Hello Robot world"},
		Trace:            "projects/p1/traces/abc",
	}
}

func jsonEntry() *loggingpb.LogEntry {
	js, err := structpb.NewStruct(map[string]any{"msg": "Disk full", "code": 507.0, "inner": map[string]any{"ok": false}})
	if err != nil {
		panic(err)
	}
	return &loggingpb.LogEntry{
		LogName:   "projects/p1/logs/app",
		Resource:  &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": "web"}},
		Timestamp: timestamppb.New(t0.Add(time.Hour)),
		Payload:   &loggingpb.LogEntry_JsonPayload{JsonPayload: js},
	}
}

func TestMatch(t *testing.T) {
	job, js := jobEntry(), jsonEntry()
	tests := []struct {
		filter  string
		job, js bool
	}{
		{``, true, true},
		{`resource.type="cloud_run_job"`, true, false},
		{`resource.type = "CLOUD_RUN_JOB"`, true, false},
		{`resource.type!="cloud_run_job"`, false, true},
		{`resource.type:run`, true, true},
		{`resource.type=("cloud_run_job" OR "cloud_run_revision")`, true, true},
		{`resource.labels.job_name=build-7`, true, false},
		{`resource.labels.job_name:*`, true, false},
		{`-resource.labels.job_name:*`, false, true},
		{`resource.labels.service_name=web`, false, true},
		{`labels."run.googleapis.com/execution_name"="build-7-abcde"`, true, false},
		{`labels.run.googleapis.com/execution_name="build-7-abcde"`, true, false},
		{`labels."run.googleapis.com/task_index">=9`, true, false},
		{`labels."run.googleapis.com/task_index"<9`, false, false},
		{`labels."run.googleapis.com/task_index"!=12`, false, false},
		{`NOT labels."run.googleapis.com/task_index"=12`, false, true},
		{`logName="projects/p1/logs/run.googleapis.com%2Fstdout"`, true, false},
		{`logName="projects/p1/logs/run.googleapis.com/stdout"`, true, false},
		{`logName:"stdout"`, true, false},
		{`logName=~"stdout$"`, true, false},
		{`logName!~"stdout$"`, false, true},
		{`timestamp>="2025-03-04T10:00:00Z"`, true, true},
		{`timestamp>"2025-03-04T10:00:00Z"`, false, true},
		{`timestamp>2025-03-04T10:30:00+00:00`, false, true},
		{`timestamp<"2025-03-04T11:00:00.000001Z"`, true, true},
		{`timestamp="2025-03-04T10:00:00Z"`, true, false},
		{`receiveTimestamp>="2025-03-04T10:00:01Z"`, true, false},
		{`receiveTimestamp:*`, true, false},
		{`severity>=WARNING`, true, false},
		{`severity>=warning`, true, false},
		{`severity>ERROR`, false, false},
		{`severity=DEFAULT`, false, true},
		{`severity<=400`, true, true},
		{`severity=400`, true, false},
		{`insertId="id-0001"`, true, false},
		{`insertId:*`, true, false},
		{`textPayload:robot`, true, false},
		{`textPayload="hello robot WORLD"`, true, false},
		{`textPayload:*`, true, false},
		{`jsonPayload.msg:"disk"`, false, true},
		{`jsonPayload.code>500`, false, true},
		{`jsonPayload.inner.ok=false`, false, true},
		{`jsonPayload.inner:*`, false, true},
		{`jsonPayload.missing:*`, false, false},
		{`trace:"traces/abc"`, true, false},
		{`httpRequest.status=200`, false, false},
		{`NOT httpRequest.status=200`, true, true},
		{`robot`, true, false},
		{`"disk full"`, false, true},
		{`web`, false, true},
		{`resource.type="cloud_run_job" severity>=WARNING`, true, false},
		{`resource.type="cloud_run_job" AND severity>=ERROR`, false, false},
		{`resource.type="cloud_run_job" OR severity=DEFAULT`, true, true},
		{`NOT resource.type="cloud_run_job"`, false, true},
		// OR binds tighter than AND: (job OR json) AND (warning).
		{`resource.type="cloud_run_job" OR resource.type="cloud_run_revision" AND severity=WARNING`, true, false},
		{`resource.type="cloud_run_revision" OR (resource.type="cloud_run_job" AND severity=WARNING)`, true, true},
		{`-(textPayload:robot OR textPayload:nothing)`, false, true},
		{`NOT NOT textPayload:robot`, true, false},
	}
	for _, tc := range tests {
		f, err := Parse(tc.filter)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.filter, err)
			continue
		}
		if got := f.Match(job); got != tc.job {
			t.Errorf("%q on the job entry = %v, want %v", tc.filter, got, tc.job)
		}
		if got := f.Match(js); got != tc.js {
			t.Errorf("%q on the JSON entry = %v, want %v", tc.filter, got, tc.js)
		}
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"a" OR NOT "b" AND NOT "c" OR "d"`, `("a" OR NOT "b") AND (NOT "c" OR "d")`},
		{`a b OR c`, `"a" AND ("b" OR "c")`},
		{`a AND (b AND c)`, `"a" AND ("b" AND "c")`},
		{`-a`, `NOT "a"`},
		{`x.y`, `"x.y"`},
		{`resource.type=(a OR b) AND c`, `(resource.type="a" OR resource.type="b") AND "c"`},
		{`resource.type=(a b)`, `resource.type="a" AND resource.type="b"`},
		{`labels."a b"="x\"y\\z\n"`, `labels."a b"="x\"y\\z\n"`},
		{`logName:*`, `logName:*`},
		{`logName:"*"`, `logName:"*"`},
		{"\tseverity>=ERROR\n", `severity>="ERROR"`},
		{`and or`, `"and" AND "or"`},
	}
	for _, tc := range tests {
		f, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := f.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
	}{
		{`(a`, 2},
		{`a)`, 1},
		{`()`, 1},
		{`"abc`, 0},
		{`resource.type=`, 14},
		{`resource.type= `, 15},
		{`AND a`, 0},
		{`a AND`, 5},
		{`a OR`, 4},
		{`- a`, 1},
		{`foo.bar=1`, 0},
		{`resource.zone=x`, 0},
		{`labels=x`, 0},
		{`timestamp>="yesterday"`, 11},
		{`severity=LOUD`, 9},
		{`logName=~"("`, 9},
		{`timestamp.seconds>1`, 0},
		{`SEARCH("x")`, 0},
		{`resource.type=(a OR)`, 19},
		{`textPayload = "x\u12"`, 18},
		{strings.Repeat("(", 200) + "a" + strings.Repeat(")", 200), 101},
		{strings.Repeat("a ", 10001), 0},
	}
	for _, tc := range tests {
		_, err := Parse(tc.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%.40q) error = %v, want a *ParseError", tc.in, err)
			continue
		}
		if pe.Pos != tc.pos {
			t.Errorf("Parse(%.40q) error at %d (%v), want at %d", tc.in, pe.Pos, pe, tc.pos)
		}
		if !strings.Contains(pe.Error(), "position") {
			t.Errorf("error %q does not name the position", pe.Error())
		}
	}
}

func TestConstraintsAndTimeRange(t *testing.T) {
	f, err := Parse(`resource.type="cloud_run_job" resource.labels.job_name="Build-7" ` +
		`labels."run.googleapis.com/execution_name"=e1 logName="projects/p/logs/run.googleapis.com%2Fstderr" ` +
		`(textPayload:x OR resource.labels.job_name=other) severity=ERROR ` +
		`timestamp>="2025-01-01T00:00:00Z" timestamp<"2025-02-01T00:00:00Z" timestamp>"2025-01-05T00:00:00Z"`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Constraint{
		{"resource.type", "cloud_run_job"},
		{"resource.labels.job_name", "build-7"},
		{"labels.run.googleapis.com/execution_name", "e1"},
		{"logName", "projects/p/logs/run.googleapis.com/stderr"},
	}
	if diff := cmp.Diff(want, f.Constraints()); diff != "" {
		t.Errorf("Constraints() mismatch (-want +got):\n%s", diff)
	}
	from, to := f.TimeRange()
	if !from.Equal(time.Date(2025, 1, 5, 0, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("TimeRange() = %v, %v", from, to)
	}
	g, err := Parse(`a OR resource.type=x`)
	if err != nil {
		t.Fatal(err)
	}
	if c := g.Constraints(); len(c) != 0 {
		t.Errorf("a disjunction gave constraints %v", c)
	}
	if from, to := g.TimeRange(); !from.IsZero() || !to.IsZero() {
		t.Errorf("TimeRange() of a filter without timestamps = %v, %v", from, to)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, `resource.type="cloud_run_job" AND resource.labels.job_name="j"`,
		`labels."run.googleapis.com/execution_name"="e" logName:"stdout"`,
		`timestamp>="2025-01-01T00:00:00Z" severity>=ERROR`,
		`"a" OR NOT "b" AND NOT "c" OR "d"`, `-(x:* OR y=(1 OR 2))`, `jsonPayload.a.b=~"^x"`,
		`insertId!="\u0041\"\\"`, `textPayload:robot`,
	} {
		f.Add(s)
	}
	entries := []*loggingpb.LogEntry{jobEntry(), jsonEntry(), {}}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("Parse(%q) = %v, want a *ParseError within the input", s, err)
			}
			return
		}
		out := p.String()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, out, err)
		}
		if again := q.String(); again != out {
			t.Fatalf("String not stable: %q -> %q -> %q", s, out, again)
		}
		for _, e := range entries {
			if p.Match(e) != q.Match(e) {
				t.Fatalf("%q and its String %q disagree on %v", s, out, e)
			}
		}
		p.Constraints()
		p.TimeRange()
	})
}
