package logsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	vkit "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/logging/logadmin"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// start serves svc on a loopback port and returns the client options that
// point Google's clients at it.
func start(t testing.TB, svc *Service) []option.ClientOption {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	svc.Register(g)
	go g.Serve(lis)
	t.Cleanup(func() {
		svc.Close()
		g.Stop()
	})
	return []option.ClientOption{
		option.WithEndpoint(lis.Addr().String()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

func newClient(t testing.TB, opts []option.ClientOption) *vkit.Client {
	t.Helper()
	c, err := vkit.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func jobResource(project, job string) *monitoredres.MonitoredResource {
	return &monitoredres.MonitoredResource{Type: "cloud_run_job", Labels: map[string]string{
		"project_id": project, "location": "us-central1", "job_name": job,
	}}
}

// runEntry is an entry as Cloud Run writes a job's output.
func runEntry(project, job, exec, stream string, sec int, text string) *loggingpb.LogEntry {
	sev := ltype.LogSeverity_INFO
	if stream == "stderr" {
		sev = ltype.LogSeverity_ERROR
	}
	return &loggingpb.LogEntry{
		LogName:   "projects/" + project + "/logs/run.googleapis.com%2F" + stream,
		Resource:  jobResource(project, job),
		Labels:    map[string]string{"run.googleapis.com/execution_name": exec, "run.googleapis.com/task_index": "0"},
		Timestamp: timestamppb.New(base.Add(time.Duration(sec) * time.Second)),
		Severity:  sev,
		InsertId:  fmt.Sprintf("%s-%03d", job, sec),
		Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: text},
	}
}

func list(t *testing.T, c *vkit.Client, req *loggingpb.ListLogEntriesRequest) ([]*loggingpb.LogEntry, error) {
	t.Helper()
	var out []*loggingpb.LogEntry
	it := c.ListLogEntries(context.Background(), req)
	for {
		e, err := it.Next()
		if err == iterator.Done {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func ids(es []*loggingpb.LogEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.GetInsertId())
	}
	return out
}

func TestWriteDefaults(t *testing.T) {
	now := base.Add(time.Hour)
	svc := New(WithClock(func() time.Time { return now }))
	c := newClient(t, start(t, svc))
	ctx := context.Background()
	_, err := c.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{
		LogName:  "projects/p/logs/app%2Fmain",
		Resource: &monitoredres.MonitoredResource{Type: "global"},
		Labels:   map[string]string{"env": "test", "team": "a"},
		Entries: []*loggingpb.LogEntry{
			{Payload: &loggingpb.LogEntry_TextPayload{TextPayload: "one"}, Labels: map[string]string{"team": "b"}},
			{
				LogName:   "/projects/p/logs/other",
				Resource:  jobResource("p", "j"),
				Timestamp: timestamppb.New(base),
				InsertId:  "mine",
				Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: "two"},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("listed %d entries, want 2", len(got))
	}
	// Ascending timestamps: the entry stamped base comes first.
	two, one := got[0], got[1]
	if two.GetLogName() != "projects/p/logs/other" || two.GetResource().GetType() != "cloud_run_job" ||
		two.GetInsertId() != "mine" || !two.GetTimestamp().AsTime().Equal(base) {
		t.Errorf("entry with its own fields came back as %v", two)
	}
	if diff := cmp.Diff(map[string]string{"env": "test", "team": "a"}, two.GetLabels()); diff != "" {
		t.Errorf("default labels on an entry without labels (-want +got):\n%s", diff)
	}
	if one.GetLogName() != "projects/p/logs/app%2Fmain" || one.GetResource().GetType() != "global" ||
		one.GetInsertId() == "" || !one.GetTimestamp().AsTime().Equal(now) || !one.GetReceiveTimestamp().AsTime().Equal(now) {
		t.Errorf("entry taking the request's defaults came back as %v", one)
	}
	if diff := cmp.Diff(map[string]string{"env": "test", "team": "b"}, one.GetLabels()); diff != "" {
		t.Errorf("an entry's own label must win over the default (-want +got):\n%s", diff)
	}
}

// fixture stores entries of two jobs and a service in project p, and one
// in project q, and returns a client.
func fixture(t *testing.T) (*Service, *vkit.Client) {
	svc := New()
	c := newClient(t, start(t, svc))
	err := svc.Ingest(
		runEntry("p", "job-a", "job-a-x1", "stdout", 1, "building Robot"),
		runEntry("p", "job-a", "job-a-x1", "stderr", 2, "warning: disk"),
		runEntry("p", "job-a", "job-a-x2", "stdout", 3, "second run"),
		runEntry("p", "job-b", "job-b-x1", "stdout", 4, "hello from b"),
		runEntry("q", "job-a", "job-a-x1", "stdout", 5, "other project"),
	)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WriteLogEntries(context.Background(), &loggingpb.WriteLogEntriesRequest{
		LogName:  "projects/p/logs/run.googleapis.com%2Frequests",
		Resource: &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": "web", "revision_name": "web-001"}},
		Entries: []*loggingpb.LogEntry{{
			InsertId: "web-006", Timestamp: timestamppb.New(base.Add(6 * time.Second)),
			Severity: ltype.LogSeverity_NOTICE, Payload: &loggingpb.LogEntry_TextPayload{TextPayload: "GET /"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, c
}

func TestListFilters(t *testing.T) {
	_, c := fixture(t)
	all := []string{"job-a-001", "job-a-002", "job-a-003", "job-b-004", "web-006"}
	tests := []struct {
		filter string
		names  []string
		want   []string
	}{
		{``, nil, all},
		{``, []string{"projects/q"}, []string{"job-a-005"}},
		{``, []string{"projects/p", "projects/q"}, append(all[:4:4], "job-a-005", "web-006")},
		{``, []string{"projects/p/locations/global/buckets/_Default/views/_AllLogs"}, all},
		{`resource.type="cloud_run_job"`, nil, all[:4]},
		{`resource.type="cloud_run_job" resource.labels.job_name="job-a"`, nil, all[:3]},
		{`resource.type = "cloud_run_job" AND resource.labels.job_name = "job-a" AND labels."run.googleapis.com/execution_name" = "job-a-x2"`, nil, []string{"job-a-003"}},
		{`resource.labels.service_name=web`, nil, []string{"web-006"}},
		{`logName="projects/p/logs/run.googleapis.com%2Fstderr"`, nil, []string{"job-a-002"}},
		{`logName="projects/p/logs/run.googleapis.com/stderr"`, nil, []string{"job-a-002"}},
		{`logName:"stdout" AND resource.labels.job_name="job-a"`, nil, []string{"job-a-001", "job-a-003"}},
		{`timestamp>="2025-06-01T12:00:02Z" AND timestamp<"2025-06-01T12:00:04Z"`, nil, []string{"job-a-002", "job-a-003"}},
		{`timestamp>"2025-06-01T12:00:05Z"`, nil, []string{"web-006"}},
		{`receiveTimestamp>="2000-01-01T00:00:00Z"`, nil, all},
		{`severity>=ERROR`, nil, []string{"job-a-002"}},
		{`severity>=NOTICE`, nil, []string{"job-a-002", "web-006"}},
		{`severity=INFO`, nil, []string{"job-a-001", "job-a-003", "job-b-004"}},
		{`insertId="job-b-004"`, nil, []string{"job-b-004"}},
		{`textPayload:robot`, nil, []string{"job-a-001"}},
		{`disk`, nil, []string{"job-a-002"}},
		{`resource.labels.job_name="job-b" OR resource.labels.service_name="web"`, nil, []string{"job-b-004", "web-006"}},
		{`resource.type="cloud_run_job" -resource.labels.job_name="job-a"`, nil, []string{"job-b-004"}},
		{`NOT logName:"stdout"`, nil, []string{"job-a-002", "web-006"}},
		{`resource.labels.job_name="nope"`, nil, []string{}},
		{`labels."run.googleapis.com/task_index"=0 AND resource.labels.job_name=(job-a OR job-b) AND severity<ERROR`, nil, []string{"job-a-001", "job-a-003", "job-b-004"}},
	}
	for _, tc := range tests {
		names := tc.names
		if names == nil {
			names = []string{"projects/p"}
		}
		got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: names, Filter: tc.filter})
		if err != nil {
			t.Errorf("filter %q: %v", tc.filter, err)
			continue
		}
		if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
			t.Errorf("filter %q on %v (-want +got):\n%s", tc.filter, names, diff)
		}
	}
}

func TestPagingAndOrder(t *testing.T) {
	svc := New()
	c := newClient(t, start(t, svc))
	ctx := context.Background()
	var want []string
	for i := range 25 {
		// Written out of timestamp order; listed in it.
		sec := (i * 7) % 25
		e := runEntry("p", "j", "j-1", "stdout", sec, "line")
		if err := svc.Ingest(e); err != nil {
			t.Fatal(err)
		}
	}
	for sec := range 25 {
		want = append(want, fmt.Sprintf("j-%03d", sec))
	}
	page := func(req *loggingpb.ListLogEntriesRequest, token string) ([]string, string) {
		t.Helper()
		var es []*loggingpb.LogEntry
		next, err := iterator.NewPager(c.ListLogEntries(ctx, req), int(req.PageSize), token).NextPage(&es)
		if err != nil {
			t.Fatal(err)
		}
		return ids(es), next
	}
	req := &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `resource.labels.job_name="j"`, PageSize: 10}
	p1, tok := page(req, "")
	if diff := cmp.Diff(want[:10], p1); diff != "" || tok == "" {
		t.Fatalf("first page (-want +got):\n%s token %q", diff, tok)
	}
	// Entries appended while paging: one later than everything, one
	// earlier than the cursor (it is not seen by this listing).
	if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", 100, "late"), runEntry("p", "j", "j-1", "stdout", -1, "early")); err != nil {
		t.Fatal(err)
	}
	p2, tok := page(req, tok)
	p3, tok3 := page(req, tok)
	if diff := cmp.Diff(append(want[10:], "j-100"), append(p2, p3...)); diff != "" {
		t.Errorf("pages after concurrent appends (-want +got):\n%s", diff)
	}
	if tok3 != "" {
		t.Errorf("last page has a next token %q", tok3)
	}

	desc := &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, OrderBy: "timestamp desc", PageSize: 4}
	got, err := list(t, c, desc)
	if err != nil {
		t.Fatal(err)
	}
	wantDesc := []string{"j-100"}
	for sec := 24; sec >= 0; sec-- {
		wantDesc = append(wantDesc, fmt.Sprintf("j-%03d", sec))
	}
	wantDesc = append(wantDesc, "j--01")
	if diff := cmp.Diff(wantDesc, ids(got)); diff != "" {
		t.Errorf("timestamp desc (-want +got):\n%s", diff)
	}

	// Equal timestamps come in insertId order.
	if err := svc.Ingest(
		&loggingpb.LogEntry{LogName: "projects/e/logs/x", Resource: jobResource("e", "t"), Timestamp: timestamppb.New(base), InsertId: "b"},
		&loggingpb.LogEntry{LogName: "projects/e/logs/x", Resource: jobResource("e", "t"), Timestamp: timestamppb.New(base), InsertId: "a"},
		&loggingpb.LogEntry{LogName: "projects/e/logs/x", Resource: jobResource("e", "t"), Timestamp: timestamppb.New(base), InsertId: "c"},
	); err != nil {
		t.Fatal(err)
	}
	got, err = list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/e"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, ids(got)); diff != "" {
		t.Errorf("equal timestamps (-want +got):\n%s", diff)
	}

	// A token is bound to its request.
	other := &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `textPayload:line`, PageSize: 10, PageToken: tok}
	if _, err := c.ListLogEntries(ctx, other).Next(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("token reused with another filter: %v, want InvalidArgument", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	_, c := fixture(t)
	ctx := context.Background()
	lists := []struct {
		req  *loggingpb.ListLogEntriesRequest
		want string
	}{
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `resource.type="x" AND (`}, "position"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `timestamp>"monday"`}, "position 10"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `nosuchfield="x"`}, "nosuchfield"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: strings.Repeat("x", 20001)}, "20000"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, PageSize: 1001}, "page_size"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, PageSize: -1}, "page_size"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, OrderBy: "insertId"}, "order_by"},
		{&loggingpb.ListLogEntriesRequest{}, "resource_names"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"p"}}, "resource name"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p/logs/x"}}, "resource name"},
		{&loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, PageToken: "!!"}, "page_token"},
	}
	for _, tc := range lists {
		_, err := c.ListLogEntries(ctx, tc.req).Next()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ListLogEntries(%v) = %v, want InvalidArgument mentioning %q", tc.req, err, tc.want)
		}
	}
	text := func(s string) *loggingpb.LogEntry {
		return &loggingpb.LogEntry{Payload: &loggingpb.LogEntry_TextPayload{TextPayload: s}}
	}
	global := &monitoredres.MonitoredResource{Type: "global"}
	writes := []struct {
		req  *loggingpb.WriteLogEntriesRequest
		want string
	}{
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logs/a", Resource: global}, "entries"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logs/run.googleapis.com/stdout", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "URL-encoded"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logs/a%20b", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "may only contain"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logs/" + strings.Repeat("a", 512), Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "512"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logz/a", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "form"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects//logs/a", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "form"},
		{&loggingpb.WriteLogEntriesRequest{Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, "entries[0]"},
		{&loggingpb.WriteLogEntriesRequest{LogName: "projects/p/logs/a", Entries: []*loggingpb.LogEntry{text("x")}}, "resource"},
	}
	for _, tc := range writes {
		_, err := c.WriteLogEntries(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteLogEntries(%v) = %v, want InvalidArgument mentioning %q", tc.req, err, tc.want)
		}
	}
}

