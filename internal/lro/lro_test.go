package lro

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/googleapis/gax-go/v2"
)

// fakeOp is done after n polls.
type fakeOp struct {
	polls, n int
	at       []time.Duration
	start    time.Time
	err      error
}

func (o *fakeOp) Done() bool { return o.polls >= o.n }
func (o *fakeOp) Poll(context.Context, ...gax.CallOption) (string, error) {
	o.polls++
	o.at = append(o.at, time.Since(o.start))
	if o.Done() {
		return "result", o.err
	}
	return "", nil
}

func TestWaitPollsAtItsCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := &fakeOp{n: 3, start: time.Now()}
		res, err := Wait(t.Context(), op, time.Second)
		if err != nil || res != "result" {
			t.Fatalf("Wait = %q, %v", res, err)
		}
		if want := []time.Duration{0, time.Second, 2 * time.Second}; len(op.at) != 3 || op.at[1] != want[1] || op.at[2] != want[2] {
			t.Errorf("polls at %v, want %v", op.at, want)
		}
	})
}

func TestWaitEndsWithTheContextOrAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		if _, err := Wait(ctx, &fakeOp{n: 100, start: time.Now()}, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait past its deadline: %v", err)
		}
		boom := errors.New("boom")
		if _, err := Wait(t.Context(), &fakeOp{n: 1, err: boom, start: time.Now()}, time.Second); !errors.Is(err, boom) {
			t.Errorf("a failed operation: %v, want its error", err)
		}
	})
}
