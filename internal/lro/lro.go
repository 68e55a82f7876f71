// Package lro waits for the long-running operations of Google's generated
// clients at a backend's own cadence, retrying a poll that meets
// UNAVAILABLE (gcperr.Retry), and making no poll at all for an operation
// that was done when it came back (as the emulator's instant operations
// are).
//
//	op, err := jobs.CreateJob(ctx, req)
//	if err != nil {
//		return err
//	}
//	job, err := lro.Wait(ctx, op, time.Second)
package lro

import (
	"context"
	"time"

	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/googleapis/gax-go/v2"
)

// Operation is the part of a generated long-running operation Wait needs.
type Operation[T any] interface {
	Done() bool
	Poll(context.Context, ...gax.CallOption) (T, error)
}

// Wait polls op every interval until it is done, and returns its result.
func Wait[T any](ctx context.Context, op Operation[T], every time.Duration) (T, error) {
	for {
		res, err := op.Poll(ctx, gcperr.Retry())
		if err != nil || op.Done() {
			return res, err
		}
		if err := gax.Sleep(ctx, every); err != nil {
			return res, err
		}
	}
}