func TestPartialSuccess(t *testing.T) {
	svc := New()
	c := newClient(t, start(t, svc))
	ctx := context.Background()
	req := func(partial bool) *loggingpb.WriteLogEntriesRequest {
		return &loggingpb.WriteLogEntriesRequest{
			Resource:       &monitoredres.MonitoredResource{Type: "global"},
			PartialSuccess: partial,
			Entries: []*loggingpb.LogEntry{
				{LogName: "projects/p/logs/good", InsertId: fmt.Sprint("ok-", partial)},
				{LogName: "projects/p/logs/bad name"},
			},
		}
	}
	for _, partial := range []bool{false, true} {
		_, err := c.WriteLogEntries(ctx, req(partial))
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument {
			t.Fatalf("partial_success=%v: %v, want InvalidArgument", partial, err)
		}
		var details *loggingpb.WriteLogEntriesPartialErrors
		for _, d := range st.Details() {
			if pe, ok := d.(*loggingpb.WriteLogEntriesPartialErrors); ok {
				details = pe
			}
		}
		if details == nil || len(details.GetLogEntryErrors()) != 1 || details.GetLogEntryErrors()[1] == nil {
			t.Errorf("partial_success=%v: details %v, want an error for entry 1", partial, details)
		}
	}
	got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ok-true"}, ids(got)); diff != "" {
		t.Errorf("only the partial_success request writes its valid entry (-want +got):\n%s", diff)
	}
	if _, err := c.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{
		DryRun: true, LogName: "projects/p/logs/dry", Resource: &monitoredres.MonitoredResource{Type: "global"},
		Entries: []*loggingpb.LogEntry{{}},
	}); err != nil {
		t.Fatal(err)
	}
	if svc.Len() != 1 {
		t.Errorf("dry_run stored an entry: %d stored", svc.Len())
	}
}

