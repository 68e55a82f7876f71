package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// logRequests records the ListLogEntries requests the emulator receives.
type logRequests struct {
	mu   sync.Mutex
	reqs []*loggingpb.ListLogEntriesRequest
}

func (l *logRequests) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if r, ok := req.(*loggingpb.ListLogEntriesRequest); ok {
		l.mu.Lock()
		l.reqs = append(l.reqs, proto.Clone(r).(*loggingpb.ListLogEntriesRequest))
		l.mu.Unlock()
	}
	return h(ctx, req)
}

func (l *logRequests) take() []*loggingpb.ListLogEntriesRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// TestLogsQueryDoesTheWork: streams, since, until and tail are in the
// filter and ordering sent to Cloud Logging, not done by reading all and
// dropping; identical lines are distinct entries and both arrive.
func TestLogsQueryDoesTheWork(t *testing.T) {
	rec := &logRequests{}
	srv := newServer(t, gcptest.WithInstantOperations(), gcptest.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(rec.intercept)))
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh(`echo same; echo same; echo same >&2; i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done`))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, rt, c.ID, gantry.LogsOptions{})
	got := byStream(all)
	if len(got[gantry.Stdout]) != 102 || got[gantry.Stdout][0] != "same" || got[gantry.Stdout][1] != "same" || !slices.Equal(got[gantry.Stderr], []string{"same"}) {
		t.Fatalf("logs: %d stdout lines starting %q, stderr %q; want both identical stdout lines, one stderr line, 100 more", len(got[gantry.Stdout]), got[gantry.Stdout][:2], got[gantry.Stderr])
	}
	rec.take()

	job := jobIDForName(c.Name)
	base := fmt.Sprintf(`resource.type="cloud_run_job" AND resource.labels.job_name=%q AND resource.labels.location=%q`, job, region)
	// The log is named by its ending: entries carry the project ID in
	// their logName even when a query names the project by number.
	stdout := `logName:"/logs/run.googleapis.com%2Fstdout"`
	stderr := `logName:"/logs/run.googleapis.com%2Fstderr"`
	since, until := all[10].Time, all[20].Time
	between := 0
	for _, e := range all {
		if e.Stream == gantry.Stdout && !e.Time.Before(since) && !e.Time.After(until) {
			between++
		}
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name  string
		opts  gantry.LogsOptions
		lines int
		want  *loggingpb.ListLogEntriesRequest
	}{
		{"stderr", gantry.LogsOptions{Stderr: true}, 1, &loggingpb.ListLogEntriesRequest{
			Filter: base + " AND " + stderr + ` AND timestamp>="` + ts(rt.mustJob(t, c.ID).GetCreateTime().AsTime()) + `"`, OrderBy: "timestamp asc", PageSize: 1000,
		}},
		{"since and until", gantry.LogsOptions{Stdout: true, Since: since, Until: until}, between, &loggingpb.ListLogEntriesRequest{
			Filter: base + " AND " + stdout + ` AND timestamp>="` + ts(since) + `" AND timestamp<="` + ts(until) + `"`, OrderBy: "timestamp asc", PageSize: 1000,
		}},
		{"tail 3", gantry.LogsOptions{Tail: 3}, 3, &loggingpb.ListLogEntriesRequest{
			Filter: base + " AND (" + stdout + " OR " + stderr + `) AND timestamp>="` + ts(rt.mustJob(t, c.ID).GetCreateTime().AsTime()) + `"`, OrderBy: "timestamp desc", PageSize: 3,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.take()
			got := readAll(t, rt, c.ID, tc.opts)
			if len(got) != tc.lines {
				t.Errorf("%d lines, want %d: %v", len(got), tc.lines, lines(got))
			}
			reqs := rec.take()
			if len(reqs) != 1 {
				t.Fatalf("%d ListLogEntries calls, want 1", len(reqs))
			}
			tc.want.ResourceNames = []string{"projects/" + project}
			if diff := cmp.Diff(tc.want, reqs[0], cmp.Comparer(proto.Equal)); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// mustJob reads the job of container id.
func (r *Runtime) mustJob(t *testing.T, id string) interface{ GetCreateTime() *timestamppb.Timestamp } {
	t.Helper()
	j, err := r.resolve(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return j.pb
}

// writeLine writes a stdout entry for job as Cloud Run would, at time at.
func writeLine(ctx context.Context, rt *Runtime, job, line string, at time.Time) error {
	_, err := rt.logs.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{Entries: []*loggingpb.LogEntry{{
		LogName:   "projects/" + project + "/logs/run.googleapis.com%2Fstdout",
		Resource:  &monitoredres.MonitoredResource{Type: "cloud_run_job", Labels: map[string]string{"project_id": project, "location": region, "job_name": job}},
		Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: line},
		Timestamp: timestamppb.New(at),
	}}})
	return err
}

// TestFollowKeepsLinesWrittenBeforeTheTailIsLive: a line written after
// the history listing but before the tail stream is live is in neither.
// The emulator holds the stream back until the reader has listed five
// times, then the line is written, then the stream goes live; later lines
// come through the stream with timestamps well past the grace period. The
// line must still arrive, exactly once, however long the stream took.
func TestFollowKeepsLinesWrittenBeforeTheTailIsLive(t *testing.T) {
	var srv *gcptest.Server
	var rt *Runtime
	var job string
	var gapAt time.Time
	gapWritten := make(chan struct{})
	var held atomic.Bool
	hold := func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == mLogsTail && !held.Swap(true) {
			from := srv.Calls(mLogsList)
			for srv.Calls(mLogsList) < from+5 && ss.Context().Err() == nil {
				time.Sleep(testPoll)
			}
			gapAt = time.Now()
			if err := writeLine(ss.Context(), rt, job, "gap", gapAt); err != nil {
				t.Errorf("write the gap line: %v", err)
			}
			close(gapWritten)
		}
		return h(s, ss)
	}
	srv = newServer(t, gcptest.WithGRPCServerOptions(grpc.ChainStreamInterceptor(hold)))
	rt = newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c := startForever(t, rt)
	job = jobIDForName(c.Name)
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan gantry.LogEntry, 1024)
	done := make(chan error, 1)
	go func() {
		for {
			e, err := r.Next()
			if err != nil {
				close(got)
				done <- err
				return
			}
			got <- e
		}
	}()
	select {
	case <-gapWritten:
	case <-ctx.Done():
		t.Fatal("the tail stream was never opened")
	}
	var seen []string
	written := 0
	for !slices.ContainsFunc(seen, func(l string) bool { return strings.HasPrefix(l, "later") }) {
		if err := writeLine(ctx, rt, job, fmt.Sprintf("later%d", written), gapAt.Add(10*time.Second+time.Duration(written)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		written++
		select {
		case e := <-got:
			seen = append(seen, e.Line)
		case <-ctx.Done():
			t.Fatalf("no line came through the stream: %v", seen)
		case <-time.After(testPoll):
		}
	}
	if err := rt.Kill(ctx, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	for e := range got {
		seen = append(seen, e.Line)
	}
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("follow ended with %v, want io.EOF", err)
	}
	want := []string{"gap"}
	for i := range written {
		want = append(want, fmt.Sprintf("later%d", i))
	}
	slices.Sort(seen)
	slices.Sort(want)
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("followed lines, each exactly once (-want +got):\n%s", diff)
	}
}

// TestCloseMidFollow: closing a following reader returns once every
// goroutine it started has ended, and Next then reports io.EOF.
func TestCloseMidFollow(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh("echo started; "+forever))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := r.Next(); err != nil || e.Line != "started" {
		t.Fatalf("Next = %+v, %v", e, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if left := goroutinesIn("internal/cloudlog."); left != "" {
		t.Errorf("goroutines of the reader outlive Close:\n%s", left)
	}
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next after Close: %v, want io.EOF", err)
		}
	}
	if err := rt.Kill(ctx, c.ID, ""); err != nil {
		t.Fatal(err)
	}
}

