package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/gantryhq/gantry"
	"go.uber.org/zap"
)

// DialOptions configures Dial.
type DialOptions struct {
	// HTTPClient makes the WebSocket handshake; set its transport's TLS
	// configuration to trust the agent's certificate. Nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// HTTPHeader is added to the handshake request (for example an
	// identity token for Cloud Run's front end).
	HTTPHeader http.Header
	// Insecure allows a plain ws:// URL to a host that is not a loopback
	// address. The secret never crosses the wire either way, but session
	// data would travel in the clear.
	Insecure bool
	// Logger receives diagnostics; nil means none.
	Logger *zap.Logger
}

// Dial connects to an agent in forward mode (the agent listens; see
// Agent.ServeHTTP) and authenticates both ways with secret. rawURL is a
// ws:// or wss:// URL; it is bound into the handshake, so the agent must
// serve it (Config.Endpoints, or by default its own loopback address). A
// wrong secret on either side, or a URL the agent does not serve, is an
// error wrapping gantry.ErrPermissionDenied; an unreachable agent one
// wrapping gantry.ErrUnavailable.
func Dial(ctx context.Context, rawURL string, secret []byte, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("agent: dial %s: %w: secret of %d bytes, need at least %d", rawURL, gantry.ErrInvalidArgument, len(secret), MinSecretLen)
	}
	if err := checkSecure(rawURL, o.Insecure); err != nil {
		return nil, fmt.Errorf("agent: dial %s: %w", rawURL, err)
	}
	endpoint, err := endpointOf(rawURL)
	if err != nil {
		return nil, fmt.Errorf("agent: dial %s: %w", rawURL, err)
	}
	c, raw, _, err := dialWebSocket(ctx, rawURL, o.HTTPClient, o.HTTPHeader)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("agent: dial %s: %w: %v", rawURL, gantry.ErrUnavailable, err)
	}
	if c.Subprotocol() != subprotocol {
		c.CloseNow()
		return nil, fmt.Errorf("agent: dial %s: %w: the server is not a gantry agent", rawURL, gantry.ErrUnavailable)
	}
	t := newWSTransport(c, raw)
	_, err = controllerHandshake(ctx, t, func(string) []byte { return secret }, modeForward, binding{dialled: endpoint})
	if err != nil {
		t.close(true)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("agent: dial %s: %w: authentication failed (wrong secret, not this container's agent, or an agent not configured to be reached at %s): %v", rawURL, gantry.ErrPermissionDenied, endpoint, err)
	}
	cl := newClient(t, "", o.Logger)
	go cl.run()
	return cl, nil
}

// checkSecure refuses plain WebSocket URLs that leave the machine unless
// the caller insists.
func checkSecure(rawURL string, insecure bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", gantry.ErrInvalidArgument, err)
	}
	switch u.Scheme {
	case "wss", "https":
		return nil
	case "ws", "http":
		if insecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: %s is not a loopback address; use wss:// (or set Insecure)", gantry.ErrInvalidArgument, u.Hostname())
	}
	return fmt.Errorf("%w: URL scheme %q, want ws or wss", gantry.ErrInvalidArgument, u.Scheme)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client is an authenticated connection to one container's agent. Many
// execs, attaches and forwards may run on it at once. Its methods are
// safe for concurrent use.
type Client struct {
	m  *mux
	id string

	mu       sync.Mutex
	next     uint32
	sessions map[uint32]*clientSession
}

func newClient(t transport, id string, log *zap.Logger) *Client {
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{m: newMux(t, log), id: id, sessions: make(map[uint32]*clientSession)}
}

// ID is the container ID the agent announced (reverse mode), or empty.
func (c *Client) ID() string { return c.id }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.m.done() }

// Close ends the connection; the agent signals the processes of its
// sessions.
func (c *Client) Close() error {
	c.m.shutdown(errors.New("client closed"), false)
	return nil
}

