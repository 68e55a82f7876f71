package cloudfunctions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions/internal/runner"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"
)

// invoker makes the HTTP requests to the functions' runners.
type invoker struct {
	fixed *http.Client
	opts  []option.ClientOption

	mu sync.Mutex
	// byURL holds an ID-token client per function URL, the token's
	// audience, when no fixed client was given.
	byURL map[string]*http.Client
}

func newInvoker(c *http.Client, opts []option.ClientOption) *invoker {
	return &invoker{fixed: c, opts: opts, byURL: map[string]*http.Client{}}
}

// client returns the client that may call the function at u.
func (in *invoker) client(ctx context.Context, u string) (*http.Client, error) {
	if in.fixed != nil {
		return in.fixed, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c := in.byURL[u]; c != nil {
		return c, nil
	}
	// The client outlives ctx: its token source refreshes tokens for
	// later requests.
	c, err := idtoken.NewClient(context.WithoutCancel(ctx), u, in.opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: an ID token for %s: %v (set Config.HTTPClient to call functions another way)", gantry.ErrPermissionDenied, u, err)
	}
	in.byURL[u] = c
	return c, nil
}

func (in *invoker) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range in.byURL {
		c.CloseIdleConnections()
	}
	if in.fixed != nil {
		in.fixed.CloseIdleConnections()
	}
}

// answer is a function's answer: its status and body. fromRunner says
// whether the runner itself wrote it (its errors begin "runner:"), not
// the platform in front of it.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a *answer) fromRunner() bool {
	return a.code == http.StatusOK || a.code == http.StatusNoContent || bytes.HasPrefix(a.body, []byte("runner:"))
}

// transient reports whether the platform refused or cut a request
// without the runner deciding anything: no instance was free (429), or
// the request timed out or failed in front of the runner.
func (a *answer) transient() bool {
	if a.fromRunner() {
		return false
	}
	switch a.code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (a *answer) String() string {
	return fmt.Sprintf("HTTP %d: %s", a.code, strings.Join(strings.Fields(string(a.body)), " "))
}

// do sends one request to the function at base. A transport error is
// returned as it is; ctx's error when ctx ended.
func (in *invoker) do(ctx context.Context, method, base, path string, body any) (*answer, error) {
	c, err := in.client(ctx, base)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &answer{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errNotServing means the function's URL answered, but not its runner:
// the function is gone, being deleted, or not deployed.
var errNotServing = errors.New("the function is not serving")

// call sends a request that is safe to repeat, and repeats it while the
// platform refuses it or the connection fails, with a backoff, until ctx
// ends. What the runner answered, or errNotServing, ends it.
func (in *invoker) call(ctx context.Context, method, base, path string, body any) (*answer, error) {
	bo := gax.Backoff{Initial: 20 * time.Millisecond, Max: time.Second, Multiplier: 2}
	for {
		a, err := in.do(ctx, method, base, path, body)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, gantry.ErrPermissionDenied):
			return nil, err
		case err == nil && a.fromRunner():
			return a, nil
		case err == nil && (a.code == http.StatusNotFound || a.code == http.StatusForbidden || a.code == http.StatusUnauthorized):
			return nil, fmt.Errorf("%w: %s", errNotServing, a)
		case err == nil && !a.transient():
			return nil, fmt.Errorf("%w: %s %s: %s", gantry.ErrUnavailable, method, path, a)
		}
		if err := gax.Sleep(ctx, bo.Pause()); err != nil {
			return nil, err
		}
	}
}

// status reads the runner's status of run id (the latest run when id is
// empty); ok is false when the instance knows no such run.
func (in *invoker) status(ctx context.Context, base, id string) (st runner.Status, ok bool, err error) {
	path := runner.PathStatus
	if id != "" {
		path += "?id=" + url.QueryEscape(id)
	}
	a, err := in.call(ctx, http.MethodGet, base, path, nil)
	if err != nil {
		return st, false, err
	}
	if a.code == http.StatusNotFound {
		return st, false, nil
	}
	if a.code != http.StatusOK {
		return st, false, fmt.Errorf("%w: status: %s", gantry.ErrUnavailable, a)
	}
	if err := json.Unmarshal(a.body, &st); err != nil {
		return st, false, fmt.Errorf("%w: status: the runner answered %q: %v", gantry.ErrUnavailable, a.body, err)
	}
	return st, true, nil
}

// errRunLost means the function's instance no longer knows the run.
var errRunLost = errors.New("the run is not known to the function's instance")

// wait holds a wait request for run id until it ends and returns its exit
// status. A request the platform cuts (its timeout, a dropped
// connection) is made again.
func (in *invoker) wait(ctx context.Context, base, id string) (gantry.ExitStatus, error) {
	a, err := in.call(ctx, http.MethodPost, base, runner.PathWait, runner.Control{ID: id})
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	if a.code == http.StatusNotFound {
		return gantry.ExitStatus{}, errRunLost
	}
	return exitOf(a)
}

// exitOf reads the exit status from a runner's answer to a run or wait.
func exitOf(a *answer) (gantry.ExitStatus, error) {
	if a.code != http.StatusOK {
		return gantry.ExitStatus{}, fmt.Errorf("%w: %s", gantry.ErrUnavailable, a)
	}
	code, err := strconv.Atoi(a.header.Get(runner.HeaderExitCode))
	if err != nil {
		return gantry.ExitStatus{}, fmt.Errorf("%w: the runner's answer has no exit code: %s", gantry.ErrUnavailable, a)
	}
	return gantry.ExitStatus{ExitCode: code, Signal: a.header.Get(runner.HeaderSignal), Error: a.header.Get(runner.HeaderError)}, nil
}

// statusExit is the exit status a finished run's Status records.
func statusExit(st runner.Status) gantry.ExitStatus {
	return gantry.ExitStatus{ExitCode: st.ExitCode, Signal: st.Signal, Error: st.Error}
}
