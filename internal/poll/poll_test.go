package poll

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOneFetchPerTickForManyWatchers shows the point of the package: 50
// waiters that all need the tenth result cost ten fetches, not 500.
func TestOneFetchPerTickForManyWatchers(t *testing.T) {
	const watchers, target = 50, 10
	var n atomic.Int64
	gate := make(chan struct{})
	p := New(time.Millisecond, func(ctx context.Context) (int64, error) {
		switch n.Load() {
		case 0:
			<-gate
		case target:
			// Every watcher is satisfied; a tick that comes before the
			// last one has left must not count.
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return n.Add(1), nil
	})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, watchers)
	for range watchers {
		wg.Go(func() {
			errs <- p.Watch(context.Background(), func(v int64, err error) (bool, error) {
				return v >= target, err
			})
		})
	}
	for {
		p.mu.Lock()
		k := len(p.watchers)
		p.mu.Unlock()
		if k == watchers {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if got := n.Load(); got != target {
		t.Errorf("%d watchers cost %d fetches, want %d", watchers, got, target)
	}
}

func TestNoWatcherNoFetch(t *testing.T) {
	p := New(time.Millisecond, func(ctx context.Context) (int, error) { return 0, nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Watch(ctx, func(int, error) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch with a cancelled context = %v, want context.Canceled", err)
	}
	p.Close()
	if got := p.Fetches(); got > 1 {
		t.Errorf("%d fetches for a watcher that left at once, want at most 1", got)
	}
	if err := p.Watch(context.Background(), func(int, error) (bool, error) { return true, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
}

func TestCheckSeesFetchErrorsAndStopsWithItsOwn(t *testing.T) {
	boom := errors.New("boom")
	var n atomic.Int64
	p := New(time.Millisecond, func(ctx context.Context) (int64, error) {
		if n.Add(1) < 3 {
			return 0, errors.New("transient")
		}
		return n.Load(), nil
	})
	defer p.Close()
	var failures int
	err := p.Watch(context.Background(), func(v int64, err error) (bool, error) {
		if err != nil {
			failures++
			return false, nil
		}
		return false, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Watch = %v, want the check's error", err)
	}
	if failures != 2 {
		t.Errorf("check saw %d failed fetches, want 2", failures)
	}
}

func TestWatchSeesOnlyLaterFetches(t *testing.T) {
	var n atomic.Int64
	p := New(time.Millisecond, func(ctx context.Context) (int64, error) { return n.Add(1), nil })
	defer p.Close()
	if err := p.Watch(context.Background(), func(v int64, _ error) (bool, error) { return v >= 3, nil }); err != nil {
		t.Fatal(err)
	}
	before := n.Load()
	var first int64
	if err := p.Watch(context.Background(), func(v int64, _ error) (bool, error) {
		first = v
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if first <= before {
		t.Errorf("second Watch saw fetch %d, which started before it (last was %d)", first, before)
	}
}

func TestCloseEndsWatch(t *testing.T) {
	p := New(time.Millisecond, func(ctx context.Context) (int, error) { return 0, nil })
	done := make(chan error)
	go func() { done <- p.Watch(context.Background(), func(int, error) (bool, error) { return false, nil }) }()
	for p.Fetches() == 0 {
		time.Sleep(time.Millisecond)
	}
	if n := p.Watchers(); n != 1 {
		t.Errorf("Watchers() = %d with one Watch parked, want 1", n)
	}
	p.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Watch during Close = %v, want ErrClosed", err)
	}
	if n := p.Watchers(); n != 0 {
		t.Errorf("Watchers() = %d after the Watch returned, want 0", n)
	}
}

// TestBackoffAfterFailures: failed fetches space the next ones out,
// doubling up to MaxBackoff intervals, and the first success restores the
// interval.
func TestBackoffAfterFailures(t *testing.T) {
	const interval = time.Hour // never slept: sleep is replaced
	var n atomic.Int64
	p := New(interval, func(ctx context.Context) (int64, error) {
		if k := n.Add(1); k <= 6 {
			return 0, errors.New("unavailable")
		}
		return n.Load(), nil
	})
	defer p.Close()
	var delays []time.Duration
	p.sleep = func(ctx context.Context, d time.Duration) error {
		delays = append(delays, d)
		return ctx.Err()
	}
	err := p.Watch(context.Background(), func(v int64, err error) (bool, error) {
		return err == nil && v >= 8, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	want := []time.Duration{2 * interval, 4 * interval, 8 * interval, 16 * interval, 16 * interval, 16 * interval}
	if len(delays) < len(want)+1 {
		t.Fatalf("delays %v, want %v and then one interval at most", delays, want)
	}
	for i, d := range want {
		if delays[i] != d {
			t.Errorf("delay after failure %d = %v, want %v", i+1, delays[i], d)
		}
	}
	if d := delays[len(want)]; d > interval {
		t.Errorf("delay after a success = %v, want at most the interval %v", d, interval)
	}
}