func (c *Client) run() {
	c.m.run(c.handle, c.data)
	c.mu.Lock()
	list := make([]*clientSession, 0, len(c.sessions))
	for _, s := range c.sessions {
		list = append(list, s)
	}
	c.sessions = make(map[uint32]*clientSession)
	c.mu.Unlock()
	for _, s := range list {
		s.end(sessionEnd{err: fmt.Errorf("agent: %w: connection to the agent lost: %v", gantry.ErrUnavailable, c.m.cause())})
	}
}

func (c *Client) lookup(id uint32) *clientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

func (c *Client) remove(id uint32) *clientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[id]
	delete(c.sessions, id)
	return s
}

func (c *Client) data(h header, r io.Reader) error {
	// The direction is checked before the session: input sent to the
	// controller is a violation whether or not its session is live.
	if h.typ == frameStdin {
		return protoErr("STDIN frame sent to the controller")
	}
	s := c.lookup(h.session)
	if s == nil {
		_, err := io.CopyN(io.Discard, r, int64(h.length))
		return shortPayload(err)
	}
	if !s.running {
		return protoErr("output before STARTED for session %d", h.session)
	}
	if s.forward && h.typ == frameStderr {
		return protoErr("STDERR on forward session %d", h.session)
	}
	if h.typ == frameStdout {
		return s.out[0].receive(r, int(h.length))
	}
	return s.out[1].receive(r, int(h.length))
}

func (c *Client) handle(f *frame) error {
	switch f.typ {
	case frameStarted, frameCredit, frameExit, frameError, frameStdoutClose:
	default:
		return protoErr("frame 0x%02x sent to the controller", f.typ)
	}
	if f.typ == frameCredit && f.stream != streamStdin {
		return protoErr("CREDIT for the controller's own output stream %d", f.stream)
	}
	s := c.lookup(f.session)
	if s == nil {
		return nil
	}
	// A session answers OPEN with STARTED or ERROR; anything else first
	// would let a peer end a session the caller still treats as starting.
	if !s.running && f.typ != frameStarted && f.typ != frameError {
		return protoErr("frame 0x%02x before STARTED for session %d", f.typ, f.session)
	}
	switch f.typ {
	case frameStarted:
		if s.running {
			return protoErr("second STARTED for session %d", f.session)
		}
		s.running = true
		s.stdin.open(int(f.amount))
		close(s.started)
	case frameCredit:
		return s.stdin.grant(int(f.amount))
	case frameStdoutClose:
		if !s.forward {
			return protoErr("STDOUT_CLOSE on session %d, which is not a forward", f.session)
		}
		s.out[0].closeWrite()
	case frameExit:
		c.remove(f.session)
		s.out[0].closeWrite()
		s.out[1].closeWrite()
		r := gantry.ExecResult{ExitCode: int(f.code)}
		if f.killSig != 0 {
			r.Signal = gantry.SignalName(int(f.killSig))
		}
		s.end(sessionEnd{result: r})
	case frameError:
		c.remove(f.session)
		s.end(sessionEnd{err: fmt.Errorf("agent: %s: %w: %s", s.what, kindSentinel(f.kind), f.text)})
	}
	return nil
}

// sessionEnd is how a session ended: an exit status or an error.
type sessionEnd struct {
	result gantry.ExecResult
	err    error
}

// clientSession is the controller's side of one session.
type clientSession struct {
	c       *Client
	id      uint32
	what    string // "exec \"sh\"", "attach" or "forward", for errors
	forward bool
	out     [2]*inbox
	started chan struct{}
	running bool    // STARTED has arrived; only the read loop uses it
	stdin   *credit // window 0 until STARTED opens it; failed when the session ends

	endOnce sync.Once
	ended   chan struct{}
	how     sessionEnd
}

