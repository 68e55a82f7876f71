package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/health"
	"go.uber.org/zap"
)

// Config configures an Agent.
type Config struct {
	// Cmd is the container's main command. It must not be empty.
	Cmd []string
	// Env is the environment of the main command and the base of every
	// exec's environment; nil means the agent's own environment without
	// the GANTRY_AGENT_ variables.
	Env []string
	// Dir is the main command's working directory and the default one of
	// every exec; empty means the agent's.
	Dir string
	// Secret is the per-container secret peers must prove they know. It
	// must be at least MinSecretLen bytes unless PassThrough is set.
	Secret []byte
	// ID names the container to a Hub in reverse mode; it travels in the
	// clear before authentication.
	ID string
	// Endpoints are the URLs controllers dial to reach the agent in
	// forward mode, such as the service URL in front of it; a controller
	// that dialled any other URL is refused, so that a relay it was
	// tricked into dialling cannot pass its proof on to the agent (see
	// the package documentation). Empty means the agent's own loopback
	// address and port, dialled directly.
	Endpoints []string
	// Stdin, Stdout and Stderr are the main command's standard streams (for
	// the binary: the agent's own). Output is copied to them byte for byte
	// and to every attached session. Nil discards output and gives the
	// command /dev/null as input.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// OpenStdin gives the main command a pipe as standard input that
	// attached sessions write to, as docker run -i does; Stdin is then not
	// used.
	OpenStdin bool
	// StdinOnce closes the main command's standard input when the first
	// attached session closes its input.
	StdinOnce bool
	// Tty runs the main command in a new session with a pty as its
	// controlling terminal and its standard streams, as docker run -t
	// does. What it writes to the terminal goes to Stdout and attached
	// sessions as standard output; with OpenStdin, attached sessions'
	// input is written to the terminal (Stdin is not used), and RESIZE on
	// an attached session resizes it. The terminal starts at 0 rows and 0
	// columns, until an attached session sets a size.
	Tty bool
	// Record makes the agent count the lines it writes to Stdout and
	// Stderr and, once the main command has exited and both streams are
	// drained, write the log completeness record (see Record) to Stderr
	// as the last thing either stream gets. A Stdout or Stderr that is a
	// *LineCounter is counted as it is, so that a caller can write its
	// own messages through the same counter; anything written to it
	// after the record is discarded.
	Record bool
	// PassThrough hands *os.File streams to the main command unchanged and
	// serves no sessions: the agent is then only an init process. With
	// Tty or Record the streams still pass through the agent.
	PassThrough bool
	// Reap makes the agent reap every child, including orphans re-parented
	// to it. Set it only when the agent is PID 1 or a child subreaper and
	// nothing else in the process waits for children.
	Reap bool
	// Restart is the restart policy, Docker's: after the main command
	// exits the agent starts it again (a new process with the same Cmd,
	// Env and Dir; with Tty a new terminal) as docker run --restart does,
	// after Docker's delays (100 ms, doubling at each restart up to 1
	// minute, back to 100 ms after a run of 10 s or more). A main command
	// that was signalled through the agent (Signal, an attached session's
	// SIGNAL, or a signal the agent passed on from outside) is not
	// restarted, whatever its exit. A Stdin that is neither nil nor a
	// file is read by the first run only; later runs get /dev/null. The
	// zero value never restarts.
	Restart gantry.RestartPolicy
	// Gate makes the agent wait for a controller's StartMain (or
	// Agent.StartMain) before it starts the main command; until then its
	// state is StateCreated, execs and forwards work and attaching is a
	// conflict. Without it Start starts the main command.
	Gate bool
	// Healthcheck runs Docker's health monitor on each run of the main
	// command (see Status.Health); nil or {"NONE"} runs none. Probe
	// commands run as an exec with no input. An HTTPPath probe without a
	// Port asks the port in the PORT variable of the main command's
	// environment.
	Healthcheck *gantry.Healthcheck
	// Logger receives the agent's own diagnostics; nil means none.
	Logger *zap.Logger
}

// envPrefix marks the agent's own configuration variables, which are
// removed from every child's environment so the secret never leaks into
// the container's processes.
const envPrefix = "GANTRY_AGENT_"

