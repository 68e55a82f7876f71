package logsvc

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gantryhq/gantry/gcptest/internal/quota"
)

func TestProjectNumbers(t *testing.T) {
	svc := New(WithProjectNumbers(map[string]string{"123": "proj"}))
	c := newClient(t, start(t, svc))
	if err := svc.Ingest(runEntry("123", "j", "j-1", "stdout", 1, "by number"), runEntry("proj", "j", "j-1", "stdout", 2, "by id")); err != nil {
		t.Fatal(err)
	}
	for _, names := range [][]string{{"projects/proj"}, {"projects/123"}, {"projects/123/locations/global/buckets/_Default/views/_AllLogs"}} {
		got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: names})
		if err != nil {
			t.Fatal(err)
		}
		var logNames []string
		for _, e := range got {
			logNames = append(logNames, e.GetLogName())
		}
		want := []string{"projects/proj/logs/run.googleapis.com%2Fstdout", "projects/proj/logs/run.googleapis.com%2Fstdout"}
		if diff := cmp.Diff(want, logNames); diff != "" {
			t.Errorf("ListLogEntries(%v) log names (-want +got):\n%s", names, diff)
		}
	}
	// The number is translated in the entries, not in filters: a filter
	// on the number's log name matches nothing, as on Cloud Logging.
	got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/123"}, Filter: `logName="projects/123/logs/run.googleapis.com%2Fstdout"`})
	if err != nil || len(got) != 0 {
		t.Errorf("filter on the number's log name: %d entries, %v; want none", len(got), err)
	}
	logs, err := c.ListLogs(context.Background(), &loggingpb.ListLogsRequest{Parent: "projects/123"}).Next()
	if err != nil || logs != "projects/proj/logs/run.googleapis.com%2Fstdout" {
		t.Errorf("ListLogs(projects/123) = %q, %v", logs, err)
	}
}

// TestIngestionDelay writes entries in timestamp order and checks that
// none is listed before the least delay, that all are after the most, and
// that a tail receives them in another order than they were written in.
func TestIngestionDelay(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 400 * time.Millisecond
	svc := New(WithIngestionDelay(lo, hi, 7))
	c := newClient(t, start(t, svc))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/p"}, BufferWindow: durationpb.New(0)}); err != nil {
		t.Fatal(err)
	}
	waitTails(t, svc, 1)
	const n = 40
	var written []string
	start := time.Now()
	for i := range n {
		e := runEntry("p", "j", "j-1", "stdout", i, "line")
		written = append(written, e.InsertId)
		if err := svc.Ingest(e); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}}); len(got) != 0 && time.Since(start) < lo {
		t.Errorf("%d entries listed before the least delay", len(got))
	}
	var arrived []string
	for len(arrived) < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		arrived = append(arrived, ids(resp.GetEntries())...)
	}
	if took := time.Since(start); took < lo {
		t.Errorf("all entries tailed after %s, before the least delay %s", took, lo)
	}
	if slices.Equal(arrived, written) {
		t.Errorf("entries arrived in the order they were written: %v", arrived)
	}
	slices.Sort(arrived)
	if !slices.Equal(arrived, written) {
		t.Errorf("tailed %v, want each of %v once", arrived, written)
	}
	got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}})
	if err != nil || !slices.Equal(ids(got), written) {
		t.Errorf("after the delay, listed %v (%v); want every entry in timestamp order", ids(got), err)
	}
	for _, e := range got {
		if d := e.ReceiveTimestamp.AsTime().Sub(start); d < lo-10*time.Millisecond || d > hi+time.Second {
			t.Errorf("entry %s received %s after it was written, want between %s and %s", e.InsertId, d, lo, hi)
		}
	}
}

func TestTailSessionLimit(t *testing.T) {
	svc := New(WithTailSessionLimit(2), WithProjectNumbers(map[string]string{"42": "p"}))
	c := newClient(t, start(t, svc))
	open := func(names ...string) (loggingpb.LoggingServiceV2_TailLogEntriesClient, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := c.TailLogEntries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		return s, cancel
	}
	_, cancel1 := open("projects/p")
	defer cancel1()
	_, cancel2 := open("projects/42", "projects/q")
	defer cancel2()
	waitTails(t, svc, 2)
	third, cancel3 := open("projects/p")
	defer cancel3()
	_, err := third.Recv()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("third session on projects/p: %v, want ResourceExhausted", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if d, ok := d.(*errdetails.ErrorInfo); ok {
			info = d
		}
		if _, ok := d.(*errdetails.RetryInfo); ok {
			t.Error("a session refusal says when to retry, but no time is known")
		}
	}
	if info.GetMetadata()["consumer"] != "projects/42" || info.GetMetadata()["quota_limit_value"] != "2" {
		t.Errorf("ErrorInfo %v, want the consumer by number and the limit 2", info)
	}
	// projects/q has one session open: it can take another.
	_, cancelOther := open("projects/q")
	defer cancelOther()
	waitTails(t, svc, 3)
	cancel1()
	waitTails(t, svc, 2)
	_, cancelAgain := open("projects/p")
	defer cancelAgain()
	waitTails(t, svc, 3)
	if got := svc.TailStats(); got != (TailStats{Open: 3, Peak: 3, Refused: 1}) {
		t.Errorf("TailStats = %+v", got)
	}
}

func TestTailRateLimit(t *testing.T) {
	l := quota.New(time.Now)
	svc := New(WithTailRateLimit(5, l))
	c := newClient(t, start(t, svc))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/p", "projects/q"}, BufferWindow: durationpb.New(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	waitTails(t, svc, 1)
	var batch []*loggingpb.LogEntry
	for i := range 8 {
		batch = append(batch, runEntry("p", "j", "j-1", "stdout", i, "p"))
	}
	batch = append(batch, runEntry("q", "k", "k-1", "stdout", 20, "q"))
	if err := svc.Ingest(batch...); err != nil {
		t.Fatal(err)
	}
	var got []string
	rateLimited := 0
	for len(got)+rateLimited < 9 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(resp.GetEntries())...)
		for _, si := range resp.GetSuppressionInfo() {
			if si.GetReason() != loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT {
				t.Errorf("suppression %v, want RATE_LIMIT", si)
			}
			rateLimited += int(si.GetSuppressedCount())
		}
	}
	if diff := cmp.Diff([]string{"j-000", "j-001", "j-002", "j-003", "j-004", "k-020"}, got); diff != "" {
		t.Errorf("tailed entries (-want +got):\n%s", diff)
	}
	if rateLimited != 3 {
		t.Errorf("%d entries reported as RATE_LIMIT, want 3", rateLimited)
	}
	if st := svc.TailStats(); st.RateLimited != 3 {
		t.Errorf("TailStats.RateLimited = %d, want 3", st.RateLimited)
	}
	var used []string
	for _, u := range l.Usage() {
		used = append(used, fmt.Sprintf("%s:%d/%d", u.Project, u.Used, u.Refused))
	}
	if diff := cmp.Diff([]string{"p:5/3", "q:1/0"}, used); diff != "" {
		t.Errorf("tail entries counted (-want +got):\n%s", diff)
	}
}
