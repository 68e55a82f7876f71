package logsvc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// benchEntries makes n entries of a job's output as the Cloud Run emulator
// writes them: jobs execution names and timestamps in order, one resource
// and label map per job (entries are read-only once stored, so sharing is
// safe), stdout and stderr interleaved.
func benchEntries(job int, first, n int) []*loggingpb.LogEntry {
	name := fmt.Sprintf("job-%d", job)
	res := &monitoredres.MonitoredResource{Type: "cloud_run_job", Labels: map[string]string{
		"project_id": "bench", "location": "us-central1", "job_name": name,
	}}
	labels := map[string]string{"run.googleapis.com/execution_name": name + "-x", "run.googleapis.com/task_index": "0"}
	out := make([]*loggingpb.LogEntry, n)
	for i := range out {
		stream := "stdout"
		if i%4 == 3 {
			stream = "stderr"
		}
		out[i] = &loggingpb.LogEntry{
			LogName:   "projects/bench/logs/run.googleapis.com%2F" + stream,
			Resource:  res,
			Labels:    labels,
			Timestamp: timestamppb.New(base.Add(time.Duration(first+i) * time.Millisecond)),
			Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: "a line of container output of typical length"},
		}
	}
	return out
}

// BenchmarkIngest measures Ingest, the path the Cloud Run emulator writes
// container output through, in batches of 100 entries.
func BenchmarkIngest(b *testing.B) {
	svc := New()
	const batch = 100
	batches := make([][]*loggingpb.LogEntry, 0, b.N/batch+1)
	for i := 0; i < b.N; i += batch {
		batches = append(batches, benchEntries(i/batch%50, i, min(batch, b.N-i)))
	}
	b.ResetTimer()
	for _, es := range batches {
		if err := svc.Ingest(es...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkTailDelivery measures entries per second from Ingest to a
// TailLogEntries client of the real logging/apiv2 library over gRPC, with
// a job filter and a zero buffer window.
func BenchmarkTailDelivery(b *testing.B) {
	svc := New(WithMaxEntries(200_000))
	c := newClient(b, start(b, svc))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.TailLogEntries(ctx)
	if err != nil {
		b.Fatal(err)
	}
	err = stream.Send(&loggingpb.TailLogEntriesRequest{
		ResourceNames: []string{"projects/bench"},
		Filter:        `resource.type="cloud_run_job" AND resource.labels.job_name="job-1"`,
		BufferWindow:  durationpb.New(0),
	})
	if err != nil {
		b.Fatal(err)
	}
	for {
		svc.mu.RLock()
		n := len(svc.subs)
		svc.mu.RUnlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	const batch = 500
	batches := make([][]*loggingpb.LogEntry, 0, b.N/batch+1)
	for i := 0; i < b.N; i += batch {
		batches = append(batches, benchEntries(1, i, min(batch, b.N-i)))
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, es := range batches {
			if err := svc.Ingest(es...); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	got := 0
	for got < b.N {
		resp, err := stream.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.GetSuppressionInfo()) > 0 {
			b.Fatalf("entries suppressed: %v", resp.GetSuppressionInfo())
		}
		got += len(resp.GetEntries())
	}
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

var (
	millionOnce sync.Once
	millionSvc  *Service
)

// million returns a Service holding 1,000,000 entries: 200 jobs of 5,000
// entries each, written interleaved as concurrent jobs would write them.
func million(b *testing.B) *Service {
	millionOnce.Do(func() {
		svc := New()
		const jobs, per, chunk = 200, 5000, 100
		for off := 0; off < per; off += chunk {
			for j := range jobs {
				if err := svc.Ingest(benchEntries(j, off, chunk)...); err != nil {
					b.Fatal(err)
				}
			}
		}
		millionSvc = svc
	})
	return millionSvc
}

// BenchmarkListJobPage measures one ListLogEntries page through the real
// client over gRPC, with the filter a backend sends for a job's logs, over
// 1,000,000 stored entries. Building the store is not timed.
func BenchmarkListJobPage(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a store of 1,000,000 entries")
	}
	svc := million(b)
	c := newClient(b, start(b, svc))
	filter := `resource.type="cloud_run_job" AND resource.labels.job_name="job-117" AND ` +
		`labels."run.googleapis.com/execution_name"="job-117-x" AND logName="projects/bench/logs/run.googleapis.com%2Fstdout"`
	for _, tc := range []struct {
		name  string
		size  int32
		order string
		extra string
	}{
		{"asc/50", 50, "", ""},
		{"asc/1000", 1000, "", ""},
		{"desc/1000", 1000, "timestamp desc", ""},
		{"since/desc/1000", 1000, "timestamp desc", fmt.Sprintf(` AND timestamp>=%q`, base.Add(2*time.Second).Format(time.RFC3339))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := &loggingpb.ListLogEntriesRequest{
				ResourceNames: []string{"projects/bench"}, Filter: filter + tc.extra, OrderBy: tc.order, PageSize: tc.size,
			}
			for b.Loop() {
				resp, err := c.ListLogEntries(context.Background(), req).Next()
				if err != nil || resp == nil {
					b.Fatal(err)
				}
			}
		})
	}
}
