package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
)

// DefaultWaitTimeout bounds a wait strategy given no WithTimeout.
const DefaultWaitTimeout = time.Minute

// defaultPollInterval is the pause between two attempts of a polling
// strategy given no WithPollInterval.
const defaultPollInterval = 100 * time.Millisecond

// stopCheckEvery spaces the Inspects that tell whether a container a
// polling strategy waits on has stopped: on a cloud backend each is an
// API call, which the poll interval alone would spend too fast.
const stopCheckEvery = time.Second

// attemptTimeout bounds one attempt (an HTTP request, a dial, an exec), so
// that one that hangs is retried rather than eating the whole timeout.
const attemptTimeout = 10 * time.Second

// WaitStrategy tells when a started container is ready for a test to use,
// as testcontainers-go's wait strategies do. The For functions make them;
// ForAll combines them. Every strategy but ForExit gives up with
// ErrStopped once the container has stopped running (the polling ones
// look at most once a second), rather than wait out its timeout.
type WaitStrategy interface {
	// WaitUntilReady returns nil once container c, started on rt, is
	// ready; otherwise a *WaitError saying what it waited for, what it
	// saw last and what the container wrote last.
	WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error
	// String says what the strategy waits for, as its errors name it.
	String() string
}

// WaitError reports a container that a wait strategy did not find ready.
type WaitError struct {
	// ID and Name are the container's.
	ID   string
	Name string
	// Strategy describes the strategy that was not satisfied, and Within
	// those of the ForAll strategies it was part of, outermost first.
	Strategy string
	Within   []string
	// Seen is what the strategy saw last (an HTTP status, a dial error,
	// an exit code), or empty.
	Seen string
	// Logs holds the container's last lines, oldest first.
	Logs []gantry.LogEntry
	// Err is why the wait ended: a timeout (errors.Is
	// context.DeadlineExceeded), ErrStopped, or what made the strategy
	// give up (gantry.ErrNotSupported, say).
	Err error
}

// Error names the container and the strategy, says why the wait ended and
// what was seen last, and quotes the container's last lines.
func (e *WaitError) Error() string {
	var b strings.Builder
	if e.Name != "" {
		fmt.Fprintf(&b, "runtimetest: container %s (%s)", e.Name, shortID(e.ID))
	} else {
		fmt.Fprintf(&b, "runtimetest: container %s", shortID(e.ID))
	}
	fmt.Fprintf(&b, " not ready: waiting for %s", e.Strategy)
	for i := len(e.Within) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, ", part of %s", e.Within[i])
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Seen != "" {
		fmt.Fprintf(&b, "; last saw: %s", e.Seen)
	}
	if len(e.Logs) == 0 {
		b.WriteString("; it wrote no lines")
	} else {
		fmt.Fprintf(&b, "; its last %d lines: %s", len(e.Logs), formatEntries(e.Logs))
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *WaitError) Unwrap() error { return e.Err }

// waitTimeoutError is the cause a strategy's timeout gives its context,
// so that the error says how long was waited rather than a bare "context
// deadline exceeded".
type waitTimeoutError struct {
	d time.Duration
	// whole marks the timeout of a ForAll, as opposed to a strategy's own.
	whole bool
}

func (e *waitTimeoutError) Error() string {
	if e.whole {
		return fmt.Sprintf("timed out after %v, the timeout of all the strategies together", e.d)
	}
	return fmt.Sprintf("timed out after %v", e.d)
}

func (e *waitTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// waitTiming holds the timeout and poll interval every strategy takes.
type waitTiming struct {
	timeout  time.Duration
	interval time.Duration
}

// bound returns ctx bounded by the timeout (DefaultWaitTimeout when unset).
func (tm waitTiming) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	d := tm.timeout
	if d <= 0 {
		d = DefaultWaitTimeout
	}
	return context.WithTimeoutCause(ctx, d, &waitTimeoutError{d: d})
}

func (tm waitTiming) pause() time.Duration {
	if tm.interval <= 0 {
		return defaultPollInterval
	}
	return tm.interval
}