// CleanEnv returns env without the agent's own GANTRY_AGENT_ variables.
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, envPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// drainGrace is how long output is still read after a process exits
// while nothing arrives; it ends sessions whose pipes a background
// grandchild keeps open, without losing anything already written.
const drainGrace = 200 * time.Millisecond

// killGrace is how long a session's process has to exit after SIGHUP when
// its connection drops, before SIGKILL. A variable so that tests need not
// wait for it.
var killGrace = 2 * time.Second

// exitGrace is how long after the main command exits the agent still
// delivers its output: long enough for a healthy attached client to take
// a full window and a full pipe over a modest link, and short next to the
// time a platform gives a stopping container (10 s on Cloud Run). Past
// it, an attached client that has not taken everything is given up on,
// and drainGrace later the main command's output is no longer read even
// if processes it left behind are still writing, so that neither can
// keep the agent, and the container, alive. A variable so that tests
// need not wait for it.
var exitGrace = 5 * time.Second

// maxSessions bounds the live sessions on one connection.
const maxSessions = 1024

// Agent runs a container's main command and serves exec and attach
// sessions into the container. Its methods are safe for concurrent use.
type Agent struct {
	cfg       Config
	endpoints []string // Config.Endpoints in endpoint form
	log       *zap.Logger
	sp        *spawner
	env       []string
	closed    chan struct{}
	exited    chan struct{} // the restart policy ended and the last run's output is drained
	status    gantry.ExecResult
	// first hands the supervisor the first run, once started (nil: the
	// main command never ran); startMu serializes StartMain with a
	// Signal that calls the start off.
	first   chan *mainRun
	startMu sync.Mutex

	// outc and errc count the lines of Stdout and Stderr with Record.
	outc, errc *LineCounter
	// stdinTaken: a Config.Stdin that is neither nil nor a file was
	// given to the first run; later runs get /dev/null.
	stdinTaken bool

	mu      sync.Mutex
	closing bool
	conns   map[*mux]struct{}
	// The state Status reports.
	state      string
	cur        *mainRun // the current or last run
	restarts   int
	stopped    bool          // signalled through the agent: no restart
	wake       chan struct{} // closed to call off a pending restart
	last       gantry.ExecResult
	startedAt  time.Time
	finishedAt time.Time
	health     *gantry.Health

	wg       sync.WaitGroup
	execs    sync.WaitGroup // one per exec'd process until it exits
	forwards sync.WaitGroup // one per forward until its socket is closed
}

// Start starts the main command and returns the agent that supervises it.
// A command that cannot be started is an error that says why
// (errors.Is(err, gantry.ErrNotFound) for a missing executable,
// gantry.ErrPermissionDenied for one that may not be run).
func Start(cfg Config) (*Agent, error) {
	if len(cfg.Cmd) == 0 || cfg.Cmd[0] == "" {
		return nil, fmt.Errorf("agent: %w: no main command", gantry.ErrInvalidArgument)
	}
	if !cfg.PassThrough && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("agent: %w: secret of %d bytes, need at least %d", gantry.ErrInvalidArgument, len(cfg.Secret), MinSecretLen)
	}
	if len(cfg.ID) > maxIDLen {
		return nil, fmt.Errorf("agent: %w: ID longer than %d bytes", gantry.ErrInvalidArgument, maxIDLen)
	}
	if cfg.Gate && cfg.PassThrough {
		return nil, fmt.Errorf("agent: %w: a gate needs sessions, which PassThrough does not serve", gantry.ErrInvalidArgument)
	}
	check := gantry.Spec{Image: "gantry-agent", Healthcheck: cfg.Healthcheck, RestartPolicy: cfg.Restart}
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	eps, err := endpoints(cfg.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{
		cfg:       cfg,
		endpoints: eps,
		log:       cfg.Logger,
		sp:        newSpawner(cfg.Reap),
		closed:    make(chan struct{}),
		exited:    make(chan struct{}),
		first:     make(chan *mainRun, 1),
		conns:     make(map[*mux]struct{}),
		state:     StateCreated,
	}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	a.env = cfg.Env
	if a.env == nil {
		a.env = CleanEnv(os.Environ())
	}
	if hc := cfg.Healthcheck; hc != nil && hc.HTTPPath != "" && hc.Port == 0 {
		if _, err := strconv.Atoi(envValue(a.env, "PORT")); err != nil {
			return nil, fmt.Errorf("agent: %w: an HTTPPath healthcheck needs a Port, or PORT in the environment", gantry.ErrInvalidArgument)
		}
	}
	if cfg.Record {
		a.outc, a.errc = counterFor(cfg.Stdout), counterFor(cfg.Stderr)
	}
	if !cfg.Gate {
		r, err := a.startRun()
		if err != nil {
			return nil, err
		}
		a.first <- r
	}
	go a.supervise()
	return a, nil
}