func (s *clientSession) end(e sessionEnd) {
	s.endOnce.Do(func() {
		s.how = e
		switch {
		case e.err != nil && s.forward:
			// As a TCP socket's reader gets what arrived before the
			// connection broke.
			s.out[0].closeWithError(e.err)
		case e.err != nil:
			s.out[0].abort(e.err)
			s.out[1].abort(e.err)
		}
		// Input has nowhere to go once the session is over; a copyIn
		// waiting for credit that will never come returns.
		s.stdin.fail(errSessionOver)
		close(s.ended)
	})
}

// open registers a session and sends its OPEN frame.
func (c *Client) open(req *openRequest, what string) (*clientSession, error) {
	s := &clientSession{
		c:       c,
		what:    what,
		forward: req.Kind == "forward",
		out:     [2]*inbox{newInbox(int(req.Window)), newInbox(int(req.Window))},
		stdin:   newCredit(0),
		started: make(chan struct{}),
		ended:   make(chan struct{}),
	}
	c.mu.Lock()
	select {
	case <-c.m.done():
		c.mu.Unlock()
		return nil, fmt.Errorf("agent: %s: %w: connection to the agent is closed", what, gantry.ErrUnavailable)
	default:
	}
	for {
		c.next++
		if c.next != 0 && c.sessions[c.next] == nil {
			break
		}
	}
	s.id = c.next
	c.sessions[s.id] = s
	c.mu.Unlock()
	if err := c.m.send(&frame{header: header{typ: frameOpen, session: s.id}, open: req}); err != nil {
		c.remove(s.id)
		return nil, fmt.Errorf("agent: %s: %w: %v", what, gantry.ErrUnavailable, err)
	}
	return s, nil
}

// Session is a running exec started with Client.Start.
type Session struct {
	s      *clientSession
	parent context.Context
	cancel context.CancelFunc
	outs   sync.WaitGroup
	outErr error
	errMu  sync.Mutex
}

// Start starts an exec and returns once the process runs. cfg is checked
// with cfg.Validate first, and an empty program name is refused too; both
// are errors wrapping gantry.ErrInvalidArgument, and nothing is sent. A
// process that cannot be started is an error saying why, wrapping
// gantry.ErrNotFound, gantry.ErrPermissionDenied or
// gantry.ErrInvalidArgument. Output is copied to cfg.Stdout and cfg.Stderr
// and cfg.Stdin to the process until it exits. Cancelling ctx ends the
// session and signals the process.
func (c *Client) Start(ctx context.Context, cfg gantry.ExecConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: exec: %w", err)
	}
	what := fmt.Sprintf("exec %q", cfg.Cmd[0])
	req := &openRequest{
		Kind:   "exec",
		Cmd:    cfg.Cmd,
		Env:    cfg.Env,
		Dir:    cfg.WorkingDir,
		User:   cfg.User,
		TTY:    cfg.Tty,
		Stdin:  cfg.Stdin != nil,
		Window: defaultWindow,
	}
	if cfg.Tty && cfg.Resize != nil {
		select {
		case sz := <-cfg.Resize:
			req.Rows, req.Cols = sz.Rows, sz.Cols
		default:
		}
	}
	return c.startSession(ctx, req, what, cfg.Stdin, cfg.Stdout, cfg.Stderr, cfg.Resize)
}

func (c *Client) startSession(ctx context.Context, req *openRequest, what string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan gantry.TerminalSize) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := c.open(req, what)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	sess := &Session{s: s, parent: ctx, cancel: cancel}
	var writeMu sync.Mutex
	for i, w := range []io.Writer{stdout, stderr} {
		if w == nil {
			w = io.Discard
		}
		sess.outs.Go(func() { sess.copyOut(s.out[i], byte(i)+streamStdout, w, &writeMu) })
	}
	select {
	case <-s.started:
	case <-s.ended:
		// A quick process may have started and exited already (the read
		// loop refuses EXIT before STARTED); only an error means it never
		// ran. Input and resizes sent now find the session over and stop.
		if s.how.err != nil {
			sess.outs.Wait()
			cancel()
			return nil, s.how.err
		}
	case <-sctx.Done():
		sess.Close()
		sess.outs.Wait()
		return nil, ctx.Err()
	}
	if stdin != nil {
		go sess.copyIn(stdin)
	}
	if resize != nil {
		go sess.forwardResize(resize)
	}
	go func() {
		select {
		case <-sctx.Done():
			sess.Close()
		case <-s.ended:
		}
	}()
	return sess, nil
}