// newWaitError builds the *WaitError for container c, reading its last lines
// with a context of its own, since ctx has often ended.
func newWaitError(ctx context.Context, rt gantry.Runtime, c *gantry.Container, strategy, seen string, err error) *WaitError {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	es, lerr := readLogs(lctx, rt, c.ID, gantry.LogsOptions{Tail: lastKept})
	if lerr != nil {
		es = nil
	}
	return &WaitError{ID: c.ID, Name: c.Name, Strategy: strategy, Seen: seen, Logs: es, Err: err}
}

// readyProbe is one attempt of a polling strategy: whether the container
// is ready, else what it saw; an error ends the wait at once. An attempt
// that fails with ErrNotFound is seen, not an error: a backend may mean a
// port nothing listens on, and a container that is gone is caught by the
// Inspects between attempts.
type readyProbe func(ctx context.Context) (ready bool, seen string, err error)

// pollReady runs p until it reports ready, fails for good, the container
// stops running (ErrStopped) or ctx ends. It returns what p saw last.
func pollReady(ctx context.Context, rt gantry.Runtime, id string, interval time.Duration, p readyProbe) (string, error) {
	var seen string
	var checked time.Time
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ready, s, err := p(actx)
		cancel()
		if ready {
			return "", nil
		}
		// An attempt cut short by the end of ctx says less than the one
		// before it.
		if s != "" && (ctx.Err() == nil || seen == "") {
			seen = s
		}
		if err != nil {
			return seen, err
		}
		if ctx.Err() != nil {
			return seen, context.Cause(ctx)
		}
		if time.Since(checked) >= stopCheckEvery {
			checked = time.Now()
			c, err := rt.Inspect(ctx, id)
			if err != nil {
				return seen, causeOr(ctx, err)
			}
			if !c.State.Running {
				return seen, stoppedError(c.State)
			}
		}
		select {
		case <-ctx.Done():
			return seen, context.Cause(ctx)
		case <-time.After(interval):
		}
	}
}

// stoppedError is ErrStopped with the exit status st shows.
func stoppedError(st gantry.State) error {
	if st.Signal != "" {
		return fmt.Errorf("%w with exit code %d (%s)", ErrStopped, st.ExitCode, st.Signal)
	}
	return fmt.Errorf("%w with exit code %d", ErrStopped, st.ExitCode)
}

// LogStrategy waits for log lines; ForLog makes one.
type LogStrategy struct {
	substr string
	n      int
	waitTiming
}

// ForLog waits until the container has written a line (to either stream)
// containing substr. It follows the logs where the backend can, and polls
// them (every poll interval) where it cannot. A container that stops
// first fails the wait at once.
func ForLog(substr string) *LogStrategy { return &LogStrategy{substr: substr, n: 1} }

// WithOccurrence waits for n such lines instead of one.
func (s *LogStrategy) WithOccurrence(n int) *LogStrategy {
	c := *s
	c.n = max(n, 1)
	return &c
}

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *LogStrategy) WithTimeout(d time.Duration) *LogStrategy {
	c := *s
	c.timeout = d
	return &c
}

// WithPollInterval sets the pause between two readings of the logs of a
// backend that cannot follow them.
func (s *LogStrategy) WithPollInterval(d time.Duration) *LogStrategy {
	c := *s
	c.interval = d
	return &c
}

func (s *LogStrategy) String() string {
	if s.n == 1 {
		return fmt.Sprintf("a log line containing %q", s.substr)
	}
	return fmt.Sprintf("%d log lines containing %q", s.n, s.substr)
}

// WaitUntilReady waits for the lines.
func (s *LogStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var got int
	var err error
	if rt.Capabilities().Supported(gantry.FeatureLogsFollow) {
		got, err = s.follow(ctx, rt, c.ID)
	} else {
		got, err = s.poll(ctx, rt, c.ID)
	}
	if err == nil {
		return nil
	}
	return newWaitError(ctx, rt, c, s.String(), fmt.Sprintf("%d of %d such lines", got, s.n), err)
}

