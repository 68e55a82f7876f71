package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
)

// classify gives an error from moby's client its gantry sentinel, keeping
// the client's error (and the daemon's message) in the chain for errors.As.
// what says what was being done, for a message that stands on its own.
// Context errors pass through as they are.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var sentinel error
	switch {
	case client.IsErrConnectionFailed(err), cerrdefs.IsUnavailable(err):
		sentinel = gantry.ErrUnavailable
	case cerrdefs.IsNotFound(err):
		sentinel = gantry.ErrNotFound
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err), notPaused(err):
		sentinel = gantry.ErrConflict
	case cerrdefs.IsInvalidArgument(err), ambiguous(err):
		sentinel = gantry.ErrInvalidArgument
	case cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err):
		sentinel = gantry.ErrPermissionDenied
	case cerrdefs.IsResourceExhausted(err):
		sentinel = gantry.ErrResourceExhausted
	case cerrdefs.IsNotImplemented(err):
		sentinel = gantry.ErrNotSupported
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %w", sentinel, what, err)
}

// notPaused reports the daemon's refusal to unpause a container that is
// not paused, which Docker 20.10 sends as a 500 and later daemons as the
// conflict it is.
func notPaused(err error) bool {
	return cerrdefs.IsInternal(err) && strings.Contains(err.Error(), "is not paused")
}

// ambiguous reports the daemon's answer to an ID prefix that several
// containers share. Docker 20.10 sends it as a 500, with no class of its
// own; gantry's contract makes it an invalid argument.
func ambiguous(err error) bool {
	return cerrdefs.IsInternal(err) && strings.Contains(err.Error(), "Multiple IDs found with provided prefix")
}
