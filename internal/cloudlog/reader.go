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
	"fmt"
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
)

// MaxPageSize is the largest page ListLogEntries returns.
const MaxPageSize = 1000

// DedupWindow is how many recent entries a reader remembers to drop
// duplicates: enough for the listings that overlap what was already read
// (one grace period of output before the newest entry) at tens of
// thousands of lines per second, in about 1.5 MiB at most (8-byte
// hashes in a ring and a set, allocated as entries arrive).
const DedupWindow = 1 << 16

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
	// Settle is the first of the doubling delays (up to Grace) at which a
	// following reader lists again what its tail stream may have missed:
	// a stream is live only once the service has taken its request, which
	// the protocol does not acknowledge, so entries written meanwhile are
	// in neither the history nor the stream. The reader relists until the
	// stream's first response proves it live, then once more, which
	// covers everything written before. Zero means 100ms.
	Settle time.Duration
	// Describe names the request in errors, such as `cloudrun: logs "web"`.
	Describe string
	// Tail, when set, is the backend's shared session that Follow reads
	// from, taking the entries Match accepts; without it a follower opens
	// a session of its own for Filter.
	Tail  *Tail
	Match func(*loggingpb.LogEntry) bool
	// Ended is when the container's last run ended, or zero while it
	// runs (or never ran). A reader waits until Grace has passed since
	// then before it lists, so that entries still on their way to Cloud
	// Logging are in the listing (unless Runs proves it has everything
	// sooner).
	Ended time.Time
	// Runs, when set, tells the reader when it has every line: the
	// container's agent ends each run with a record of how many lines it
	// wrote on each stream. A reader of the whole log (no Since, Until or
	// Tail) then ends as soon as the last run's counted lines are in,
	// without waiting out Grace, and reports lines that never came as an
	// error wrapping gantry.ErrDataLoss.
	Runs *Runs
}

// Runs describes the agent's final records of a container's runs.
type Runs struct {
	// Of names the run an entry belongs to, such as its execution.
	Of func(*loggingpb.LogEntry) string
	// Record reports whether e is a run's final record, and its counts.
	// A record is never returned as a line.
	Record func(*loggingpb.LogEntry) (Counts, bool)
	// Last names the container's last run: called once the container is
	// known to have stopped ("" when it never ran).
	Last func() string
	// Settled returns the instant from which no line of a run before the
	// last can still be on its way to Cloud Logging (the last run's start
	// plus Grace, say), or zero when there was no earlier run. The last
	// run's record vouches for that run only.
	Settled func() time.Time
	// Exclude is a filter term that leaves records out, added to queries
	// that do not read the whole log (a tail would count one as a line).
	Exclude string
}

