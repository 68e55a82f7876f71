package poll

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Every test runs in a synctest bubble: time is the bubble's fake clock,
// which moves only when every goroutine in it is blocked, so the instants
// asserted below are exact and no test waits in real time.

// fetches is a fetch function for tests: it records the fake-clock
// instant (since the Poller was made) at which each fetch starts and
// returns the fetch's number, counting from 1, with the error and after
// the duration that outcome gives it.
type fetches struct {
	start   time.Time
	outcome func(k int) (time.Duration, error)

	mu sync.Mutex
	at []time.Duration
}

func newFetches(outcome func(k int) (time.Duration, error)) *fetches {
	if outcome == nil {
		outcome = func(int) (time.Duration, error) { return 0, nil }
	}
	return &fetches{start: time.Now(), outcome: outcome}
}

func (f *fetches) fetch(ctx context.Context) (int, error) {
	f.mu.Lock()
	f.at = append(f.at, time.Since(f.start))
	k := len(f.at)
	f.mu.Unlock()
	d, err := f.outcome(k)
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return k, err
}

// times returns the instants at which fetches started.
func (f *fetches) times() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at)
}

// ticks returns the instants k*interval for each k.
func ticks(interval time.Duration, ks ...int) []time.Duration {
	out := make([]time.Duration, len(ks))
	for i, k := range ks {
		out[i] = time.Duration(k) * interval
	}
	return out
}

func checkTimes(t *testing.T, what string, got, want []time.Duration) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s at %v, want %v", what, got, want)
	}
}

// TestOneFetchPerTickForManyWatchers shows the point of the package: 50
// waiters that all need the tenth result cost ten fetches, one per
// interval, not 500; and once they have left, no more.
func TestOneFetchPerTickForManyWatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const watchers, target, interval = 50, 10, time.Second
		f := newFetches(nil)
		p := New(interval, f.fetch)
		defer p.Close()
		var wg sync.WaitGroup
		errs := make([]error, watchers)
		for i := range watchers {
			wg.Go(func() {
				errs[i] = p.Watch(context.Background(), func(v int, err error) (bool, error) {
					return v >= target, err
				})
			})
		}
		synctest.Wait()
		if n := p.Watchers(); n != watchers {
			t.Fatalf("Watchers() = %d with %d Watch calls parked", n, watchers)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(f.start); d != (target-1)*interval {
			t.Errorf("the watchers returned at %v, want %v (the tenth tick)", d, (target-1)*interval)
		}
		// The loop wakes at the next tick, finds nobody and stops: time
		// cannot pass while a satisfied watcher is still leaving, so no
		// tick ever sees one.
		time.Sleep(100 * interval)
		checkTimes(t, "fetches", f.times(), ticks(interval, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
		if got := p.Fetches(); got != target {
			t.Errorf("%d watchers cost %d fetches, want %d", watchers, got, target)
		}
	})
}

func TestNoWatcherNoFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		f := newFetches(nil)
		p := New(interval, f.fetch)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Watch(ctx, func(int, error) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch with a cancelled context = %v, want context.Canceled", err)
		}
		time.Sleep(100 * interval)
		// The loop may have started its first fetch before the watcher
		// left, never another.
		if got := p.Fetches(); got > 1 {
			t.Errorf("%d fetches for a watcher that left at once, want at most 1", got)
		}
		p.Close()
		if err := p.Watch(context.Background(), func(int, error) (bool, error) { return true, nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Watch after Close = %v, want ErrClosed", err)
		}
	})
}