// waitTails waits until n TailLogEntries streams are registered, which
// happens when the server has read a stream's first request.
func waitTails(t *testing.T, svc *Service, n int) {
	t.Helper()
	for {
		svc.mu.RLock()
		got := len(svc.subs)
		svc.mu.RUnlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTail(t *testing.T) {
	svc := New()
	c := newClient(t, start(t, svc))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", 0, "before the tail")); err != nil {
		t.Fatal(err)
	}
	stream, err := c.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&loggingpb.TailLogEntriesRequest{
		ResourceNames: []string{"projects/p"},
		Filter:        `resource.labels.job_name="j"`,
		BufferWindow:  durationpb.New(200 * time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitTails(t, svc, 1)
	// Out of order, in two writes within the window, plus entries the
	// filter or the resource names exclude.
	if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", 3, "three"), runEntry("p", "other", "o-1", "stdout", 2, "not this job")); err != nil {
		t.Fatal(err)
	}
	if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", 1, "one"), runEntry("q", "j", "j-1", "stdout", 2, "other project")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(resp.GetEntries())...)
	}
	if diff := cmp.Diff([]string{"j-001", "j-003"}, got); diff != "" {
		t.Errorf("tailed entries (-want +got):\n%s", diff)
	}
	if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", 9, "live")); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"j-009"}, ids(resp.GetEntries())); diff != "" {
		t.Errorf("live entry (-want +got):\n%s", diff)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v, want Canceled", err)
	}

	for _, bad := range []*loggingpb.TailLogEntriesRequest{
		{ResourceNames: []string{"projects/p"}, BufferWindow: durationpb.New(61 * time.Second)},
		{ResourceNames: []string{"projects/p"}, BufferWindow: durationpb.New(-time.Second)},
		{ResourceNames: []string{"projects/p"}, Filter: `(`},
		{},
	} {
		s, err := c.TailLogEntries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(bad); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("TailLogEntries(%v): %v, want InvalidArgument", bad, err)
		}
	}
}

