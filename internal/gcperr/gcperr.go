// Package gcperr turns the errors of Google Cloud client libraries into
// gantry's error classes, and provides the retry policy the backends give
// idempotent calls.
//
// Every error it returns says what was asked, names the gantry sentinel
// and still wraps the provider's error, so both of these hold:
//
//	err := gcperr.Wrap(ctx, callErr, "cloudrun: inspect %q", id)
//	errors.Is(err, gantry.ErrNotFound)     // the class
//	var ae *apierror.APIError
//	errors.As(err, &ae)                    // the provider's detail
//
// Context errors are returned untouched, so errors.Is(err, context.Canceled)
// holds; the backend's gantry.WrapOp names the call they ended.
package gcperr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code returns the gRPC code of err: from its *apierror.APIError or gRPC
// status, codes.OK for nil, codes.Unknown for an error that has neither.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		if s := ae.GRPCStatus(); s != nil {
			return s.Code()
		}
		switch ae.HTTPCode() {
		case 400:
			return codes.InvalidArgument
		case 401:
			return codes.Unauthenticated
		case 403:
			return codes.PermissionDenied
		case 404:
			return codes.NotFound
		case 409:
			return codes.AlreadyExists
		case 412:
			return codes.FailedPrecondition
		case 429:
			return codes.ResourceExhausted
		case 501:
			return codes.Unimplemented
		case 503:
			return codes.Unavailable
		}
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// Sentinel returns the gantry sentinel for a gRPC code, or nil when the
// code has none (Internal, Unknown, DataLoss and the like).
func Sentinel(c codes.Code) error {
	switch c {
	case codes.NotFound:
		return gantry.ErrNotFound
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return gantry.ErrConflict
	case codes.InvalidArgument, codes.OutOfRange:
		return gantry.ErrInvalidArgument
	case codes.PermissionDenied, codes.Unauthenticated:
		return gantry.ErrPermissionDenied
	case codes.ResourceExhausted:
		return gantry.ErrResourceExhausted
	case codes.Unavailable, codes.DeadlineExceeded:
		return gantry.ErrUnavailable
	case codes.Unimplemented:
		return gantry.ErrNotSupported
	}
	return nil
}

// Wrap classifies err, returned by a Google API call made for the request
// described by format and args. It returns nil for nil; ctx's own error
// when ctx has ended (the caller gave up, whatever the transport says);
// context errors untouched; and otherwise an error that reads, on one
// line, "<request>: <class>: <provider error>" and wraps both the gantry
// sentinel and the provider's *apierror.APIError. An error Wrap made
// already keeps its class and gains the new request as a prefix, so the
// class is never repeated.
func Wrap(ctx context.Context, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if ctx != nil && Code(err) == codes.DeadlineExceeded {
		// gRPC sends the caller's deadline to the server, whose timer may
		// fire a moment before the caller's: that is the caller's
		// deadline, not an unavailable service.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < deadlineSkew {
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return context.DeadlineExceeded
			}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	what := fmt.Sprintf(format, args...)
	var inner *wrapped
	if errors.As(err, &inner) {
		return &wrapped{msg: what + ": " + inner.msg, errs: []error{err}}
	}
	var ae *apierror.APIError
	if !errors.As(err, &ae) {
		if conv, ok := apierror.FromError(err); ok {
			err = conv
		}
	}
	if s := Sentinel(Code(err)); s != nil {
		return &wrapped{msg: what + ": " + s.Error() + ": " + OneLine(err.Error()), errs: []error{s, err}}
	}
	return &wrapped{msg: what + ": " + OneLine(err.Error()), errs: []error{err}}
}

// deadlineSkew bounds how far ahead of the caller's deadline a server may
// report it exceeded for Wrap to take it for the caller's.
const deadlineSkew = time.Second

// wrapped is the error Wrap returns: a one-line message over the errors
// that errors.Is and errors.As reach.
type wrapped struct {
	msg  string
	errs []error
}

func (w *wrapped) Error() string   { return w.msg }
func (w *wrapped) Unwrap() []error { return w.errs }

// OneLine joins the lines of a provider's message with "; ": an
// *apierror.APIError puts its details on lines of their own, and an error
// gantry returns is one line a person can read in a log.
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for l := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// Is reports whether err carries gRPC code c.
func Is(err error, c codes.Code) bool { return err != nil && Code(err) == c }

// DefaultBackoff is the backoff between retries of an idempotent call.
var DefaultBackoff = gax.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}

// MaxAttempts bounds the attempts of one retried call, so that a service
// that stays down yields ErrUnavailable instead of a hang.
const MaxAttempts = 8

// Retry is the call option for idempotent calls: it retries UNAVAILABLE
// with DefaultBackoff, at most MaxAttempts times in all.
func Retry() gax.CallOption {
	return gax.WithRetry(func() gax.Retryer {
		return &limited{r: gax.OnCodes([]codes.Code{codes.Unavailable}, DefaultBackoff), left: MaxAttempts - 1}
	})
}

type limited struct {
	r    gax.Retryer
	left int
}

func (l *limited) Retry(err error) (time.Duration, bool) {
	if l.left <= 0 {
		return 0, false
	}
	l.left--
	return l.r.Retry(err)
}

// Backoff returns a fresh DefaultBackoff for hand-written retry loops
// (calls that are not idempotent on their own, such as running a job,
// whose retries check first whether the failed attempt took effect).
func Backoff() *gax.Backoff {
	b := DefaultBackoff
	return &b
}