// TestFetchesOnlyWhileWatched: fetches run on the interval while someone
// watches and stop when nobody does; a Watch on an idle Poller fetches at
// once, and one that joins a running Poller waits for its next tick rather
// than adding a fetch.
func TestFetchesOnlyWhileWatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		f := newFetches(nil)
		p := New(interval, f.fetch)
		defer p.Close()
		watch := func(n int) (first, last int) {
			t.Helper()
			seen := 0
			if err := p.Watch(context.Background(), func(v int, err error) (bool, error) {
				if first == 0 {
					first = v
				}
				last = v
				seen++
				return seen == n, err
			}); err != nil {
				t.Fatal(err)
			}
			return first, last
		}

		if first, last := watch(3); first != 1 || last != 3 {
			t.Errorf("first Watch saw fetches %d to %d, want 1 to 3", first, last)
		}
		time.Sleep(time.Minute)
		checkTimes(t, "fetches with a watcher for three ticks, then none for a minute", f.times(), ticks(interval, 0, 1, 2))

		// t = 62s: the Poller is idle, so a Watch fetches at once.
		if first, _ := watch(1); first != 4 {
			t.Errorf("Watch on an idle Poller saw fetch %d, want 4", first)
		}
		// t = 62.5s: the Poller waits for its next tick at 63s; a Watch
		// now shares it.
		time.Sleep(interval / 2)
		if first, _ := watch(1); first != 5 {
			t.Errorf("Watch on a running Poller saw fetch %d, want 5", first)
		}
		if d := time.Since(f.start); d != 63*interval {
			t.Errorf("Watch on a running Poller returned at %v, want its next tick at %v", d, 63*interval)
		}
		time.Sleep(time.Minute)
		checkTimes(t, "fetches", f.times(), ticks(interval, 0, 1, 2, 62, 63))
	})
}

// TestIntervalRunsFromFetchStart: the interval is from the start of one
// fetch to the start of the next, however long the fetch took; a fetch
// that took longer than the interval is followed at once.
func TestIntervalRunsFromFetchStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		durations := []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond, 0, 0}
		f := newFetches(func(k int) (time.Duration, error) { return durations[k-1], nil })
		p := New(interval, f.fetch)
		defer p.Close()
		if err := p.Watch(context.Background(), func(v int, err error) (bool, error) {
			return v == len(durations), err
		}); err != nil {
			t.Fatal(err)
		}
		checkTimes(t, "fetches", f.times(), []time.Duration{0, time.Second, 2500 * time.Millisecond, 3500 * time.Millisecond})
	})
}

func TestCheckSeesFetchErrorsAndStopsWithItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		boom := errors.New("boom")
		f := newFetches(func(k int) (time.Duration, error) {
			if k < 3 {
				return 0, errors.New("transient")
			}
			return 0, nil
		})
		p := New(interval, f.fetch)
		defer p.Close()
		var failures int
		err := p.Watch(context.Background(), func(v int, err error) (bool, error) {
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
		if d := time.Since(f.start); d != 6*interval {
			t.Errorf("Watch returned at %v, want %v (at the third fetch)", d, 6*interval)
		}
		checkTimes(t, "fetches", f.times(), ticks(interval, 0, 2, 6))
	})
}

func TestWatchSeesOnlyLaterFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		f := newFetches(nil)
		p := New(interval, f.fetch)
		defer p.Close()
		if err := p.Watch(context.Background(), func(v int, _ error) (bool, error) { return v >= 3, nil }); err != nil {
			t.Fatal(err)
		}
		// t = 2s: fetch 3 has been delivered; the next starts at 3s.
		before := p.Fetches()
		var first int
		if err := p.Watch(context.Background(), func(v int, _ error) (bool, error) {
			first = v
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		if int64(first) <= before {
			t.Errorf("second Watch saw fetch %d, which started before it (last was %d)", first, before)
		}
		if d := time.Since(f.start); first != 4 || d != 3*interval {
			t.Errorf("second Watch saw fetch %d at %v, want fetch 4 at %v", first, d, 3*interval)
		}
	})
}

// TestWatchDuringAFetchSkipsIt: a Watch that begins while a fetch is in
// flight does not take that fetch's result, which may predate it, but the
// next one.
func TestWatchDuringAFetchSkipsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, took = time.Second, 500 * time.Millisecond
		f := newFetches(func(int) (time.Duration, error) { return took, nil })
		p := New(interval, f.fetch)
		defer p.Close()
		type seen struct {
			v  int
			at time.Duration
		}
		watchOnce := func(out *seen) error {
			return p.Watch(context.Background(), func(v int, err error) (bool, error) {
				*out = seen{v, time.Since(f.start)}
				return true, err
			})
		}
		var a, b seen
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := watchOnce(&a); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(took / 2) // fetch 1 is in flight
		if err := watchOnce(&b); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if want := (seen{1, took}); a != want {
			t.Errorf("the Watch that started the Poller saw %+v, want %+v", a, want)
		}
		if want := (seen{2, interval + took}); b != want {
			t.Errorf("the Watch begun during fetch 1 saw %+v, want %+v", b, want)
		}
	})
}