// copyOut writes one output stream to w and credits the agent as it goes.
// The two streams share a lock so a caller may pass one writer for both.
func (sess *Session) copyOut(in *inbox, stream byte, w io.Writer, mu *sync.Mutex) {
	s := sess.s
	for {
		p, err := in.peek()
		if err != nil {
			return
		}
		mu.Lock()
		_, werr := w.Write(p)
		mu.Unlock()
		if werr != nil {
			sess.errMu.Lock()
			if sess.outErr == nil {
				sess.outErr = fmt.Errorf("agent: %s: writing output: %w", s.what, werr)
			}
			sess.errMu.Unlock()
			sess.Close()
			return
		}
		if g := in.release(len(p)); g > 0 {
			if s.c.m.send(&frame{header: header{typ: frameCredit, session: s.id}, stream: stream, amount: uint32(g)}) != nil {
				return
			}
		}
	}
}

// copyIn sends the caller's input, within the agent's credit, and closes
// the process's input at io.EOF.
func (sess *Session) copyIn(r io.Reader) {
	s := sess.s
	buf := make([]byte, headerLen+32<<10)
	for {
		n, err := s.stdin.take(len(buf)-headerLen, nil, nil)
		if err != nil {
			return
		}
		m, rerr := r.Read(buf[headerLen : headerLen+n])
		if m < n {
			s.stdin.putBack(n - m)
		}
		if m > 0 {
			putHeader(buf, frameStdin, s.id, m)
			if s.c.m.write(buf[:headerLen+m]) != nil {
				return
			}
		}
		if rerr != nil {
			if sess.live() {
				s.c.m.send(&frame{header: header{typ: frameStdinClose, session: s.id}})
			}
			return
		}
	}
}

func (sess *Session) live() bool {
	select {
	case <-sess.s.ended:
		return false
	default:
		return true
	}
}

func (sess *Session) forwardResize(ch <-chan gantry.TerminalSize) {
	for {
		select {
		case sz, ok := <-ch:
			if !ok {
				return
			}
			if sz.Rows == 0 || sz.Cols == 0 {
				continue
			}
			if err := sess.s.c.m.send(&frame{header: header{typ: frameResize, session: sess.s.id}, rows: sz.Rows, cols: sz.Cols}); err != nil {
				return
			}
		case <-sess.s.ended:
			return
		}
	}
}

// Signal sends a signal ("SIGTERM", "TERM", "15") to the process.
func (sess *Session) Signal(sig string) error {
	n, err := gantry.ParseSignal(sig)
	if err != nil {
		return err
	}
	if !sess.live() {
		return fmt.Errorf("agent: %s: %w: the process has exited", sess.s.what, gantry.ErrConflict)
	}
	if err := sess.s.c.m.send(&frame{header: header{typ: frameSignal, session: sess.s.id}, signal: byte(n)}); err != nil {
		return fmt.Errorf("agent: %s: %w: %v", sess.s.what, gantry.ErrUnavailable, err)
	}
	return nil
}

// Wait waits for the process to exit and all its output to be written,
// and returns its exact exit code.
func (sess *Session) Wait() (gantry.ExecResult, error) {
	<-sess.s.ended
	sess.outs.Wait()
	sess.cancel()
	sess.errMu.Lock()
	outErr := sess.outErr
	sess.errMu.Unlock()
	if outErr != nil {
		return gantry.ExecResult{}, outErr
	}
	if sess.s.how.err != nil {
		if err := sess.parent.Err(); err != nil && errors.Is(sess.s.how.err, errSessionAbandoned) {
			return gantry.ExecResult{}, err
		}
		return gantry.ExecResult{}, sess.s.how.err
	}
	return sess.s.how.result, nil
}

