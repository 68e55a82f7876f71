package gantry

import "errors"

// The error sentinels every Runtime uses. Test for them with errors.Is; the
// error a backend returns also wraps the provider's own error (for Google
// Cloud, *apierror.APIError and the gRPC status), which errors.As reaches.
// Context errors (context.Canceled, context.DeadlineExceeded) are passed
// through untouched.
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
)
