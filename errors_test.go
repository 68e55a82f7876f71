package gantry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestOpError(t *testing.T) {
	reason := fmt.Errorf("%w: the container is running", gantry.ErrConflict)
	err := reason
	gantry.WrapOp(&err, "cloudrun", "remove", "web")
	if got, want := err.Error(), `cloudrun: remove "web": conflict: the container is running`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("errors.Is(ErrConflict) is false for %v", err)
	}
	// An operation built on another keeps the inner operation's error.
	gantry.WrapOp(&err, "cloudrun", "restart", "web")
	if got := err.Error(); got != `cloudrun: remove "web": conflict: the container is running` {
		t.Errorf("wrapped twice: %q", got)
	}
	var nilErr error
	gantry.WrapOp(&nilErr, "fake", "start", "x")
	if nilErr != nil {
		t.Errorf("WrapOp of nil gave %v", nilErr)
	}
	ctxErr := context.Canceled
	gantry.WrapOp(&ctxErr, "fake", "list", "")
	if got, want := ctxErr.Error(), "fake: list: context canceled"; got != want || !errors.Is(ctxErr, context.Canceled) {
		t.Errorf("a context error wraps as %q (Is Canceled: %v), want %q", got, errors.Is(ctxErr, context.Canceled), want)
	}
}