// startRun starts the main command with its streams wired for
// pass-through or for attach, and the goroutines that copy them, and
// makes it the current run.
func (a *Agent) startRun() (*mainRun, error) {
	var files [3]*os.File
	var closeAfter []*os.File
	var tees []func()
	r := &mainRun{a: a, attachers: make(map[*session]struct{}), finished: make(chan struct{})}
	r.cut, r.cutNow = context.WithCancel(context.Background())
	fail := func(err error) (*mainRun, error) {
		r.cutNow()
		for _, f := range closeAfter {
			f.Close()
		}
		return nil, err
	}

	stdout, stderr := a.cfg.Stdout, a.cfg.Stderr
	if a.cfg.Record {
		stdout, stderr = a.outc, a.errc
	}
	env := a.env
	attr := &os.ProcAttr{Dir: a.cfg.Dir}

	if a.cfg.Tty {
		master, slave, err := openPTY()
		if err != nil {
			return fail(fmt.Errorf("agent: allocating a pty: %w", err))
		}
		closeAfter = append(closeAfter, slave)
		files = [3]*os.File{slave, slave, slave}
		attr.Sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if envValue(env, "TERM") == "" {
			env = append(env[:len(env):len(env)], "TERM=xterm")
		}
		r.tty = master
		if a.cfg.OpenStdin {
			r.stdin = &ttyInput{master}
		}
		dst := orDiscard(stdout)
		tees = append(tees, func() { r.tee(master, dst, streamStdout) })
	} else {
		switch in := a.cfg.Stdin; {
		case a.cfg.OpenStdin && !a.cfg.PassThrough:
			pr, pw, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			files[0], r.stdin = pr, pw
			closeAfter = append(closeAfter, pr)
		case isFile(in):
			files[0] = in.(*os.File)
		case in == nil || a.stdinTaken:
			null, err := os.Open(os.DevNull)
			if err != nil {
				return fail(err)
			}
			files[0] = null
			closeAfter = append(closeAfter, null)
		default:
			pr, pw, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			files[0] = pr
			closeAfter = append(closeAfter, pr)
			a.stdinTaken = true
			go func() {
				io.Copy(pw, in)
				pw.Close()
			}()
		}

		for i, out := range []io.Writer{stdout, stderr} {
			if a.cfg.PassThrough && isFile(out) {
				files[1+i] = out.(*os.File)
				continue
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			growPipe(pw)
			files[1+i] = pw
			closeAfter = append(closeAfter, pw)
			stream := streamStdout + byte(i)
			dst := orDiscard(out)
			tees = append(tees, func() { r.tee(pr, dst, stream) })
		}
	}
	if r.tty != nil {
		// Until the tee owns it.
		closeAfter = append(closeAfter, r.tty)
	}

	path, serr := lookPath(a.cfg.Cmd[0], env)
	if serr != nil {
		return fail(startErr(serr))
	}
	if serr := checkDir(a.cfg.Dir); serr != nil {
		return fail(startErr(serr))
	}
	attr.Env, attr.Files = env, files[:]
	p, err := a.sp.start(path, a.cfg.Cmd, attr)
	if err != nil {
		return fail(startErr(classifyStart(a.cfg.Cmd[0], err)))
	}
	for _, f := range closeAfter {
		if f != r.tty {
			f.Close()
		}
	}
	r.p = p
	a.mu.Lock()
	a.cur = r
	a.state = StateRunning
	a.startedAt = time.Now()
	if health.Runs(a.cfg.Healthcheck) {
		// As Docker at every start: starting, the streak at 0.
		a.health = health.Start()
		go a.monitorHealth(r, *a.cfg.Healthcheck, a.startedAt)
	}
	a.mu.Unlock()

	var teeWG sync.WaitGroup
	for _, t := range tees {
		teeWG.Go(t)
	}
	go func() {
		<-p.done
		res := p.result()
		a.mu.Lock()
		r.result = res
		r.exited = true
		a.last = res
		a.finishedAt = time.Now()
		// Docker's monitor leaves a stopped container unhealthy, its
		// streak kept.
		health.Stop(a.health)
		a.mu.Unlock()
		cut := time.AfterFunc(exitGrace, r.cutNow)
		teeWG.Wait()
		cut.Stop()
		r.cutNow()
		r.ended()
	}()
	return r, nil
}

// counterFor returns w as a LineCounter: w itself when it is one.
func counterFor(w io.Writer) *LineCounter {
	if c, ok := w.(*LineCounter); ok && c != nil {
		return c
	}
	return NewLineCounter(orDiscard(w))
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// recordOf is the record of a main command that ended with r, without
// its counts.
func recordOf(r gantry.ExecResult) Record {
	sig := 0
	if r.Signal != "" {
		sig, _ = gantry.ParseSignal(r.Signal)
	}
	return Record{ExitCode: r.ExitCode, Signal: sig}
}

// exitCodeOf is the exit code a shell gives a command that could not be
// started: 127 when it was not found, 126 when it may not be run, and
// 125 (the agent's own failure) otherwise.
func exitCodeOf(err error) int {
	switch {
	case errors.Is(err, gantry.ErrNotFound):
		return 127
	case errors.Is(err, gantry.ErrPermissionDenied):
		return 126
	}
	return 125
}

func isFile(v any) bool {
	f, ok := v.(*os.File)
	return ok && f != nil
}

// startErr maps a startError onto the gantry sentinels.
func startErr(e *startError) error {
	return fmt.Errorf("agent: %w: %s", kindSentinel(e.kind), e.msg)
}

func kindSentinel(k errorKind) error {
	switch k {
	case errKindInvalidArgument:
		return gantry.ErrInvalidArgument
	case errKindNotFound:
		return gantry.ErrNotFound
	case errKindPermissionDenied:
		return gantry.ErrPermissionDenied
	case errKindConflict:
		return gantry.ErrConflict
	case errKindExhausted:
		return gantry.ErrResourceExhausted
	case errKindNotSupported:
		return gantry.ErrNotSupported
	}
	return errOther
}

var errOther = errors.New("failed")

// Exited is closed when the main command has exited, its restart
// policy will not start it again, and all its output has been
// delivered.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// Wait waits for the main command to exit for the last time (its restart
// policy starts it no more) and returns the exact exit code of that
// last run (128+N when signal N killed it).
func (a *Agent) Wait() gantry.ExecResult {
	<-a.exited
	return a.status
}

// Close stops serving: it ends every connection, which signals the
// processes of their exec sessions and closes the sockets of their
// forwards, and stops reverse-mode reconnects. It returns once those
// processes have exited, killed with SIGKILL if they outlast SIGHUP by
// killGrace (2 s), so that none outlives a caller that exits next, and
// every forward's socket is closed. It does not stop the main command.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return nil
	}
	a.closing = true
	close(a.closed)
	conns := make([]*mux, 0, len(a.conns))
	for m := range a.conns {
		conns = append(conns, m)
	}
	a.mu.Unlock()
	// At once, so that peers slow to answer the close cost closeGrace in
	// all rather than each.
	var closing sync.WaitGroup
	for _, m := range conns {
		closing.Go(func() { m.shutdown(errors.New("agent shutting down"), false) })
	}
	closing.Wait()
	a.wg.Wait()
	a.execs.Wait()
	a.forwards.Wait()
	return nil
}