// goroutinesIn returns the stacks of the goroutines that have a frame in
// a function whose name contains pkg.
func goroutinesIn(pkg string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, pkg) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestLogsSpanEveryRunInOrder: a container's logs hold the output of all
// its runs, oldest run first, on the right streams.
func TestLogsSpanEveryRunInOrder(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh(`echo "$CLOUD_RUN_EXECUTION"; echo "err $CLOUD_RUN_EXECUTION" >&2`))
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for range 3 {
		if err := rt.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
			t.Fatal(err)
		}
		j, err := rt.resolve(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, lastSegment(j.latest().GetName()))
	}
	var errs []string
	for _, r := range runs {
		errs = append(errs, "err "+r)
	}
	want := map[gantry.Stream][]string{gantry.Stdout: runs, gantry.Stderr: errs}
	if diff := cmp.Diff(want, byStream(readAll(t, rt, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs of three runs (-want +got):\n%s", diff)
	}
	// As Docker, the tail is of both streams; the stream is chosen after.
	if got := lines(readAll(t, rt, c.ID, gantry.LogsOptions{Tail: 4, Stdout: true})); !slices.Equal(got, []line{{gantry.Stdout, runs[1]}, {gantry.Stdout, runs[2]}}) {
		t.Errorf("tail 4 of stdout = %v, want the last two runs", got)
	}
}

// TestFollowersShareOneTailSession: Cloud Logging allows 10 live-tail
// sessions a project; twelve followers of one Runtime use one, and each
// gets exactly its own container's lines.
func TestFollowersShareOneTailSession(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	const n = 12
	readers := make([]gantry.LogReader, n)
	ids := make([]string, n)
	for i := range n {
		c, err := rt.Create(ctx, sh(fmt.Sprintf(`echo ready %d; sleep 600`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
		if err := rt.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if readers[i], err = rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range readers {
		e, err := r.Next()
		if err != nil || e.Line != fmt.Sprintf("ready %d", i) {
			t.Fatalf("follower %d: %+v, %v; want its ready line", i, e, err)
		}
	}
	if got := rt.tail.Sessions(); got != 1 {
		t.Errorf("%d tail sessions for %d followers, want 1", got, n)
	}
	if got := srv.Calls(mLogsTail); got != 1 {
		t.Errorf("%d TailLogEntries calls, want 1", got)
	}
	for _, id := range ids {
		if err := rt.Kill(ctx, id, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range readers {
		var got []string
		for {
			e, err := r.Next()
			if err != nil {
				break
			}
			got = append(got, e.Line)
		}
		if len(got) != 0 {
			t.Errorf("follower %d read %q after its ready line, want nothing more", i, got)
		}
	}
}
