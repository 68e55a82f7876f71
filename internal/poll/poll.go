// Package poll runs one fetch per tick for any number of waiters.
//
// A backend that must learn when cloud resources change state (an
// execution completing, a job being deleted) watches through one Poller.
// While at least one waiter is registered, the Poller calls its fetch
// function once per interval and hands the result to every waiter, so the
// cloud sees one read per tick whether one container or a thousand are
// being waited on. With no waiters it makes no calls at all. After a
// failed fetch it waits longer before the next one (doubling up to
// MaxBackoff intervals), so a service that is down is not hammered by
// waiters that keep waiting; the first success restores the interval.
//
//	p := poll.New(time.Second, func(ctx context.Context) (Snapshot, error) {
//		return listEverything(ctx)
//	})
//	defer p.Close()
//	err := p.Watch(ctx, func(s Snapshot, err error) (bool, error) {
//		if err != nil {
//			return false, nil // keep waiting through a failed tick
//		}
//		return s.Done(id), nil
//	})
package poll

import (
	"context"
	"errors"
	"math/bits"
	"sync"
	"time"

	"github.com/googleapis/gax-go/v2"
)

// ErrClosed is returned by Watch once the Poller is closed.
var ErrClosed = errors.New("poller closed")

// MaxBackoff bounds the wait after failed fetches, in intervals.
const MaxBackoff = 16

// Poller calls fetch once per interval while anyone watches and delivers
// each result to every watcher. It is safe for concurrent use.
type Poller[S any] struct {
	interval time.Duration
	fetch    func(context.Context) (S, error)

	mu       sync.Mutex
	watchers map[*watcher[S]]struct{}
	running  bool
	seq      uint64 // number of fetches started
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop goroutine exits
}

type result[S any] struct {
	s   S
	err error
}

type watcher[S any] struct {
	after uint64 // deliver only fetches started after this one
	ch    chan result[S]
}

// New returns a Poller that calls fetch every interval while watched.
func New[S any](interval time.Duration, fetch func(context.Context) (S, error)) *Poller[S] {
	if interval <= 0 {
		interval = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Poller[S]{
		interval: interval,
		fetch:    fetch,
		watchers: map[*watcher[S]]struct{}{},
		ctx:      ctx,
		cancel:   cancel,
	}
}

// Watch blocks until check returns true or an error, ctx ends, or the
// Poller closes. check receives the result of every fetch that started
// after Watch was called (so nothing that happened before the call is
// mistaken for news, and nothing after it is missed); results a slow check
// has not taken yet are replaced by newer ones.
func (p *Poller[S]) Watch(ctx context.Context, check func(S, error) (bool, error)) error {
	w := &watcher[S]{ch: make(chan result[S], 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	w.after = p.seq
	p.watchers[w] = struct{}{}
	if !p.running {
		p.running = true
		p.done = make(chan struct{})
		go p.loop(p.done)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.watchers, w)
		p.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.ctx.Done():
			return ErrClosed
		case r := <-w.ch:
			ok, err := check(r.s, r.err)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
	}
}

// Watchers reports how many Watch calls are parked on the Poller.
func (p *Poller[S]) Watchers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watchers)
}

// Fetches reports how many fetches the Poller has started. A fetch counts
// from the moment it begins, so the API calls a caller can observe never
// outnumber it.
func (p *Poller[S]) Fetches() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int64(p.seq)
}

// Close stops the Poller; pending and later Watch calls return ErrClosed.
func (p *Poller[S]) Close() {
	p.mu.Lock()
	p.closed = true
	done := p.done
	running := p.running
	p.mu.Unlock()
	p.cancel()
	if running {
		<-done
	}
}

// loop fetches at once, then every interval (longer after failures),
// until no watcher is left.
func (p *Poller[S]) loop(done chan struct{}) {
	defer close(done)
	failures := 0
	for {
		p.mu.Lock()
		if len(p.watchers) == 0 || p.closed {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.seq++
		seq := p.seq
		p.mu.Unlock()

		started := time.Now()
		s, err := p.fetch(p.ctx)
		if p.ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		for w := range p.watchers {
			if w.after >= seq {
				continue
			}
			select {
			case <-w.ch:
			default:
			}
			w.ch <- result[S]{s, err}
		}
		p.mu.Unlock()

		wait := p.interval - time.Since(started)
		if err != nil {
			failures++
			wait = p.interval << min(failures, bits.Len(MaxBackoff)-1)
		} else {
			failures = 0
		}
		if gax.Sleep(p.ctx, wait) != nil {
			return
		}
	}
}
