// Package cloudlog reads a container's output from Cloud Logging as a
// gantry.LogReader, the way every gantry backend on Google Cloud needs it:
// stdout and stderr told apart by log name, each entry returned once (by
// its insertId, with bounded memory), since, until and tail done by the
// query and its ordering rather than by fetching everything, and follow
// done with TailLogEntries plus a bounded grace period after the
// container stops, for ingestion lag.
//
// A backend describes where the entries are and how to tell that the
// container has stopped; Open does the rest:
//
//	var f cloudlog.Filter
//	f.Eq("resource.type", "cloud_run_job").Eq("resource.labels.job_name", job)
//	r, err := cloudlog.Open(ctx, cloudlog.Source{
//		Client:    loggingClient,
//		Project:   "my-project",
//		Filter:    &f,
//		StdoutLog: "run.googleapis.com/stdout",
//		StderrLog: "run.googleapis.com/stderr",
//		Stopped:   waitUntilStopped,
//		Grace:     5 * time.Second,
//	}, gantry.LogsOptions{Follow: true})
package cloudlog

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

// MaxPageSize is the largest page ListLogEntries returns.
const MaxPageSize = 1000

// DedupWindow is how many recent entries a reader remembers to drop
// duplicates.
const DedupWindow = 4096

// Source says where a container's entries are.
type Source struct {
	// Client is the Cloud Logging client.
	Client *logging.Client
	// Project owns the logs; queries run on projects/<Project>.
	Project string
	// Filter selects the container's entries (resource type, labels);
	// Open adds the streams and the time bounds.
	Filter *Filter
	// StdoutLog and StderrLog are the log IDs of the two streams, such as
	// "run.googleapis.com/stdout".
	StdoutLog, StderrLog string
	// NotBefore drops entries older than it: those of an earlier resource
	// that had the same name.
	NotBefore time.Time
	// Stopped, used by Follow, blocks until the container is not running
	// and returns when it stopped.
	Stopped func(context.Context) (time.Time, error)
	// Grace is how long Follow keeps reading after the container stopped
	// (or after Until), to catch entries that reach Cloud Logging late.
	Grace time.Duration
	// Settle is the first of the doubling delays after which a following
	// reader lists again what the tail stream may have missed while it
	// was being set up (a stream is live only once the service has taken
	// its request, which the protocol does not acknowledge). Listing
	// stops once the delays add up to Grace. Zero means 100ms.
	Settle time.Duration
	// Describe names the request in errors, such as `cloudrun: logs "web"`.
	Describe string
}

// Open starts reading; the returned reader yields entries in time order
// (for follow, history in time order, then new entries as they arrive). It
// fails before any call when opts is malformed.
func Open(ctx context.Context, src Source, opts gantry.LogsOptions) (gantry.LogReader, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &reader{
		out:        make(chan gantry.LogEntry, 256),
		cancel:     cancel,
		timestamps: opts.Timestamps,
	}
	p := &producer{src: src, opts: opts, out: r.out, seen: newDedup(DedupWindow)}
	for _, s := range []gantry.Stream{gantry.Stdout, gantry.Stderr} {
		if opts.Wants(s) {
			p.logNames = append(p.logNames, LogName(src.Project, p.logID(s)))
		}
	}
	go func() {
		err := p.run(ctx)
		r.mu.Lock()
		switch {
		case r.closed:
			r.err = io.EOF
		case err == nil:
			r.err = io.EOF
		default:
			r.err = err
		}
		r.mu.Unlock()
		close(r.out)
	}()
	return r, nil
}

type reader struct {
	out        chan gantry.LogEntry
	cancel     context.CancelFunc
	timestamps bool

	mu     sync.Mutex
	err    error // set before out is closed
	closed bool
}