// TestSlowCheckGetsTheNewestResult: results that a check busy elsewhere
// has not taken are replaced by newer ones, not queued.
func TestSlowCheckGetsTheNewestResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		f := newFetches(nil)
		p := New(interval, f.fetch)
		defer p.Close()
		var seen []int
		if err := p.Watch(context.Background(), func(v int, err error) (bool, error) {
			seen = append(seen, v)
			if len(seen) == 1 {
				time.Sleep(3*interval + interval/2) // fetches 2, 3 and 4 come meanwhile
			}
			return len(seen) == 2, err
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seen, []int{1, 4}) {
			t.Errorf("a check that slept through three ticks saw fetches %v, want [1 4]", seen)
		}
		if d := time.Since(f.start); d != 3*interval+interval/2 {
			t.Errorf("Watch returned at %v, want %v, as soon as the check was done", d, 3*interval+interval/2)
		}
	})
}

func TestCloseEndsWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFetches(nil)
		p := New(time.Second, f.fetch)
		done := make(chan error)
		go func() { done <- p.Watch(context.Background(), func(int, error) (bool, error) { return false, nil }) }()
		synctest.Wait() // fetch 1 is delivered; the loop sleeps
		if n := p.Fetches(); n != 1 {
			t.Errorf("Fetches() = %d with one Watch parked at once, want 1", n)
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
		if d := time.Since(f.start); d != 0 {
			t.Errorf("Close took %v of the fake clock, want none", d)
		}
		p.Close() // a second Close is harmless
	})
}

// TestCloseCancelsAFetchAndEndsEveryWatch: Close cancels a fetch in
// flight and ends every pending Watch with ErrClosed at once.
func TestCloseCancelsAFetchAndEndsEveryWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, watchers = time.Second, 3
		var fetchErr error
		f := newFetches(func(k int) (time.Duration, error) {
			if k == 3 {
				return time.Hour, nil // hangs until cancelled
			}
			return 0, nil
		})
		p := New(interval, func(ctx context.Context) (int, error) {
			v, err := f.fetch(ctx)
			if err != nil {
				fetchErr = err
			}
			return v, err
		})
		errs := make(chan error, watchers)
		for range watchers {
			go func() { errs <- p.Watch(context.Background(), func(int, error) (bool, error) { return false, nil }) }()
		}
		time.Sleep(10 * interval) // fetch 3, begun at 2s, is still in flight
		p.Close()
		if d := time.Since(f.start); d != 10*interval {
			t.Errorf("Close returned at %v, want at once (%v)", d, 10*interval)
		}
		for range watchers {
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Errorf("Watch during Close = %v, want ErrClosed", err)
			}
		}
		if !errors.Is(fetchErr, context.Canceled) {
			t.Errorf("the fetch in flight ended with %v, want context.Canceled", fetchErr)
		}
		checkTimes(t, "fetches", f.times(), ticks(interval, 0, 1, 2))
		if n := p.Watchers(); n != 0 {
			t.Errorf("Watchers() = %d after Close, want 0", n)
		}
		if err := p.Watch(context.Background(), func(int, error) (bool, error) { return true, nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Watch after Close = %v, want ErrClosed", err)
		}
	})
}

// TestBackoffAfterFailures: failed fetches space the next ones out,
// doubling up to MaxBackoff intervals, and the first success restores the
// interval; a later failure starts doubling from the beginning.
func TestBackoffAfterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Minute
		failing := map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 9: true}
		f := newFetches(func(k int) (time.Duration, error) {
			if failing[k] {
				return 0, errors.New("unavailable")
			}
			return 0, nil
		})
		p := New(interval, f.fetch)
		defer p.Close()
		var failures int
		if err := p.Watch(context.Background(), func(v int, err error) (bool, error) {
			if err != nil {
				failures++
			}
			return err == nil && v >= 10, nil
		}); err != nil {
			t.Fatal(err)
		}
		if failures != len(failing) {
			t.Errorf("check saw %d failed fetches, want %d", failures, len(failing))
		}
		// Waits after fetches 1 to 9: 2, 4, 8, 16 (MaxBackoff), 16 and 16
		// intervals after the failures, 1 after the successes 7 and 8, 2
		// after the failure 9.
		if MaxBackoff != 16 {
			t.Fatalf("MaxBackoff = %d; the instants below assume 16", MaxBackoff)
		}
		checkTimes(t, "fetches", f.times(), ticks(interval, 0, 2, 6, 14, 30, 46, 62, 63, 64, 66))
	})
}