var errSessionAbandoned = errors.New("session abandoned")

var errSessionOver = errors.New("session over")

// Close abandons the session: the agent signals the process (SIGHUP, then
// SIGKILL) and Wait returns an error.
func (sess *Session) Close() error {
	s := sess.s
	if s.c.remove(s.id) != nil {
		s.c.m.send(&frame{header: header{typ: frameClose, session: s.id}})
	}
	s.end(sessionEnd{err: fmt.Errorf("agent: %s: %w", s.what, errSessionAbandoned)})
	return nil
}

// Exec runs a command in the container and waits for it, as docker exec
// does: it returns the exact exit code once the process has exited and
// all its output has been written. Cancelling ctx signals the process and
// returns ctx's error.
func (c *Client) Exec(ctx context.Context, cfg gantry.ExecConfig) (gantry.ExecResult, error) {
	sess, err := c.Start(ctx, cfg)
	if err != nil {
		return gantry.ExecResult{}, err
	}
	return sess.Wait()
}

// Attach connects to the main command's standard streams, as docker
// attach does, until the main command exits (its exit status is returned)
// or ctx is cancelled (which only detaches). opts means what it means for
// gantry.Attacher: output written from now on goes to opts.Stdout and
// opts.Stderr (nil discards a stream), and opts.Stdin, when set, to the
// main command's input, which must have been opened (Config.OpenStdin).
//
// opts.Resize, when set, resizes the main command's terminal (one run
// with Config.Tty; without one the agent ignores resizes), the first
// value received setting its size. A main command that has already
// exited, waits to be restarted (Config.Restart) or has not been started
// (Config.Gate) is an error wrapping gantry.ErrConflict. As docker
// attach, an attach ends with the run it attached to, with that run's
// exit status, even when the restart policy starts another.
func (c *Client) Attach(ctx context.Context, opts gantry.AttachOptions) (gantry.ExecResult, error) {
	req := &openRequest{Kind: "attach", Stdin: opts.Stdin != nil, Window: defaultWindow}
	if opts.Resize != nil {
		select {
		case sz := <-opts.Resize:
			req.Rows, req.Cols = sz.Rows, sz.Cols
		default:
		}
	}
	sess, err := c.startSession(ctx, req, "attach", opts.Stdin, opts.Stdout, opts.Stderr, opts.Resize)
	if err != nil {
		return gantry.ExecResult{}, err
	}
	return sess.Wait()
}

// StartMain starts the main command of an agent that waits for it
// (gantry-agent -gate, Config.Gate) and returns once it runs, as docker
// start does for a created container. On an agent whose main command
// has started, or ended, it does nothing and returns nil. A main
// command that cannot be started is an error saying why, wrapping
// gantry.ErrNotFound or gantry.ErrPermissionDenied as Start's would;
// an agent too old to know StartMain is an error wrapping
// gantry.ErrNotSupported.
func (c *Client) StartMain(ctx context.Context) error {
	req := &openRequest{Kind: "start", Window: defaultWindow}
	sess, err := c.startSession(ctx, req, "start", nil, nil, nil, nil)
	if err != nil {
		return err
	}
	_, err = sess.Wait()
	return err
}

// Status returns the state of the agent's main command, as docker
// inspect reports a container's: its state, last exit, restart count,
// times and health. An agent too old to report it is an error wrapping
// gantry.ErrNotSupported.
func (c *Client) Status(ctx context.Context) (Status, error) {
	req := &openRequest{Kind: "status", Window: defaultWindow}
	var out bytes.Buffer
	sess, err := c.startSession(ctx, req, "status", nil, &out, nil, nil)
	if err != nil {
		return Status{}, err
	}
	if _, err := sess.Wait(); err != nil {
		return Status{}, err
	}
	var st Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return Status{}, fmt.Errorf("agent: status: %w: the agent's answer is not a status: %v", gantry.ErrUnavailable, err)
	}
	return st, nil
}