// ServeHTTP accepts a forward-mode connection: a controller dials the
// agent with Dial and this handler upgrades it to a WebSocket,
// authenticates it and serves its sessions until it closes.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.cfg.PassThrough {
		http.Error(w, "this agent serves no sessions", http.StatusNotFound)
		return
	}
	c, raw := upgrade(w, r)
	if c == nil {
		return
	}
	serves := servesLoopback(r)
	if len(a.endpoints) > 0 {
		serves = servesListed(a.endpoints)
	}
	a.serve(r.Context(), newWSTransport(c, raw), modeForward, r.RemoteAddr, binding{serves: serves})
}

// serve authenticates one connection and runs its sessions. It returns
// whether the peer authenticated.
func (a *Agent) serve(ctx context.Context, t transport, mode byte, peer string, ep binding) bool {
	m := newMux(t, a.log)
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		t.close(false)
		return false
	}
	a.conns[m] = struct{}{}
	a.wg.Add(1)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.conns, m)
		a.mu.Unlock()
		a.wg.Done()
	}()

	id := ""
	if mode == modeReverse {
		id = a.cfg.ID
	}
	// The connection ends with ctx (reverse mode: Connect returning).
	stop := context.AfterFunc(ctx, func() { m.shutdown(ctx.Err(), false) })
	defer stop()
	err := agentHandshake(m.ctx, t, a.cfg.Secret, mode, id, ep)
	if err != nil {
		// Debug, not Info: anyone who can reach the agent can make this
		// happen, as often as they like.
		a.log.Debug("agent connection refused", zap.String("peer", peer), zap.Error(err))
		m.shutdown(err, true)
		return false
	}
	ac := &agentConn{a: a, m: m, sessions: make(map[uint32]*session)}
	err = m.run(ac.handle, ac.data)
	ac.closeAll()
	a.log.Debug("agent connection ended", zap.String("peer", peer), zap.Error(err))
	return true
}