func (r *reader) Next() (gantry.LogEntry, error) {
	e, ok := <-r.out
	if ok {
		return e, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return gantry.LogEntry{}, r.err
}

func (r *reader) Timestamps() bool { return r.timestamps }

func (r *reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	return nil
}

type producer struct {
	src      Source
	opts     gantry.LogsOptions
	out      chan<- gantry.LogEntry
	seen     *dedup
	logNames []string
	// last is the newest timestamp emitted; follow reads from it on.
	last time.Time
}

func (p *producer) logID(s gantry.Stream) string {
	if s == gantry.Stderr {
		return p.src.StderrLog
	}
	return p.src.StdoutLog
}

// filter is the source filter with the streams and [since, until).
func (p *producer) filter(since time.Time) string {
	f := p.src.Filter.Clone()
	f.AnyOf("logName", p.logNames...)
	f.Since(since)
	f.Until(p.opts.Until)
	return f.String()
}

func (p *producer) lower() time.Time {
	if p.opts.Since.After(p.src.NotBefore) {
		return p.opts.Since
	}
	return p.src.NotBefore
}

func (p *producer) run(ctx context.Context) error {
	from := p.lower()
	switch {
	case p.opts.Tail == gantry.TailNone:
		if now := time.Now(); now.After(from) {
			from = now
		}
	case p.opts.Tail > 0:
		if err := p.tail(ctx, from, p.opts.Tail); err != nil {
			return err
		}
	default:
		if err := p.list(ctx, from); err != nil {
			return err
		}
	}
	if !p.opts.Follow {
		return nil
	}
	if p.last.After(from) {
		from = p.last
	}
	return p.follow(ctx, from)
}

func (p *producer) request(since time.Time, order string, pageSize int) *loggingpb.ListLogEntriesRequest {
	return &loggingpb.ListLogEntriesRequest{
		ResourceNames: []string{"projects/" + p.src.Project},
		Filter:        p.filter(since),
		OrderBy:       order,
		PageSize:      int32(pageSize),
	}
}

// list emits every entry from since on, oldest first.
func (p *producer) list(ctx context.Context, since time.Time) error {
	it := p.src.Client.ListLogEntries(ctx, p.request(since, "timestamp asc", MaxPageSize), gcperr.Retry())
	for {
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return gcperr.Wrap(ctx, err, "%s: list log entries", p.src.Describe)
		}
		if err := p.emit(ctx, e); err != nil {
			return err
		}
	}
}

