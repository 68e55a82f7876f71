package logsvc

import (
	"io"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Limits from TailLogEntriesRequest.buffer_window: "Valid values are
// between 0-60000 milliseconds. Defaults to 2000 milliseconds."
const (
	defaultBufferWindow = 2 * time.Second
	maxBufferWindow     = 60 * time.Second
)

// Delivery limits of one stream. A subscriber that falls more than
// maxPending entries behind loses the excess, reported to the client as
// suppression_info with reason NOT_CONSUMED, as the real service does.
// Responses stay well under gRPC's default 4 MiB message limit.
const (
	maxPending       = 1 << 18
	maxBatchEntries  = 1000
	maxResponseBytes = 3 << 20
)

// subscriber is one TailLogEntries stream. The store appends matching
// candidates under Service.mu; the stream's goroutine filters and sends.
type subscriber struct {
	notify chan struct{}
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	pending    []*record
	suppressed int
}

// offer queues records for the stream; called with Service.mu held.
func (sub *subscriber) offer(recs []*record) {
	sub.mu.Lock()
	room := maxPending - len(sub.pending)
	if room < len(recs) {
		sub.suppressed += len(recs) - max(room, 0)
		recs = recs[:max(room, 0)]
	}
	sub.pending = append(sub.pending, recs...)
	sub.mu.Unlock()
	select {
	case sub.notify <- struct{}{}:
	default:
	}
}

func (sub *subscriber) close() { sub.once.Do(func() { close(sub.done) }) }

// take returns the queued records and the count of suppressed ones.
func (sub *subscriber) take(buf []*record) ([]*record, int) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	buf = append(buf[:0], sub.pending...)
	clear(sub.pending)
	sub.pending = sub.pending[:0]
	n := sub.suppressed
	sub.suppressed = 0
	return buf, n
}

// held is a matched entry waiting out the buffer window.
type held struct {
	r       *record
	arrived time.Time
}

// TailLogEntries implements entries.tail. The first request carries
// resource_names, filter and buffer_window (0 to 60 s, default 2 s); later
// requests on the stream are read and ignored. Entries written after the
// stream starts are sent; each is held for the buffer window after it
// arrives, and what is released together is sent in timestamp order, so
// entries that arrive out of order within the window are reordered.
func (s *Service) TailLogEntries(stream loggingpb.LoggingServiceV2_TailLogEntriesServer) error {
	req, err := stream.Recv()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	q, err := s.newQuery(req.GetResourceNames(), req.GetFilter())
	if err != nil {
		return err
	}
	window := defaultBufferWindow
	if bw := req.GetBufferWindow(); bw != nil {
		if err := bw.CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "buffer_window: %v", err)
		}
		window = bw.AsDuration()
		if window < 0 || window > maxBufferWindow {
			return status.Errorf(codes.InvalidArgument, "buffer_window: %v is out of range; it must be between 0 and 60000 milliseconds", window)
		}
	}
	sub := &subscriber{notify: make(chan struct{}, 1), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "logging service is shut down")
	}
	if err := s.openSessionLocked(q); err != nil {
		s.mu.Unlock()
		return err
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.closeSessionLocked(q)
		s.mu.Unlock()
	}()
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()

	ctx := stream.Context()
	var (
		buf     []*record
		waiting []held
		timer   *time.Timer
		timerC  <-chan time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-sub.done:
			return nil
		case <-sub.notify:
		case <-timerC:
			timerC = nil
		}
		var suppressed int
		buf, suppressed = sub.take(buf)
		now := s.now()
		for _, r := range buf {
			if q.filter.Match(r.entry) && q.parents[r.parent] {
				waiting = append(waiting, held{r, now})
			}
		}
		clear(buf)
		n := 0
		for n < len(waiting) && !waiting[n].arrived.Add(window).After(now) {
			n++
		}
		ready := make([]*record, n)
		for i := range ready {
			ready[i] = waiting[i].r
		}
		waiting = append(waiting[:0], waiting[n:]...)
		if window > 0 {
			slices.SortFunc(ready, func(a, b *record) int { return a.key().compare(b.key()) })
		}
		ready, limited := s.rateLimit(ready)
		s.countSuppressed(limited, suppressed)
		if err := send(stream, ready, limited, suppressed); err != nil {
			return err
		}
		if len(waiting) > 0 && timerC == nil {
			d := waiting[0].arrived.Add(window).Sub(s.now())
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
	}
}

// approxSize bounds an entry's encoded size cheaply for the common case
// of a text entry with a few labels, and measures it otherwise.
func approxSize(e *loggingpb.LogEntry) int {
	if t, ok := e.GetPayload().(*loggingpb.LogEntry_TextPayload); ok && len(e.GetLabels())+len(e.GetResource().GetLabels()) <= 8 {
		n := len(t.TextPayload) + len(e.GetLogName()) + len(e.GetInsertId()) + len(e.GetResource().GetType()) + 128
		for k, v := range e.GetLabels() {
			n += len(k) + len(v) + 8
		}
		for k, v := range e.GetResource().GetLabels() {
			n += len(k) + len(v) + 8
		}
		return n + len(e.GetTrace()) + len(e.GetSpanId())
	}
	return proto.Size(e)
}

// send writes entries in responses of bounded size, with the counts of
// suppressed entries on the first: "at most one of each reason per
// response".
func send(stream loggingpb.LoggingServiceV2_TailLogEntriesServer, recs []*record, rateLimited, notConsumed int) error {
	resp := &loggingpb.TailLogEntriesResponse{}
	for _, sup := range []struct {
		reason loggingpb.TailLogEntriesResponse_SuppressionInfo_Reason
		n      int
	}{
		{loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT, rateLimited},
		{loggingpb.TailLogEntriesResponse_SuppressionInfo_NOT_CONSUMED, notConsumed},
	} {
		if sup.n > 0 {
			resp.SuppressionInfo = append(resp.SuppressionInfo, &loggingpb.TailLogEntriesResponse_SuppressionInfo{
				Reason:          sup.reason,
				SuppressedCount: int32(min(sup.n, 1<<31-1)),
			})
		}
	}
	bytes := 0
	for _, r := range recs {
		sz := approxSize(r.entry)
		if len(resp.Entries) > 0 && (len(resp.Entries) == maxBatchEntries || bytes+sz > maxResponseBytes) {
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp = &loggingpb.TailLogEntriesResponse{}
			bytes = 0
		}
		resp.Entries = append(resp.Entries, r.entry)
		bytes += sz
	}
	if len(resp.Entries) > 0 || len(resp.SuppressionInfo) > 0 {
		return stream.Send(resp)
	}
	return nil
}
