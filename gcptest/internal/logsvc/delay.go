package logsvc

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// WithIngestionDelay makes every entry visible to ListLogEntries and
// TailLogEntries only after a delay drawn uniformly from [lo, hi] with a
// generator seeded with seed, as Cloud Logging makes entries available
// some time after they are written. Each entry draws its own delay, so
// entries become visible in another order than they were written in, and
// than their timestamps. receiveTimestamp is when the entry became
// visible. hi <= 0 turns the delay off.
func WithIngestionDelay(lo, hi time.Duration, seed uint64) Option {
	return func(s *Service) {
		if hi <= 0 {
			s.delay = nil
			return
		}
		s.delay = &ingestDelay{
			lo:      max(lo, 0),
			hi:      hi,
			rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
			publish: s.publish,
			now:     func() *timestamppb.Timestamp { return timestamppb.New(s.now()) },
		}
	}
}

// ingestDelay holds written entries until their delay has passed. Delays
// are measured on the real clock, since they are waited for with timers.
type ingestDelay struct {
	lo, hi  time.Duration
	publish func([]*record)
	now     func() *timestamppb.Timestamp

	mu     sync.Mutex
	rng    *rand.Rand
	queue  waiting
	timer  *time.Timer
	closed bool
}

type pending struct {
	due time.Time
	seq uint64
	r   *record
}

// waiting is a min-heap of pending entries by due time, then by the order
// they were written.
type waiting struct {
	items []pending
	seq   uint64
}

func (w *waiting) Len() int { return len(w.items) }
func (w *waiting) Less(i, j int) bool {
	a, b := w.items[i], w.items[j]
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.seq < b.seq
}
func (w *waiting) Swap(i, j int) { w.items[i], w.items[j] = w.items[j], w.items[i] }
func (w *waiting) Push(x any)    { w.items = append(w.items, x.(pending)) }
func (w *waiting) Pop() any {
	n := len(w.items) - 1
	p := w.items[n]
	w.items[n] = pending{}
	w.items = w.items[:n]
	return p
}

// add queues records, each due after its own delay.
func (d *ingestDelay) add(recs []*record) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for _, r := range recs {
		wait := d.lo
		if span := d.hi - d.lo; span > 0 {
			wait += time.Duration(d.rng.Int64N(int64(span) + 1))
		}
		d.queue.seq++
		heap.Push(&d.queue, pending{due: now.Add(wait), seq: d.queue.seq, r: r})
	}
	d.armLocked(now)
}

// armLocked sets the timer for the earliest due entry.
func (d *ingestDelay) armLocked(now time.Time) {
	if d.queue.Len() == 0 {
		return
	}
	wait := d.queue.items[0].due.Sub(now)
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.release)
		return
	}
	d.timer.Reset(wait)
}

// release publishes every entry that is due, in the order they fell due.
func (d *ingestDelay) release() {
	now := time.Now()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	var due []*record
	for d.queue.Len() > 0 && !d.queue.items[0].due.After(now) {
		due = append(due, heap.Pop(&d.queue).(pending).r)
	}
	d.armLocked(now)
	received := d.now()
	for _, r := range due {
		r.entry.ReceiveTimestamp = received
	}
	// Publishing under d.mu keeps batches in the order they fell due
	// when a timer fires while another release is still publishing.
	if len(due) > 0 {
		d.publish(due)
	}
	d.mu.Unlock()
}

// close drops every pending entry and stops the timer.
func (d *ingestDelay) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.queue.items = nil
	if d.timer != nil {
		d.timer.Stop()
	}
}