// Counts are the lines a run wrote on each stream.
type Counts struct{ Stdout, Stderr int }

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
		done:       make(chan struct{}),
		timestamps: opts.Timestamps,
	}
	p := &producer{src: src, opts: opts, out: r.out, seen: newDedup(DedupWindow)}
	// Docker takes a tail of both streams and chooses the stream
	// afterwards, so a tail reads both.
	for _, s := range []gantry.Stream{gantry.Stdout, gantry.Stderr} {
		if opts.Wants(s) || opts.Tail > 0 {
			p.logIDs = append(p.logIDs, p.logID(s))
		}
	}
	go func() {
		defer close(r.done)
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
	done       chan struct{} // closed once every goroutine of the reader has ended
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

// Close stops reading and returns once every goroutine of the reader has
// ended; calls in flight are cancelled, so that is prompt.
func (r *reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
	return nil
}

type producer struct {
	src    Source
	opts   gantry.LogsOptions
	out    chan<- gantry.LogEntry
	seen   *dedup
	logIDs []string
	// last is the newest timestamp emitted; follow reads from it on.
	last time.Time
	// held, while following, are the entries waiting out the hold, in
	// timestamp order: Cloud Logging delivers entries as they arrive,
	// seconds late and out of order, so a follower releases an entry
	// only once the grace has passed since its timestamp, by when every
	// entry written before it has arrived too.
	held    []gantry.LogEntry
	holding bool
	// counted are the lines read of each run, and records the runs' final
	// records, when Source.Runs is set.
	counted map[string]*Counts
	records map[string]Counts
}

// whole reports whether the reader reads the whole log of both streams,
// so that the runs' records can tell it when it has every line.
func (p *producer) whole() bool {
	return p.src.Runs != nil && p.opts.Since.IsZero() && p.opts.Until.IsZero() && p.opts.Tail == 0 && len(p.logIDs) == 2
}

// unsettled returns how long until the lines of runs before the last are
// all in (see Runs.Settled), or zero.
func (p *producer) unsettled() time.Duration {
	if p.src.Runs == nil || p.src.Runs.Settled == nil {
		return 0
	}
	return max(time.Until(p.src.Runs.Settled()), 0)
}

// complete reports whether the container's last run has its final
// record and every line the record counts, and the runs before it have
// settled.
func (p *producer) complete() bool {
	if !p.whole() || p.unsettled() > 0 {
		return false
	}
	last := p.src.Runs.Last()
	if last == "" {
		return true
	}
	rec, ok := p.records[last]
	if !ok {
		return false
	}
	got := p.counted[last]
	return got != nil && *got == rec
}

// loss is the error for lines the last run's record counts that were not
// read, or nil.
func (p *producer) loss() error {
	if !p.whole() {
		return nil
	}
	last := p.src.Runs.Last()
	rec, ok := p.records[last]
	if !ok {
		return nil
	}
	var got Counts
	if c := p.counted[last]; c != nil {
		got = *c
	}
	if got.Stdout >= rec.Stdout && got.Stderr >= rec.Stderr {
		return nil
	}
	return fmt.Errorf("%s: %w: run %s wrote %d stdout and %d stderr lines, of which %d and %d were in Cloud Logging within %s of its end", p.src.Describe, gantry.ErrDataLoss, last, rec.Stdout, rec.Stderr, got.Stdout, got.Stderr, p.src.Grace)
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
	f.Logs(p.logIDs...)
	if p.src.Runs != nil && p.src.Runs.Exclude != "" && !p.whole() {
		f.Raw(p.src.Runs.Exclude)
	}
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
	// A follower holds every entry, the history's too, until the grace
	// has passed since it was written, so that one still on its way to
	// Cloud Logging is not overtaken by a later one.
	p.holding = p.opts.Follow
	if !p.src.Ended.IsZero() && p.whole() {
		// The container has stopped: following adds nothing to a
		// reading that ends once the last run's lines are all in.
		return p.listComplete(ctx)
	}
	if !p.src.Ended.IsZero() {
		// Cloud Logging ingests seconds late: a listing right after the
		// container stopped could miss its last lines.
		t := time.NewTimer(time.Until(p.src.Ended.Add(p.src.Grace)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	from := p.lower()
	switch {
	case p.opts.Tail == gantry.TailNone:
		if now := time.Now(); now.After(from) {
			from = now
		}
	case p.opts.Tail > 0:
		oldest, err := p.tail(ctx, from, p.opts.Tail)
		if err != nil {
			return err
		}
		if p.opts.Follow && !oldest.IsZero() {
			// Lines written before the newest of the tail may still be on
			// their way to Cloud Logging: follow from the oldest line of
			// the tail, so they come in their place (the dedup window
			// drops the tail's own lines), not never.
			return p.follow(ctx, oldest)
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

// listComplete reads the whole log of a stopped container whose runs end
// with the agent's records: it lists at once, and lists again (from one
// grace period before the newest line) until the last run's counted
// lines are all in or the grace after the stop has passed. Lines are
// released in time order: those written more than a grace period ago at
// once (nothing written before them can still be on its way), the rest
// when the log is complete or the grace has passed.
func (p *producer) listComplete(ctx context.Context) error {
	p.holding = true
	deadline := p.src.Ended.Add(p.src.Grace)
	delay := p.src.Settle
	if delay <= 0 {
		delay = 100 * time.Millisecond
	}
	from := p.lower()
	for {
		if err := p.list(ctx, from); err != nil {
			return err
		}
		if p.complete() || !time.Now().Before(deadline) {
			if err := p.release(ctx, p.last); err != nil {
				return err
			}
			return p.loss()
		}
		if err := p.release(ctx, time.Now().Add(-p.src.Grace)); err != nil {
			return err
		}
		if back := p.last.Add(-p.src.Grace); back.After(from) {
			from = back
		}
		wait := min(delay, time.Until(deadline))
		if u := p.unsettled(); u > 0 {
			wait = min(wait, u)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, max(p.src.Grace, delay))
	}
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
// runs newest first and stops after n. It returns the oldest entry's
// time, or zero when there is none.
func (p *producer) tail(ctx context.Context, since time.Time, n int) (time.Time, error) {
	it := p.src.Client.ListLogEntries(ctx, p.request(since, "timestamp desc", min(n, MaxPageSize)), gcperr.Retry())
	var got []*loggingpb.LogEntry
	for len(got) < n {
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return time.Time{}, gcperr.Wrap(ctx, err, "%s: list log entries", p.src.Describe)
		}
		got = append(got, e)
	}
	slices.Reverse(got)
	for _, e := range got {
		if err := p.emit(ctx, e); err != nil {
			return time.Time{}, err
		}
	}
	if len(got) == 0 {
		return time.Time{}, nil
	}
	return got[0].GetTimestamp().AsTime(), nil
}

// follow streams new entries until the container has stopped (or Until
// has passed) and the grace period after it has run out; then one last
// listing picks up anything the stream missed. Every goroutine it starts
// has ended when it returns.
func (p *producer) follow(ctx context.Context, followFrom time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// With the whole history read, look back one grace period for entries
	// that reach Cloud Logging late; after a tail or TailNone, nothing
	// older than where following begins may appear.
	low := followFrom
	if p.opts.Tail == 0 {
		low = followFrom.Add(-p.src.Grace)
		if l := p.lower(); l.After(low) {
			low = l
		}
	}
	began := time.Now()

	stopped := make(chan time.Time, 1)
	stopErr := make(chan error, 1)
	wg.Go(func() {
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
	})
	var untilC <-chan time.Time
	if !p.opts.Until.IsZero() {
		t := time.NewTimer(time.Until(p.opts.Until))
		defer t.Stop()
		untilC = t.C
	}

	// A follower of a backend's shared Tail takes the entries its Match
	// accepts; one without opens a session of its own for its filter.
	tail, match := p.src.Tail, p.src.Match
	if tail == nil {
		tail, match = NewTail(p.src.Client, p.src.Project, p.filter(low), p.src.Describe), nil
	}
	sub := tail.subscribe(match)
	unsubscribed := false
	unsubscribe := func() {
		if !unsubscribed {
			unsubscribed = true
			tail.unsubscribe(sub)
		}
	}
	defer unsubscribe()

	hold := time.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	// arm sets the hold timer for the oldest held entry.
	arm := func() {
		if len(p.held) > 0 {
			hold.Reset(time.Until(p.held[0].Time.Add(p.src.Grace)))
		}
	}
	arm()

	settle := p.src.Settle
	if settle <= 0 {
		settle = 100 * time.Millisecond
	}
	relist := time.NewTimer(settle)
	relist.Stop()
	defer relist.Stop()
	delay, proven := settle, false
	var graceC <-chan time.Time
	stopSeen := false
	endIn := func(d time.Duration) {
		if graceC == nil {
			t := time.NewTimer(max(d, 0))
			graceC = t.C
		}
	}
	// relistFrom is where a listing for what the stream may have missed
	// starts: one grace period before the newest entry seen, as late
	// entries carry their own (earlier) timestamps.
	relistFrom := func() time.Time {
		from := low
		if back := p.last.Add(-p.src.Grace); proven && back.After(from) {
			from = back
		}
		return from
	}
	// settleC wakes the follower when the runs before the last have
	// settled, should that be all that keeps it from ending.
	var settleC <-chan time.Time
	for {
		if stopSeen && p.complete() {
			unsubscribe()
			return p.release(ctx, p.last)
		}
		if stopSeen && settleC == nil && p.whole() {
			if d := p.unsettled(); d > 0 {
				t := time.NewTimer(d)
				defer t.Stop()
				settleC = t.C
			}
		}
		select {
		case <-settleC:
		case <-ctx.Done():
			return ctx.Err()
		case <-hold.C:
			// What the session could not hand over must be listed before
			// anything newer is released.
			if sub.lost.Swap(false) {
				if err := p.list(ctx, relistFrom()); err != nil {
					return err
				}
			}
			if err := p.release(ctx, time.Now().Add(-p.src.Grace)); err != nil {
				return err
			}
			arm()
		case ev := <-sub.events:
			switch ev.kind {
			case evEntry:
				if p.inWindow(ev.entry, low) {
					if err := p.emit(ctx, ev.entry); err != nil {
						return err
					}
					arm()
				}
			case evOpened:
				// Until the session answers, what is written may reach
				// neither it nor the last listing.
				proven, delay = false, settle
				relist.Reset(delay)
			case evLive:
				// The session has answered, so it was live before whatever
				// it sent was written: one more listing finds everything
				// written before that, and the session has the rest.
				if !proven {
					proven = true
					relist.Stop()
					if err := p.list(ctx, low); err != nil {
						return err
					}
					arm()
				}
			case evSuppressed:
				if err := p.list(ctx, relistFrom()); err != nil {
					return err
				}
				arm()
			case evFailed:
				return ev.err
			}
		case <-sub.wake:
			if sub.lost.Swap(false) {
				if err := p.list(ctx, relistFrom()); err != nil {
					return err
				}
				arm()
			}
		case <-relist.C:
			if proven {
				continue
			}
			if err := p.list(ctx, low); err != nil {
				return err
			}
			arm()
			delay = min(2*delay, max(p.src.Grace, settle))
			relist.Reset(delay)
		case err := <-stopErr:
			return err
		case at := <-stopped:
			// With the agent's records, following ends once the last
			// run's counted lines are all in; the grace remains the bound.
			stopSeen = true
			// The grace for entries still in flight counts from when the
			// stop was seen, unless the container had stopped long before
			// following began: then everything has long been ingested.
			if at.Before(began) {
				endIn(time.Until(at.Add(p.src.Grace)))
			} else {
				endIn(p.src.Grace)
			}
		case <-untilC:
			endIn(time.Until(p.opts.Until.Add(p.src.Grace)))
		case <-graceC:
			unsubscribe()
		drain:
			for {
				select {
				case ev := <-sub.events:
					if ev.kind == evEntry && p.inWindow(ev.entry, low) {
						if err := p.emit(ctx, ev.entry); err != nil {
							return err
						}
					}
				default:
					break drain
				}
			}
			if err := p.list(ctx, relistFrom()); err != nil {
				return err
			}
			if err := p.release(ctx, p.last); err != nil {
				return err
			}
			return p.loss()
		}
	}
}

// inWindow reports whether a streamed entry falls within what this reader
// follows: from low on and up to Until.
func (p *producer) inWindow(e *loggingpb.LogEntry, low time.Time) bool {
	at := e.GetTimestamp().AsTime()
	return !at.Before(low) && (p.opts.Until.IsZero() || !at.After(p.opts.Until))
}

// emit converts and sends e unless it was sent before or is of a stream
// the options do not select; a line longer than gantry.MaxLogLine goes
// out in parts, as Docker's log drivers split it.
func (p *producer) emit(ctx context.Context, e *loggingpb.LogEntry) error {
	if !p.seen.fresh(e.GetLogName(), e.GetInsertId()) {
		return nil
	}
	le, ok := p.convert(e)
	if !ok {
		return nil
	}
	if runs := p.src.Runs; runs != nil {
		if c, isRecord := runs.Record(e); isRecord {
			if p.records == nil {
				p.records = map[string]Counts{}
			}
			p.records[runs.Of(e)] = c
			return nil
		}
		run := runs.Of(e)
		if p.counted == nil {
			p.counted = map[string]*Counts{}
		}
		c := p.counted[run]
		if c == nil {
			c = &Counts{}
			p.counted[run] = c
		}
		if le.Stream == gantry.Stderr {
			c.Stderr++
		} else {
			c.Stdout++
		}
	}
	if le.Time.After(p.last) {
		p.last = le.Time
	}
	if !p.opts.Wants(le.Stream) {
		return nil
	}
	if p.holding {
		i, _ := slices.BinarySearchFunc(p.held, le.Time, func(e gantry.LogEntry, t time.Time) int {
			if e.Time.After(t) {
				return 1
			}
			return -1
		})
		p.held = slices.Insert(p.held, i, le)
		return nil
	}
	return p.send(ctx, le)
}

// release sends the held entries written no later than upTo, oldest
// first.
func (p *producer) release(ctx context.Context, upTo time.Time) error {
	n := 0
	for n < len(p.held) && !p.held[n].Time.After(upTo) {
		if err := p.send(ctx, p.held[n]); err != nil {
			return err
		}
		n++
	}
	p.held = slices.Delete(p.held, 0, n)
	return nil
}

// send sends le, in parts when its line is longer than gantry.MaxLogLine.
func (p *producer) send(ctx context.Context, le gantry.LogEntry) error {
	var err error
	gantry.SplitLogLine(le, func(part gantry.LogEntry) bool {
		select {
		case p.out <- part:
			return true
		case <-ctx.Done():
			err = ctx.Err()
			return false
		}
	})
	return err
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