func TestLogadmin(t *testing.T) {
	now := time.Now()
	svc := New()
	opts := start(t, svc)
	ctx := context.Background()
	old := runEntry("p", "j", "j-1", "stdout", 0, "two days ago")
	old.Timestamp = timestamppb.New(now.Add(-48 * time.Hour))
	recent := runEntry("p", "j", "j-1", "stdout", 1, "just now")
	recent.Timestamp = timestamppb.New(now.Add(-time.Minute))
	newer := runEntry("p", "j", "j-1", "stdout", 2, "newer")
	newer.Timestamp = timestamppb.New(now.Add(-time.Second))
	errEntry := runEntry("p", "j", "j-1", "stderr", 3, "an error")
	errEntry.Timestamp = timestamppb.New(now.Add(-30 * time.Second))
	if err := svc.Ingest(old, recent, newer, errEntry); err != nil {
		t.Fatal(err)
	}
	ac, err := logadmin.NewClient(ctx, "p", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	read := func(opts ...logadmin.EntriesOption) ([]string, []string) {
		t.Helper()
		var texts, names []string
		it := ac.Entries(ctx, opts...)
		for {
			e, err := it.Next()
			if err == iterator.Done {
				return texts, names
			}
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, e.Payload.(string))
			names = append(names, e.LogName)
		}
	}
	for _, filter := range []string{
		`logName="projects/p/logs/run.googleapis.com%2Fstdout"`,
		`logName="projects/p/logs/run.googleapis.com/stdout"`,
	} {
		texts, names := read(logadmin.Filter(filter))
		if diff := cmp.Diff([]string{"just now", "newer"}, texts); diff != "" {
			t.Errorf("logadmin %s, with its 24 h clause (-want +got):\n%s", filter, diff)
		}
		for _, n := range names {
			if n != "projects/p/logs/run.googleapis.com/stdout" {
				t.Errorf("logadmin log name %q, want it unescaped", n)
			}
		}
	}
	texts, _ := read(logadmin.Filter(`resource.labels.job_name="j"`), logadmin.NewestFirst())
	if diff := cmp.Diff([]string{"newer", "an error", "just now"}, texts); diff != "" {
		t.Errorf("logadmin NewestFirst (-want +got):\n%s", diff)
	}
	texts, _ = read(logadmin.Filter(fmt.Sprintf(`timestamp<%q`, now.Add(-time.Hour).UTC().Format(time.RFC3339))))
	if diff := cmp.Diff([]string{"two days ago"}, texts); diff != "" {
		t.Errorf("a filter naming timestamp has no 24 h clause (-want +got):\n%s", diff)
	}

	var logs []string
	it := ac.Logs(ctx)
	for {
		l, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	if diff := cmp.Diff([]string{"run.googleapis.com/stderr", "run.googleapis.com/stdout"}, logs); diff != "" {
		t.Errorf("logadmin Logs (-want +got):\n%s", diff)
	}
	if err := ac.DeleteLog(ctx, "run.googleapis.com/stderr"); err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteLog(ctx, "run.googleapis.com/stderr"); status.Code(err) != codes.NotFound {
		t.Errorf("deleting a deleted log: %v, want NotFound", err)
	}
	if svc.Len() != 3 {
		t.Errorf("%d entries left after DeleteLog, want 3", svc.Len())
	}
}

func TestMaxEntries(t *testing.T) {
	svc := New(WithMaxEntries(100))
	c := newClient(t, start(t, svc))
	for i := range 2500 {
		if err := svc.Ingest(runEntry("p", "j", "j-1", "stdout", i, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if svc.Len() != 100 {
		t.Fatalf("Len() = %d, want 100", svc.Len())
	}
	got, err := list(t, c, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, Filter: `resource.labels.job_name="j"`, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || got[0].GetInsertId() != "j-2400" || got[99].GetInsertId() != "j-2499" {
		t.Errorf("kept %d entries from %s to %s, want the newest 100", len(got), got[0].GetInsertId(), got[len(got)-1].GetInsertId())
	}
}

func TestIngestRejects(t *testing.T) {
	svc := New()
	err := svc.Ingest(runEntry("p", "j", "e", "stdout", 1, "ok"), &loggingpb.LogEntry{LogName: "projects/p/logs/x"})
	if !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Ingest of an entry without a resource: %v, want ErrInvalidEntry", err)
	}
	if svc.Len() != 0 {
		t.Errorf("a failed Ingest stored %d entries", svc.Len())
	}
}
