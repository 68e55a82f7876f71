package cloudlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/quota"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Tail is one TailLogEntries session that serves any number of following
// readers. Cloud Logging allows 10 live-tail sessions a project, so a
// session per follower would lock the eleventh out; a backend makes one
// Tail whose filter selects all of its containers, and each follower
// (Source.Tail) takes the entries its Source.Match accepts.
//
// The session opens when the first follower subscribes and closes when
// the last leaves. When the service ends it or it drops, it opens again:
// after the delay a RESOURCE_EXHAUSTED answer's RetryInfo asks for (the
// project's sessions are all in use), after a backoff for UNAVAILABLE, at
// once when the service ended it cleanly (sessions have a lifetime). Each
// follower hears of every opening, so it lists what the stream may have
// missed until the new session has answered, and of every window the
// service suppressed (suppression_info), so it lists that window again.
// A follower too slow to take what the session sends misses nothing: it
// is told so, and lists again.
type Tail struct {
	client   *logging.Client
	project  string
	filter   string
	describe string

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	stop   context.CancelFunc // ends the session loop; nil when none runs
	done   chan struct{}      // closed when the session loop has ended
	live   bool               // the current session has answered
	opened atomic.Int64       // sessions opened, for tests and reports
}

// NewTail returns a Tail that reads filter's entries of project; describe
// names it in errors, such as "cloudrun: tail".
func NewTail(client *logging.Client, project, filter, describe string) *Tail {
	return &Tail{client: client, project: project, filter: filter, describe: describe, subs: map[*subscription]struct{}{}}
}

// Sessions reports how many TailLogEntries sessions the Tail has opened.
func (t *Tail) Sessions() int64 { return t.opened.Load() }

type eventKind int

const (
	evEntry      eventKind = iota
	evOpened               // a session opened: what is written now may reach neither it nor a listing
	evLive                 // the session answered: it was live before whatever it sent was written
	evSuppressed           // the service dropped entries; relist
	evFailed               // the Tail cannot go on
)

type tailEvent struct {
	kind  eventKind
	entry *loggingpb.LogEntry
	err   error
}

// subscription is one follower's view of the Tail.
type subscription struct {
	match  func(*loggingpb.LogEntry) bool
	events chan tailEvent
	// lost is set when an event did not fit in events; wake says so.
	lost atomic.Bool
	wake chan struct{}
}

// subscriptionBuffer is how many events a follower may fall behind by
// before it is told to list again instead.
const subscriptionBuffer = 4096

// subscribe adds a follower that takes the entries match accepts. Its
// first event says whether the session is live.
func (t *Tail) subscribe(match func(*loggingpb.LogEntry) bool) *subscription {
	s := &subscription{match: match, events: make(chan tailEvent, subscriptionBuffer), wake: make(chan struct{}, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs[s] = struct{}{}
	if t.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		t.stop, t.done, t.live = cancel, make(chan struct{}), false
		go t.run(ctx, t.done)
	}
	if t.live {
		s.send(tailEvent{kind: evLive})
	} else {
		s.send(tailEvent{kind: evOpened})
	}
	return s
}

// unsubscribe removes a follower; the last one out closes the session
// and waits for it to end.
func (t *Tail) unsubscribe(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	var stop context.CancelFunc
	var done chan struct{}
	if len(t.subs) == 0 && t.stop != nil {
		stop, done, t.stop = t.stop, t.done, nil
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (s *subscription) send(e tailEvent) {
	select {
	case s.events <- e:
	default:
		s.lost.Store(true)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// broadcast sends e to every follower, or, for an entry, to those that
// take it.
func (t *Tail) broadcast(e tailEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.kind {
	case evOpened:
		t.live = false
	case evLive:
		t.live = true
	}
	for s := range t.subs {
		if e.kind != evEntry || s.match == nil || s.match(e.entry) {
			s.send(e)
		}
	}
}

// run keeps a session open until ctx ends, and tells the followers when
// it cannot.
func (t *Tail) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	bo := gcperr.Backoff()
	for attempt := 1; ctx.Err() == nil; attempt++ {
		answered, err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if answered {
			attempt, bo = 1, gcperr.Backoff()
		}
		var wait time.Duration
		switch code := gcperr.Code(err); {
		case err == nil:
			// The service ended the session cleanly; open another after a
			// short pause, unless sessions keep ending before they answer.
			wait = bo.Pause()
			if attempt >= gcperr.MaxAttempts {
				err = fmt.Errorf("%w: %d tail sessions in a row ended before they answered", gantry.ErrUnavailable, attempt)
			}
		case code == codes.ResourceExhausted:
			wait = quota.RetryDelay(err, attempt-1)
		case code == codes.Unavailable:
			wait = bo.Pause()
		default:
			attempt = gcperr.MaxAttempts
		}
		if err != nil && attempt >= gcperr.MaxAttempts {
			t.broadcast(tailEvent{kind: evFailed, err: gcperr.Wrap(ctx, err, "%s: tail log entries", t.describe)})
			return
		}
		if gax.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// session runs one TailLogEntries session until it ends, and reports
// whether it answered at all.
func (t *Tail) session(ctx context.Context) (bool, error) {
	st, err := t.client.TailLogEntries(ctx)
	if err != nil {
		return false, err
	}
	t.opened.Add(1)
	// No buffer window: the service would hold each entry 2 s by default
	// to reorder late ones, and followers already hold theirs for the
	// grace, which the reordering needs anyway.
	err = st.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/" + t.project}, Filter: t.filter, BufferWindow: durationpb.New(0)})
	if errors.Is(err, io.EOF) {
		// The service ended the stream before it read the request (a
		// refusal such as UNAVAILABLE); gRPC reports why only to Recv.
		if _, err = st.Recv(); errors.Is(err, io.EOF) {
			return false, nil
		}
	}
	if err != nil {
		return false, err
	}
	t.broadcast(tailEvent{kind: evOpened})
	answered := false
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return answered, nil
			}
			return answered, err
		}
		for _, e := range resp.GetEntries() {
			t.broadcast(tailEvent{kind: evEntry, entry: e})
		}
		if len(resp.GetSuppressionInfo()) > 0 {
			t.broadcast(tailEvent{kind: evSuppressed})
		}
		if !answered {
			answered = true
			t.broadcast(tailEvent{kind: evLive})
		}
	}
}