// tail emits the last n entries from since on, oldest first: the query
// runs newest first and stops after n.
func (p *producer) tail(ctx context.Context, since time.Time, n int) error {
	it := p.src.Client.ListLogEntries(ctx, p.request(since, "timestamp desc", min(n, MaxPageSize)), gcperr.Retry())
	var got []*loggingpb.LogEntry
	for len(got) < n {
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return gcperr.Wrap(ctx, err, "%s: list log entries", p.src.Describe)
		}
		got = append(got, e)
	}
	slices.Reverse(got)
	for _, e := range got {
		if err := p.emit(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// follow streams new entries until the container has stopped (or Until
// has passed) and the grace period after it has run out; then one last
// listing picks up anything the stream missed.
func (p *producer) follow(ctx context.Context, followFrom time.Time) error {
	from := followFrom
	stopped := make(chan time.Time, 1)
	stopErr := make(chan error, 1)
	go func() {
		if p.src.Stopped == nil {
			stopped <- time.Now()
			return
		}
		at, err := p.src.Stopped(ctx)
		if err != nil {
			stopErr <- err
			return
		}
		stopped <- at
	}()
	var untilC <-chan time.Time
	if !p.opts.Until.IsZero() {
		t := time.NewTimer(time.Until(p.opts.Until))
		defer t.Stop()
		untilC = t.C
	}

	entries := make(chan *loggingpb.LogEntry, 256)
	streamErr := make(chan error, 1)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	opened := make(chan struct{}, 1)
	go func() { streamErr <- p.stream(streamCtx, from, entries, opened) }()

	// Entries that reach Cloud Logging between the history query and the
	// moment the stream is live are in neither: list again, at doubling
	// delays, after the stream (re)opens.
	settle := p.src.Settle
	if settle <= 0 {
		settle = 100 * time.Millisecond
	}
	relist := time.NewTimer(time.Hour)
	relist.Stop()
	defer relist.Stop()
	var delay, waited time.Duration
	relistFrom := func() time.Time {
		if back := p.last.Add(-p.src.Grace); back.After(followFrom) {
			return back
		}
		return followFrom
	}
	var graceC <-chan time.Time
	endIn := func(d time.Duration) {
		if graceC == nil {
			t := time.NewTimer(max(d, 0))
			graceC = t.C
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-entries:
			if err := p.emit(ctx, e); err != nil {
				return err
			}
		case <-opened:
			if err := p.list(ctx, relistFrom()); err != nil {
				return err
			}
			delay, waited = settle, 0
			relist.Reset(delay)
		case <-relist.C:
			if err := p.list(ctx, relistFrom()); err != nil {
				return err
			}
			waited += delay
			if delay *= 2; waited < max(p.src.Grace, settle) {
				relist.Reset(delay)
			}
		case err := <-streamErr:
			if err != nil {
				return err
			}
			streamErr = nil
		case err := <-stopErr:
			return err
		case at := <-stopped:
			endIn(time.Until(at.Add(p.src.Grace)))
		case <-untilC:
			endIn(time.Until(p.opts.Until.Add(p.src.Grace)))
		case <-graceC:
			stopStream()
		drain:
			for {
				select {
				case e := <-entries:
					if err := p.emit(ctx, e); err != nil {
						return err
					}
				default:
					break drain
				}
			}
			// Late entries carry their own (earlier) timestamps: look back
			// one grace period before the newest entry seen, no further
			// than where following began; the dedup window drops repeats.
			return p.list(ctx, relistFrom())
		}
	}
}

// stream runs TailLogEntries, reopening it when it drops with UNAVAILABLE
// (each reopening is followed by a listing of what it may have missed).
func (p *producer) stream(ctx context.Context, from time.Time, entries chan<- *loggingpb.LogEntry, opened chan<- struct{}) error {
	bo := gcperr.Backoff()
	for attempt := 0; ; attempt++ {
		err := p.streamOnce(ctx, from, entries, opened)
		if ctx.Err() != nil {
			return nil
		}
		if gcperr.Code(err) != codes.Unavailable || attempt >= gcperr.MaxAttempts {
			return gcperr.Wrap(ctx, err, "%s: tail log entries", p.src.Describe)
		}
		if err := gcperr.Sleep(ctx, bo.Pause()); err != nil {
			return nil
		}
	}
}

func (p *producer) streamOnce(ctx context.Context, from time.Time, entries chan<- *loggingpb.LogEntry, opened chan<- struct{}) error {
	st, err := p.src.Client.TailLogEntries(ctx)
	if err != nil {
		return err
	}
	err = st.Send(&loggingpb.TailLogEntriesRequest{
		ResourceNames: []string{"projects/" + p.src.Project},
		Filter:        p.filter(from),
	})
	if err != nil {
		return err
	}
	select {
	case opened <- struct{}{}:
	default:
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for _, e := range resp.GetEntries() {
			select {
			case entries <- e:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// emit converts and sends e unless it was sent before.
func (p *producer) emit(ctx context.Context, e *loggingpb.LogEntry) error {
	if !p.seen.fresh(e.GetLogName() + "\x00" + e.GetInsertId()) {
		return nil
	}
	le, ok := p.convert(e)
	if !ok {
		return nil
	}
	if le.Time.After(p.last) {
		p.last = le.Time
	}
	select {
	case p.out <- le:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *producer) convert(e *loggingpb.LogEntry) (gantry.LogEntry, bool) {
	var s gantry.Stream
	switch LogID(e.GetLogName()) {
	case p.src.StdoutLog:
		s = gantry.Stdout
	case p.src.StderrLog:
		s = gantry.Stderr
	default:
		return gantry.LogEntry{}, false
	}
	le := gantry.LogEntry{Stream: s, Time: e.GetTimestamp().AsTime()}
	switch {
	case e.GetJsonPayload() != nil:
		b, err := json.Marshal(e.GetJsonPayload().AsMap())
		if err != nil {
			return gantry.LogEntry{}, false
		}
		le.Line = string(b)
	default:
		le.Line = strings.TrimSuffix(e.GetTextPayload(), "\n")
	}
	return le, true
}