// follow counts matching lines as they come. A follow ends with the run
// it follows; a container that is still running then (its restart policy
// started it again) is followed again, from its first line.
func (s *LogStrategy) follow(ctx context.Context, rt gantry.Runtime, id string) (int, error) {
	for {
		got, err := s.followRun(ctx, rt, id)
		if err != nil || got == s.n {
			return got, err
		}
		c, err := rt.Inspect(ctx, id)
		if err != nil {
			return got, causeOr(ctx, err)
		}
		if !c.State.Running {
			return got, stoppedError(c.State)
		}
		select {
		case <-ctx.Done():
			return got, context.Cause(ctx)
		case <-time.After(s.pause()):
		}
	}
}

// followRun follows the logs until s.n matching lines have come or the
// follow ends, and returns how many came.
func (s *LogStrategy) followRun(ctx context.Context, rt gantry.Runtime, id string) (int, error) {
	r, err := rt.Logs(ctx, id, gantry.LogsOptions{Follow: true})
	if err != nil {
		return 0, causeOr(ctx, err)
	}
	defer r.Close()
	// Closing the reader when ctx ends guards against a backend that
	// would leave Next blocked.
	defer context.AfterFunc(ctx, func() { r.Close() })()
	got := 0
	for {
		e, err := r.Next()
		switch {
		case ctx.Err() != nil:
			return got, context.Cause(ctx)
		case errors.Is(err, io.EOF):
			return got, nil
		case err != nil:
			return got, err
		case strings.Contains(e.Line, s.substr):
			if got++; got == s.n {
				return got, nil
			}
		}
	}
}

// poll reads the whole log every interval and counts.
func (s *LogStrategy) poll(ctx context.Context, rt gantry.Runtime, id string) (int, error) {
	got := 0
	for {
		// Whether it was running is read before the logs, so a container
		// seen stopped has no lines later than the ones read next.
		c, err := rt.Inspect(ctx, id)
		if err != nil {
			return got, causeOr(ctx, err)
		}
		es, err := readLogs(ctx, rt, id, gantry.LogsOptions{})
		if err != nil {
			return got, causeOr(ctx, err)
		}
		got = 0
		for _, e := range es {
			if strings.Contains(e.Line, s.substr) {
				got++
			}
		}
		if got >= s.n {
			return got, nil
		}
		if !c.State.Running {
			return got, stoppedError(c.State)
		}
		select {
		case <-ctx.Done():
			return got, context.Cause(ctx)
		case <-time.After(s.pause()):
		}
	}
}

// causeOr is ctx's cause once ctx has ended, else err.
func causeOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// maxHTTPBody bounds how much of an answer's body ForHTTP reads.
const maxHTTPBody = 1 << 20

// HTTPStrategy waits for an HTTP answer; ForHTTP makes one.
type HTTPStrategy struct {
	port       int
	path       string
	status     func(int) bool
	statusText string
	body       func([]byte) bool
	bodyText   string
	viaURL     bool
	waitTiming
}

// ForHTTP waits until an HTTP GET of path on the container's TCP port
// answers with a 2xx status (WithStatus and WithStatusMatcher change
// that; redirects are not followed). The request reaches the port through
// gantry.DialPort where the backend can dial ports, and through the
// container's URL (Container.URL) where it cannot; ViaURL asks for the
// URL.
func ForHTTP(port int, path string) *HTTPStrategy {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return &HTTPStrategy{
		port:       port,
		path:       path,
		status:     func(code int) bool { return code >= 200 && code < 300 },
		statusText: "a 2xx status",
	}
}

// WithStatus waits for exactly this status.
func (s *HTTPStrategy) WithStatus(code int) *HTTPStrategy {
	c := *s
	c.status = func(got int) bool { return got == code }
	c.statusText = "status " + strconv.Itoa(code)
	return &c
}

// WithStatusMatcher waits for a status that match accepts.
func (s *HTTPStrategy) WithStatusMatcher(match func(status int) bool) *HTTPStrategy {
	c := *s
	c.status = match
	c.statusText = "a status the matcher accepts"
	return &c
}

