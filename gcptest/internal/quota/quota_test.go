package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clock is a manual clock for the Limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRollingMinute(t *testing.T) {
	c := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(c.now)
	for i := range 3 {
		if ok, _ := l.Take(RunRead, 3, "p", "us-central1"); !ok {
			t.Fatalf("call %d refused under the limit", i)
		}
		c.t = c.t.Add(10 * time.Second)
	}
	ok, retry := l.Take(RunRead, 3, "p", "us-central1")
	if ok || retry != 30*time.Second {
		t.Fatalf("fourth call: ok %v, retry after %s; want refused, 30s (when the first call leaves the window)", ok, retry)
	}
	if ok, _ := l.Take(RunRead, 3, "p", "europe-west1"); !ok {
		t.Error("another region shares the quota of us-central1")
	}
	if ok, _ := l.Take(RunRead, 3, "q", "us-central1"); !ok {
		t.Error("another project shares the quota of p")
	}
	c.t = c.t.Add(30 * time.Second)
	if ok, _ := l.Take(RunRead, 3, "p", "us-central1"); !ok {
		t.Error("call refused once the first call left the window")
	}
	if ok, _ := l.Take(LoggingList, 0, "p", ""); !ok {
		t.Error("a call refused without a limit")
	}
	want := []Usage{
		{Metric: LoggingList, Project: "p", Used: 1, PeakPerMinute: 1},
		{Metric: RunRead, Project: "p", Location: "europe-west1", Limit: 3, Used: 1, PeakPerMinute: 1},
		{Metric: RunRead, Project: "p", Location: "us-central1", Limit: 3, Used: 4, Refused: 1, PeakPerMinute: 3},
		{Metric: RunRead, Project: "q", Location: "us-central1", Limit: 3, Used: 1, PeakPerMinute: 1},
	}
	if diff := cmp.Diff(want, l.Usage()); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}

func TestTakeUpTo(t *testing.T) {
	c := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(c.now)
	if n, _ := l.TakeUpTo(TailEntries, 10, "p", "", 7); n != 7 {
		t.Fatalf("admitted %d of 7 under a limit of 10", n)
	}
	c.t = c.t.Add(time.Second)
	n, retry := l.TakeUpTo(TailEntries, 10, "p", "", 7)
	if n != 3 || retry != 59*time.Second {
		t.Fatalf("admitted %d, retry after %s; want 3 and 59s", n, retry)
	}
	c.t = c.t.Add(59 * time.Second)
	if n, _ := l.TakeUpTo(TailEntries, 10, "p", "", 9); n != 7 {
		t.Errorf("after the first batch left the window: admitted %d of 9, want 7", n)
	}
}

func TestExceeded(t *testing.T) {
	err := RunRead.Exceeded("123", "us-central1", 1000, 1500*time.Millisecond)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("code %v", st.Code())
	}
	if want := "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per region' of service 'run.googleapis.com' for consumer 'project_number:123'."; st.Message() != want {
		t.Errorf("message %q, want %q", st.Message(), want)
	}
	var got []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			got = append(got, "ErrorInfo "+d.Reason+" "+d.Metadata["quota_limit"]+" "+d.Metadata["quota_limit_value"]+" "+d.Metadata["quota_location"])
		case *errdetails.QuotaFailure:
			got = append(got, "QuotaFailure "+d.Violations[0].QuotaId+" "+d.Violations[0].QuotaDimensions["region"])
		case *errdetails.Help:
			got = append(got, "Help "+d.Links[0].Url)
		case *errdetails.RetryInfo:
			got = append(got, "RetryInfo "+d.RetryDelay.AsDuration().String())
		default:
			t.Errorf("unexpected detail %T", d)
		}
	}
	want := []string{
		"ErrorInfo RATE_LIMIT_EXCEEDED ReadPerMinutePerProjectRegion 1000 us-central1",
		"QuotaFailure ReadPerMinutePerProjectRegion us-central1",
		"Help https://cloud.google.com/run/quotas#api",
		"RetryInfo 1.5s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	if ds := status.Convert(TailSessions.Exceeded("p", "", 10, 0)).Details(); len(ds) != 3 {
		t.Errorf("a session limit error has %d details, want 3 (no RetryInfo)", len(ds))
	}
}
