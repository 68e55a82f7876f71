// Package quota keeps a backend within Google's per-minute API quotas and
// rides out the RESOURCE_EXHAUSTED answers it meets anyway.
//
// Google counts requests per project (and for Cloud Run per region) per
// minute, shared by every process of the project. A Runtime therefore
// spends from one Budget for all its calls, whatever goroutine makes
// them: a token bucket per class of request (reads, writes and job runs of
// the Cloud Run Admin API; entries.list of Cloud Logging), refilled at the
// rate the caller configured. Its gRPC interceptors make every call of
// the Google client libraries wait for a token, and retry a call refused
// with RESOURCE_EXHAUSTED after the delay the server's RetryInfo asks for
// (or a backoff when it names none). A refused request took no effect, so
// the retry is safe for every method, idempotent or not.
//
//	b := quota.New(quota.Limits{RunReads: 300, RunWrites: 60, RunJobRuns: 60, LogLists: 30})
//	client, err := run.NewJobsClient(ctx, append(opts, b.ClientOptions()...)...)
package quota

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits are requests per minute for each class; zero means unlimited.
type Limits struct {
	// RunReads, RunWrites and RunJobRuns are the admin API's read
	// requests (Get, List, and operation polls), write requests (Create,
	// Update, Delete, Cancel) and job runs (RunJob): Cloud Run's, or Cloud
	// Functions' for a Budget on a Functions client.
	RunReads, RunWrites, RunJobRuns int
	// LogLists is Cloud Logging's entries.list (ListLogEntries).
	LogLists int
}

// Class is the quota a request spends from.
type Class int

// The classes of requests.
const (
	RunRead Class = iota
	RunWrite
	RunJobRun
	LogList
	// Other requests (a tail session, writes to Cloud Logging) spend
	// nothing here: their limits are counted in sessions or are large.
	Other
	numClasses
)

// MaxRetries bounds how often one call is retried after
// RESOURCE_EXHAUSTED before the error reaches the caller.
const MaxRetries = 10

// Budget is the token buckets of one Runtime. It is safe for concurrent
// use.
type Budget struct {
	buckets   [numClasses]*rate.Limiter
	calls     [numClasses]atomic.Int64
	exhausted atomic.Int64
}

// New returns a Budget with the given limits. A bucket holds at most a
// tenth of a minute's requests, so a burst cannot spend the minute at once.
func New(l Limits) *Budget {
	b := &Budget{}
	for c, perMin := range map[Class]int{RunRead: l.RunReads, RunWrite: l.RunWrites, RunJobRun: l.RunJobRuns, LogList: l.LogLists} {
		if perMin > 0 {
			b.buckets[c] = rate.NewLimiter(rate.Limit(float64(perMin)/60), max(1, perMin/10))
		}
	}
	return b
}

// sleep waits d, or returns ctx's error if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ClassOf returns the class of a gRPC method, given as
// "/google.cloud.run.v2.Jobs/GetJob".
func ClassOf(method string) Class {
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	switch {
	case strings.HasPrefix(service, "google.logging."):
		if name == "ListLogEntries" {
			return LogList
		}
		return Other
	case strings.HasPrefix(service, "google.cloud.functions."):
		// Cloud Functions' API reads and writes spend from the read and
		// write classes, its quotas being of the same kind; it has no
		// runs (a function is invoked at its URL, not through the API).
		if strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List") {
			return RunRead
		}
		return RunWrite
	case strings.HasPrefix(service, "google.cloud.run."), strings.HasPrefix(service, "google.longrunning."):
		switch {
		case name == "RunJob":
			return RunJobRun
		case strings.HasPrefix(name, "Get"), strings.HasPrefix(name, "List"), name == "WaitOperation":
			return RunRead
		}
		return RunWrite
	}
	return Other
}

// Calls reports how many requests of class c the Budget has let through,
// retries included.
func (b *Budget) Calls(c Class) int64 { return b.calls[c].Load() }

// Exhausted reports how many RESOURCE_EXHAUSTED answers the Budget has
// met (and retried, or passed on after MaxRetries).
func (b *Budget) Exhausted() int64 { return b.exhausted.Load() }

// Wait blocks until a request of class c may go. When ctx would end
// first, it returns at once an error that wraps ctx's (or
// context.DeadlineExceeded, for a deadline not yet passed).
func (b *Budget) Wait(ctx context.Context, c Class) error {
	b.calls[c].Add(1)
	l := b.buckets[c]
	if l == nil {
		return nil
	}
	if err := l.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: the request budget allows no call before the deadline (%v)", context.DeadlineExceeded, err)
	}
	return nil
}

// ClientOptions returns the options that put the Budget's interceptors on
// a Google client.
func (b *Budget) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(b.unary)),
		option.WithGRPCDialOption(grpc.WithChainStreamInterceptor(b.stream)),
	}
}

func (b *Budget) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c := ClassOf(method)
	for attempt := 0; ; attempt++ {
		if err := b.Wait(ctx, c); err != nil {
			return err
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.ResourceExhausted {
			return err
		}
		b.exhausted.Add(1)
		if attempt >= MaxRetries {
			return err
		}
		if err := sleep(ctx, RetryDelay(err, attempt)); err != nil {
			return err
		}
	}
}

func (b *Budget) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := b.Wait(ctx, ClassOf(method)); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// RetryDelay is how long to wait before retrying after err, a
// RESOURCE_EXHAUSTED answer, on the given attempt (from 0): what the
// answer's RetryInfo asks for, else a backoff that doubles from one
// second up to a minute (a per-minute quota refills within one), with
// jitter so that many waiters do not return together.
func RetryDelay(err error, attempt int) time.Duration {
	if s, ok := status.FromError(err); ok {
		for _, d := range s.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				if d := ri.GetRetryDelay().AsDuration(); d > 0 {
					return d + jitter(d/10)
				}
			}
		}
	}
	d := time.Second << min(attempt, 6)
	return min(d, time.Minute) + jitter(time.Second)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