// WithBodyContaining also requires the answer's body to contain substr.
func (s *HTTPStrategy) WithBodyContaining(substr string) *HTTPStrategy {
	c := *s
	c.body = func(b []byte) bool { return bytes.Contains(b, []byte(substr)) }
	c.bodyText = fmt.Sprintf("a body containing %q", substr)
	return &c
}

// WithBodyMatcher also requires match to accept the answer's body (its
// first megabyte).
func (s *HTTPStrategy) WithBodyMatcher(match func(body []byte) bool) *HTTPStrategy {
	c := *s
	c.body = match
	c.bodyText = "a body the matcher accepts"
	return &c
}

// ViaURL sends the request to the container's URL, which a backend that
// serves containers publishes its port at, instead of dialling the port.
func (s *HTTPStrategy) ViaURL() *HTTPStrategy {
	c := *s
	c.viaURL = true
	return &c
}

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *HTTPStrategy) WithTimeout(d time.Duration) *HTTPStrategy {
	c := *s
	c.timeout = d
	return &c
}

// WithPollInterval sets the pause between two requests.
func (s *HTTPStrategy) WithPollInterval(d time.Duration) *HTTPStrategy {
	c := *s
	c.interval = d
	return &c
}

func (s *HTTPStrategy) String() string {
	where := fmt.Sprintf("on port %d", s.port)
	if s.viaURL {
		where = "at the container's URL"
	}
	d := fmt.Sprintf("HTTP GET %s %s answering %s", s.path, where, s.statusText)
	if s.body != nil {
		d += " with " + s.bodyText
	}
	return d
}

// WaitUntilReady sends the request until it is answered as wanted.
func (s *HTTPStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	client, url, err := s.client(ctx, rt, c)
	if err != nil {
		return newWaitError(ctx, rt, c, s.String(), "", err)
	}
	defer client.CloseIdleConnections()
	seen, err := pollReady(ctx, rt, c.ID, s.pause(), func(ctx context.Context) (bool, string, error) {
		return s.attempt(ctx, client, url)
	})
	if err == nil {
		return nil
	}
	return newWaitError(ctx, rt, c, s.String(), seen, err)
}

// client returns the client and URL the requests use: a client that
// dials the port through rt, or the container's URL.
func (s *HTTPStrategy) client(ctx context.Context, rt gantry.Runtime, c *gantry.Container) (*http.Client, string, error) {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, dialer := rt.(gantry.PortDialer)
	if !s.viaURL && dialer && rt.Capabilities().Supported(gantry.FeaturePortForward) {
		id, port := c.ID, s.port
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return gantry.DialPort(ctx, rt, id, port)
			},
			DisableKeepAlives: true,
		}
		return &http.Client{Transport: tr, CheckRedirect: noRedirect}, fmt.Sprintf("http://localhost:%d%s", port, s.path), nil
	}
	url := c.URL
	if url == "" {
		fresh, err := rt.Inspect(ctx, c.ID)
		if err != nil {
			return nil, "", err
		}
		url = fresh.URL
	}
	if url == "" {
		if s.viaURL {
			return nil, "", errors.New("the container has no URL")
		}
		note := rt.Capabilities()[gantry.FeaturePortForward].Note
		return nil, "", fmt.Errorf("port %d is out of reach: the backend cannot dial ports (%w: %s) and the container has no URL", s.port, gantry.ErrNotSupported, note)
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}, strings.TrimSuffix(url, "/") + s.path, nil
}

// attempt sends one request.
func (s *HTTPStrategy) attempt(ctx context.Context, client *http.Client, url string) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, gantry.ErrNotSupported) {
			return false, err.Error(), err
		}
		return false, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	seen := fmt.Sprintf("status %d, body %q", resp.StatusCode, bodySnippet(body))
	if err != nil {
		return false, fmt.Sprintf("status %d, then reading the body: %v", resp.StatusCode, err), nil
	}
	if !s.status(resp.StatusCode) {
		return false, seen, nil
	}
	if s.body != nil && !s.body(body) {
		return false, seen, nil
	}
	return true, "", nil
}

// bodySnippet is the start of b, short enough for an error message.
func bodySnippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// PortStrategy waits for a listening port; ForListeningPort makes one.
type PortStrategy struct {
	port int
	waitTiming
}