// agentConn is the agent's side of one authenticated connection.
type agentConn struct {
	a *Agent
	m *mux

	mu       sync.Mutex
	sessions map[uint32]*session
	// lingering counts forwards closed by the controller whose sockets
	// are still being closed; they count against maxSessions.
	lingering int
}

func (c *agentConn) lookup(id uint32) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

func (c *agentConn) remove(s *session) {
	c.mu.Lock()
	if c.sessions[s.id] == s {
		delete(c.sessions, s.id)
	}
	c.mu.Unlock()
}

func (c *agentConn) data(h header, r io.Reader) error {
	// The direction is checked before the session: output sent to the
	// agent is a violation whether or not its session is live.
	if h.typ != frameStdin {
		return protoErr("frame 0x%02x sent to the agent", h.typ)
	}
	s := c.lookup(h.session)
	if s == nil {
		// The session ended while this frame was in flight.
		_, err := io.CopyN(io.Discard, r, int64(h.length))
		return shortPayload(err)
	}
	if s.stdin == nil {
		return protoErr("frame 0x%02x for a session without input", h.typ)
	}
	return s.stdin.receive(r, int(h.length))
}

func (c *agentConn) handle(f *frame) error {
	if f.typ == frameOpen {
		return c.open(f.session, f.open)
	}
	switch f.typ {
	case frameStdinClose, frameCredit, frameResize, frameSignal, frameClose:
	default:
		return protoErr("frame 0x%02x sent to the agent", f.typ)
	}
	if f.typ == frameCredit && f.stream == streamStdin {
		return protoErr("CREDIT for the agent's own input")
	}
	s := c.lookup(f.session)
	if s == nil {
		return nil
	}
	switch f.typ {
	case frameStdinClose:
		if s.stdin == nil {
			return protoErr("STDIN_CLOSE for a session without input")
		}
		s.stdin.closeWrite()
	case frameCredit:
		return s.out[f.stream-streamStdout].grant(int(f.amount))
	case frameResize:
		if s.fwd != nil {
			return protoErr("RESIZE on forward session %d", f.session)
		}
		s.resize(f.rows, f.cols)
	case frameSignal:
		switch {
		case s.fwd != nil:
			return protoErr("SIGNAL on forward session %d", f.session)
		case s.attach:
			// As docker kill with an init reaches the init's child.
			c.a.Signal(syscall.Signal(f.signal))
		case s.proc != nil:
			s.proc.signal(syscall.Signal(f.signal))
		}
	case frameClose:
		s.abort(errSessionClosed)
	}
	return nil
}

