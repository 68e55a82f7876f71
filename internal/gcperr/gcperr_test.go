package gcperr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiError returns what a generated client returns for a failed call: an
// *apierror.APIError over a gRPC status, here with details, which
// APIError.Error prints on lines of their own.
func apiError(t *testing.T, c codes.Code, msg string) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(&errdetails.ErrorInfo{Reason: "REASON", Domain: "run.googleapis.com"})
	if err != nil {
		t.Fatal(err)
	}
	ae, ok := apierror.FromError(st.Err())
	if !ok {
		t.Fatal("apierror.FromError refused a gRPC status")
	}
	return ae
}

func TestWrapClassifiesOnOneLine(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want error
	}{
		{codes.NotFound, gantry.ErrNotFound},
		{codes.AlreadyExists, gantry.ErrConflict},
		{codes.FailedPrecondition, gantry.ErrConflict},
		{codes.Aborted, gantry.ErrConflict},
		{codes.InvalidArgument, gantry.ErrInvalidArgument},
		{codes.OutOfRange, gantry.ErrInvalidArgument},
		{codes.PermissionDenied, gantry.ErrPermissionDenied},
		{codes.Unauthenticated, gantry.ErrPermissionDenied},
		{codes.ResourceExhausted, gantry.ErrResourceExhausted},
		{codes.Unavailable, gantry.ErrUnavailable},
		{codes.DeadlineExceeded, gantry.ErrUnavailable},
		{codes.Unimplemented, gantry.ErrNotSupported},
		{codes.Internal, nil},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			cause := apiError(t, tc.code, "job x:\nsecond line")
			err := Wrap(context.Background(), cause, "cloudrun: inspect %q", "web")
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.want)
			}
			var ae *apierror.APIError
			if !errors.As(err, &ae) || ae.GRPCStatus().Code() != tc.code {
				t.Errorf("errors.As does not reach the *apierror.APIError of %v: %v", tc.code, err)
			}
			if got := Code(err); got != tc.code {
				t.Errorf("Code = %v, want %v", got, tc.code)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			if !strings.HasPrefix(msg, `cloudrun: inspect "web": `) || !strings.Contains(msg, "second line") || !strings.Contains(msg, "REASON") {
				t.Errorf("message %q does not say what was asked and what the provider said", msg)
			}
			if tc.want != nil && strings.Count(msg, tc.want.Error()+":") != 1 {
				t.Errorf("message %q does not name its class once", msg)
			}
		})
	}
}

func TestWrapOfAPlainStatus(t *testing.T) {
	err := Wrap(context.Background(), status.Error(codes.NotFound, "gone"), "cloudrun: start %q", "a")
	var ae *apierror.APIError
	if !errors.Is(err, gantry.ErrNotFound) || !errors.As(err, &ae) {
		t.Fatalf("Wrap(status) = %v: not ErrNotFound over an *apierror.APIError", err)
	}
	if want := `cloudrun: start "a": not found: rpc error: code = NotFound desc = gone`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestWrapTwiceNamesTheClassOnce(t *testing.T) {
	inner := Wrap(context.Background(), apiError(t, codes.PermissionDenied, "no"), "list jobs")
	outer := Wrap(context.Background(), inner, "cloudrun: sweep")
	if !errors.Is(outer, gantry.ErrPermissionDenied) {
		t.Errorf("the class is lost: %v", outer)
	}
	if n := strings.Count(outer.Error(), "permission denied:"); n != 1 || !strings.HasPrefix(outer.Error(), "cloudrun: sweep: list jobs: ") {
		t.Errorf("twice wrapped: %q", outer)
	}
}

// TestContextErrorsPassThrough: the caller's own context error comes back
// as it is, whatever the transport made of it.
func TestContextErrorsPassThrough(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wrap(ctx, status.Error(codes.Canceled, "context canceled"), "x"); err != context.Canceled {
		t.Errorf("Wrap after cancel = %#v, want context.Canceled itself", err)
	}
	for _, cerr := range []error{context.Canceled, context.DeadlineExceeded, fmt.Errorf("dial: %w", context.DeadlineExceeded)} {
		if err := Wrap(context.Background(), cerr, "x"); err != cerr {
			t.Errorf("Wrap(%v) = %v, want it untouched", cerr, err)
		}
	}
	if err := Wrap(context.Background(), nil, "x"); err != nil {
		t.Errorf("Wrap(nil) = %v", err)
	}
}

func TestCodeOfHTTPErrors(t *testing.T) {
	if c := Code(errors.New("plain")); c != codes.Unknown {
		t.Errorf("Code(plain) = %v, want Unknown", c)
	}
	if c := Code(nil); c != codes.OK {
		t.Errorf("Code(nil) = %v, want OK", c)
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a":             "a",
		" a\n":          "a",
		"a\nb\r\n\n c ": "a; b; c",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRetryIsBounded: the retry option gives up after MaxAttempts and
// retries nothing but UNAVAILABLE.
func TestRetryIsBounded(t *testing.T) {
	r := Retry()
	retryer := retryerOf(t, r)
	attempts := 1
	for {
		if _, again := retryer.Retry(status.Error(codes.Unavailable, "down")); !again {
			break
		}
		attempts++
	}
	if attempts != MaxAttempts {
		t.Errorf("UNAVAILABLE is tried %d times, want %d", attempts, MaxAttempts)
	}
	for _, c := range []codes.Code{codes.AlreadyExists, codes.FailedPrecondition, codes.Internal, codes.PermissionDenied} {
		if _, again := retryerOf(t, r).Retry(status.Error(c, "no")); again {
			t.Errorf("%v is retried", c)
		}
	}
}

// retryerOf returns a fresh Retryer of a retry call option, as a generated
// client makes one for each call.
func retryerOf(t *testing.T, o gax.CallOption) gax.Retryer {
	t.Helper()
	var s gax.CallSettings
	o.Resolve(&s)
	if s.Retry == nil {
		t.Fatal("the call option sets no retry")
	}
	return s.Retry()
}

// TestWrapServerSideDeadline: a DEADLINE_EXCEEDED that the server reports
// a moment before the caller's own deadline is the caller's deadline.
func TestWrapServerSideDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Wrap(ctx, status.Error(codes.DeadlineExceeded, "stream terminated by RST_STREAM"), "tail")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("Wrap = %v, want context.DeadlineExceeded", err)
	}
	far, cancelFar := context.WithTimeout(context.Background(), time.Hour)
	defer cancelFar()
	if err := Wrap(far, status.Error(codes.DeadlineExceeded, "backend timeout"), "get"); !errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("Wrap with a far deadline = %v, want ErrUnavailable (the service timed out)", err)
	}
}