// ForListeningPort waits until a TCP connection to the container's port,
// through gantry.DialPort, succeeds and is not closed at once (as a proxy
// in front of a port nothing listens on would close it).
func ForListeningPort(port int) *PortStrategy { return &PortStrategy{port: port} }

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *PortStrategy) WithTimeout(d time.Duration) *PortStrategy {
	c := *s
	c.timeout = d
	return &c
}

// WithPollInterval sets the pause between two dials.
func (s *PortStrategy) WithPollInterval(d time.Duration) *PortStrategy {
	c := *s
	c.interval = d
	return &c
}

func (s *PortStrategy) String() string {
	return fmt.Sprintf("TCP port %d accepting connections", s.port)
}

// dialSettle is how long a new connection must stay open to count.
const dialSettle = 50 * time.Millisecond

// WaitUntilReady dials until a connection holds.
func (s *PortStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	seen, err := pollReady(ctx, rt, c.ID, s.pause(), func(ctx context.Context) (bool, string, error) {
		conn, err := gantry.DialPort(ctx, rt, c.ID, s.port)
		if err != nil {
			if errors.Is(err, gantry.ErrNotSupported) || errors.Is(err, gantry.ErrInvalidArgument) {
				return false, "", err
			}
			return false, err.Error(), nil
		}
		defer conn.Close()
		if conn.SetReadDeadline(time.Now().Add(dialSettle)) != nil {
			return true, "", nil
		}
		var b [1]byte
		n, err := conn.Read(b[:])
		var ne net.Error
		if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			return true, "", nil
		}
		return false, "a connection that ended as soon as it was made: " + err.Error(), nil
	})
	if err == nil {
		return nil
	}
	return newWaitError(ctx, rt, c, s.String(), seen, err)
}

// HealthStrategy waits for a healthy container; ForHealthy makes one.
type HealthStrategy struct{ waitTiming }

// ForHealthy waits until the container's State.Health reports
// gantry.HealthHealthy. A container without a Healthcheck fails at once.
func ForHealthy() *HealthStrategy { return &HealthStrategy{} }

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *HealthStrategy) WithTimeout(d time.Duration) *HealthStrategy {
	c := *s
	c.timeout = d
	return &c
}

// WithPollInterval sets the pause between two Inspects.
func (s *HealthStrategy) WithPollInterval(d time.Duration) *HealthStrategy {
	c := *s
	c.interval = d
	return &c
}

func (s *HealthStrategy) String() string {
	return fmt.Sprintf("health status %q", gantry.HealthHealthy)
}

// WaitUntilReady inspects the container until it is healthy.
func (s *HealthStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	seen, err := pollReady(ctx, rt, c.ID, s.pause(), func(ctx context.Context) (bool, string, error) {
		got, err := rt.Inspect(ctx, c.ID)
		if err != nil {
			return false, "", causeOr(ctx, err)
		}
		if hc := got.Spec.Healthcheck; hc == nil || len(hc.Test) > 0 && hc.Test[0] == "NONE" {
			return false, "", errors.New("the container has no healthcheck")
		}
		h := got.State.Health
		if h == nil {
			return false, "no health reported", nil
		}
		if h.Status == gantry.HealthHealthy {
			return true, "", nil
		}
		return false, fmt.Sprintf("health %s, failing streak %d", h.Status, h.FailingStreak), nil
	})
	if err == nil {
		return nil
	}
	return newWaitError(ctx, rt, c, s.String(), seen, err)
}

// ExitStrategy waits for an exit code; ForExit makes one.
type ExitStrategy struct {
	code int
	waitTiming
}

// ForExit waits until the container stops running and requires its exit
// code to be code: another code fails the wait at once.
func ForExit(code int) *ExitStrategy { return &ExitStrategy{code: code} }

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *ExitStrategy) WithTimeout(d time.Duration) *ExitStrategy {
	c := *s
	c.timeout = d
	return &c
}

func (s *ExitStrategy) String() string { return fmt.Sprintf("an exit with code %d", s.code) }