var errSessionClosed = errors.New("session closed by the controller")

func (c *agentConn) open(id uint32, req *openRequest) error {
	c.mu.Lock()
	if _, dup := c.sessions[id]; dup {
		c.mu.Unlock()
		return protoErr("OPEN of live session %d", id)
	}
	full := len(c.sessions)+c.lingering >= maxSessions
	c.mu.Unlock()
	if full {
		return c.refuse(id, startErrorf(errKindExhausted, "too many sessions on one connection (limit %d)", maxSessions))
	}
	switch req.Kind {
	case "exec", "attach", "forward", "start", "status", "signal":
	default:
		return c.refuse(id, startErrorf(errKindNotSupported, "sessions of kind %q are not supported", req.Kind))
	}
	s := newSession(c, id, req)
	var serr *startError
	switch req.Kind {
	case "attach":
		serr = c.a.attach(s, req)
	case "forward":
		serr = c.startForward(s)
	case "start", "status", "signal":
		serr = c.answer(s, req)
	default:
		c.mu.Lock()
		c.sessions[id] = s
		c.mu.Unlock()
		serr = s.startExec(req)
		if serr != nil {
			c.remove(s)
		}
	}
	if serr != nil {
		return c.refuse(id, serr)
	}
	return nil
}

// refuse answers an OPEN with an ERROR frame; the connection stays up.
func (c *agentConn) refuse(id uint32, e *startError) error {
	err := c.m.send(&frame{header: header{typ: frameError, session: id}, kind: e.kind, text: e.msg})
	if err != nil {
		return err
	}
	return nil
}

// attach registers s as an attached session of the current run of the
// main command; it ends with that run, as docker attach does.
func (a *Agent) attach(s *session, req *openRequest) *startError {
	a.mu.Lock()
	r, state, code := a.cur, a.state, a.last.ExitCode
	a.mu.Unlock()
	switch state {
	case StateCreated:
		return startErrorf(errKindConflict, "attach: the main command has not been started")
	case StateRestarting:
		return startErrorf(errKindConflict, "attach: the main command is restarting; wait until it runs")
	case StateExited:
		return startErrorf(errKindConflict, "attach: the main command is not running (exit code %d)", code)
	}
	r.stdinMu.Lock()
	stdinOpen := r.stdin != nil
	r.stdinMu.Unlock()
	if s.stdin != nil && !stdinOpen {
		return startErrorf(errKindInvalidArgument, "attach with input: the main command was not started with open stdin")
	}
	a.mu.Lock()
	done, code := r.done, r.result.ExitCode
	a.mu.Unlock()
	if done {
		return startErrorf(errKindConflict, "attach: the main command is not running (exit code %d)", code)
	}
	s.mr = r
	s.c.mu.Lock()
	s.c.sessions[s.id] = s
	s.c.mu.Unlock()
	// STARTED goes out before the session can receive the main command's
	// output or exit status: a controller refuses either before STARTED.
	if err := s.c.m.send(&frame{header: header{typ: frameStarted, session: s.id}, amount: defaultWindow}); err != nil {
		s.abort(err)
		return nil
	}
	a.mu.Lock()
	switch {
	case s.isAborted():
		a.mu.Unlock()
		return nil
	case r.done:
		a.mu.Unlock()
		s.finish(r.result)
		return nil
	}
	r.attachers[s] = struct{}{}
	a.mu.Unlock()
	if req.Rows > 0 && req.Cols > 0 {
		r.resize(req.Rows, req.Cols)
	}
	if s.stdin != nil {
		// With a terminal, only an explicit end of input sends Ctrl-D,
		// never a client that went away.
		go s.pumpStdin(&mainStdinWriter{r: r}, r.tty != nil)
	}
	return nil
}

func (c *agentConn) closeAll() {
	c.mu.Lock()
	list := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		list = append(list, s)
	}
	c.mu.Unlock()
	for _, s := range list {
		s.abort(errConnClosed)
	}
}
