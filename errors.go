package gantry

import (
	"errors"
	"strconv"
	"strings"
)

// The error sentinels every Runtime uses. Test for them with errors.Is; the
// error a backend returns also wraps the provider's own error (for Google
// Cloud, *apierror.APIError and the gRPC status), which errors.As reaches.
// A call that ends because its context ended returns an error that names
// the call and still satisfies errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded).
var (
	// ErrNotFound: the container (or another named thing) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the container's state, such
	// as removing a running container without Force, exec in a container
	// that is not running, or a name that is already in use.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the request is malformed; the error names the
	// field and the value. Nothing was created or changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotSupported: the backend cannot do this at all; its
	// Capabilities say so too.
	ErrNotSupported = errors.New("not supported")
	// ErrPermissionDenied: the caller's credentials do not allow it.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrResourceExhausted: a quota or limit was reached.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrUnavailable: the backend could not be reached; retrying later may
	// succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrDataLoss: data the backend knows was written is missing, such as
	// log lines a container's agent counted that never reached the log
	// store. What was found has been returned; the error says what is
	// missing.
	ErrDataLoss = errors.New("data loss")
	// ErrClosed: the Runtime was closed. Nothing on it will succeed again;
	// make a new one. (Closing a Runtime does not touch the containers a
	// cloud backend runs: a new Runtime sees them.)
	ErrClosed = errors.New("runtime is closed")
)

// OpError is the error every backend returns from a Runtime method: which
// backend, which operation, on which container, and why. It reads
//
//	cloudrun: stop "web": conflict: the container is paused
//
// Err holds the reason, which wraps the sentinel (and the provider's error),
// so errors.Is and errors.As see through an OpError.
type OpError struct {
	// Backend is the backend's name, such as "fake" or "cloudrun".
	Backend string
	// Op is the operation: "create", "start", "stop" and so on.
	Op string
	// ID is the container as the caller named it (ID, prefix or name);
	// empty for operations on no one container, such as List.
	ID string
	// Err is why the operation failed.
	Err error
}

func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString(e.Backend)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.ID != "" {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(e.ID))
	}
	b.WriteString(": ")
	if e.Err == nil {
		b.WriteString("<nil>")
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the reason.
func (e *OpError) Unwrap() error { return e.Err }

// WrapOp gives *errp, when it is not nil, the standard shape: an *OpError
// for backend, op and id. An error that already is an *OpError (an
// operation built on another, such as Restart on Stop) is left as it is,
// so no prefix is ever repeated. Backends defer it at the top of each
// exported method:
//
//	func (r *Runtime) Stop(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
//		defer gantry.WrapOp(&err, "cloudrun", "stop", id)
func WrapOp(errp *error, backend, op, id string) {
	err := *errp
	if err == nil {
		return
	}
	if _, ok := err.(*OpError); ok {
		return
	}
	*errp = &OpError{Backend: backend, Op: op, ID: id, Err: err}
}