// WaitUntilReady waits for the exit and compares.
func (s *ExitStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		return newWaitError(ctx, rt, c, s.String(), "", causeOr(ctx, err))
	}
	if st.ExitCode == s.code {
		return nil
	}
	seen := fmt.Sprintf("exit code %d", st.ExitCode)
	if st.Signal != "" {
		seen += " (" + st.Signal + ")"
	}
	return newWaitError(ctx, rt, c, s.String(), seen, errors.New("the container exited with another code"))
}

// ExecStrategy waits for a command to succeed; ForExec makes one.
type ExecStrategy struct {
	cmd []string
	waitTiming
}

// ForExec waits until cmd, run in the container as by Exec, exits 0.
func ForExec(cmd ...string) *ExecStrategy { return &ExecStrategy{cmd: cmd} }

// WithTimeout bounds the wait; zero means DefaultWaitTimeout.
func (s *ExecStrategy) WithTimeout(d time.Duration) *ExecStrategy {
	c := *s
	c.timeout = d
	return &c
}

// WithPollInterval sets the pause between two runs of the command.
func (s *ExecStrategy) WithPollInterval(d time.Duration) *ExecStrategy {
	c := *s
	c.interval = d
	return &c
}

func (s *ExecStrategy) String() string { return fmt.Sprintf("exec %q exiting 0", s.cmd) }

// WaitUntilReady runs the command until it exits 0.
func (s *ExecStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(s.cmd) == 0 {
		return newWaitError(ctx, rt, c, s.String(), "", fmt.Errorf("%w: ForExec needs a command", gantry.ErrInvalidArgument))
	}
	seen, err := pollReady(ctx, rt, c.ID, s.pause(), func(ctx context.Context) (bool, string, error) {
		var out execTail
		res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: s.cmd, Stdout: &out, Stderr: &out})
		if err != nil {
			if errors.Is(err, gantry.ErrNotSupported) {
				return false, "", err
			}
			return false, err.Error(), nil
		}
		if res.ExitCode == 0 {
			return true, "", nil
		}
		return false, fmt.Sprintf("exit code %d, output %q", res.ExitCode, out.String()), nil
	})
	if err == nil {
		return nil
	}
	return newWaitError(ctx, rt, c, s.String(), seen, err)
}

// execTail keeps the last bytes written to it; both of an exec's
// streams may write at once.
type execTail struct {
	mu sync.Mutex
	b  []byte
}

const execTailKept = 200

func (t *execTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > execTailKept {
		t.b = append(t.b[:0], t.b[len(t.b)-execTailKept:]...)
	}
	return len(p), nil
}

func (t *execTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// AllStrategy waits for several strategies; ForAll makes one.
type AllStrategy struct {
	strategies []WaitStrategy
	timeout    time.Duration
}

// ForAll waits for each strategy in turn; the first that fails fails the
// whole, and its error says which. Each keeps its own timeout; WithTimeout
// bounds them all together.
func ForAll(strategies ...WaitStrategy) *AllStrategy {
	return &AllStrategy{strategies: strategies}
}

// WithTimeout bounds the whole wait; zero means no bound beyond each
// strategy's own.
func (s *AllStrategy) WithTimeout(d time.Duration) *AllStrategy {
	c := *s
	c.timeout = d
	return &c
}

func (s *AllStrategy) String() string {
	ds := make([]string, len(s.strategies))
	for i, w := range s.strategies {
		ds[i] = w.String()
	}
	return "all of [" + strings.Join(ds, "; ") + "]"
}

// WaitUntilReady waits for each strategy in turn.
func (s *AllStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, &waitTimeoutError{d: s.timeout, whole: true})
		defer cancel()
	}
	for _, w := range s.strategies {
		err := w.WaitUntilReady(ctx, rt, c)
		if err == nil {
			continue
		}
		var we *WaitError
		if !errors.As(err, &we) {
			we = newWaitError(ctx, rt, c, w.String(), "", err)
		}
		we.Within = append([]string{s.String()}, we.Within...)
		return we
	}
	return nil
}
