package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
	"go.uber.org/zap"
)

// The states Status reports, Docker's names for them.
const (
	// StateCreated: the agent waits for StartMain (Config.Gate).
	StateCreated = "created"
	// StateRunning: the main command runs.
	StateRunning = "running"
	// StateRestarting: the main command exited and the restart policy
	// waits to start it again.
	StateRestarting = "restarting"
	// StateExited: the main command exited for the last time; the agent
	// is about to exit.
	StateExited = "exited"
)

// Status is the main command's state, as docker inspect reports a
// container's.
type Status struct {
	// State is StateCreated, StateRunning, StateRestarting or
	// StateExited.
	State string
	// ExitCode is that of the last run that ended (0 before any); 128+N
	// when signal N killed it.
	ExitCode int
	// Signal names the signal that ended the last run, such as
	// "SIGKILL", or is empty.
	Signal string
	// RestartCount counts the restarts the restart policy made.
	RestartCount int
	// StartedAt is when the current (or last) run started, FinishedAt
	// when the last run that ended did; zero before any.
	StartedAt  time.Time
	FinishedAt time.Time
	// Health is the healthcheck's result, nil without a healthcheck or
	// before the first start.
	Health *gantry.Health
}

// restartDelay is the delay before the first restart, Docker's: each
// restart doubles it, up to 600 times it (1 minute), and a run that
// lasted 100 times it (10 s) or more sets it back. A variable so that
// tests need not wait for it.
var restartDelay = 100 * time.Millisecond

// nextDelay is the delay before a restart, after a run that lasted ran
// and a previous delay of prev (0 before the first restart), by
// Docker's rules.
func nextDelay(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= 100*restartDelay {
		return restartDelay
	}
	return min(2*prev, 600*restartDelay)
}

// mainRun is one run of the main command: its process, its output tees
// and the sessions attached to it, which end with it.
type mainRun struct {
	a   *Agent
	p   *proc
	tty *os.File // the pty master with Tty; the tee owns it and closes it
	// cut is cancelled exitGrace after the process exits.
	cut    context.Context
	cutNow context.CancelFunc
	// finished is closed once the output is drained and every attached
	// session has been told how the run ended.
	finished chan struct{}

	stdinMu sync.Mutex
	// stdin is the run's input with OpenStdin (a pipe, or its terminal),
	// until it is closed.
	stdin io.WriteCloser

	// Under a.mu.
	exited    bool // p exited; result is set
	done      bool // the attached sessions have been told
	result    gantry.ExecResult
	attachers map[*session]struct{}
}

// tee copies one of the run's output streams to the agent's own stream
// and to every attached session. It blocks on the slowest of them: a
// stalled attach client holds the main command back rather than lose
// output, as docker attach does, but only while the main command runs
// (see exitGrace).
func (r *mainRun) tee(f *os.File, dst io.Writer, stream byte) {
	defer func() {
		// Not before the main command has exited: closing a terminal's
		// master hangs up its session, which would kill a command that
		// has only closed its output (as cat does right before it exits).
		<-r.p.done
		f.Close()
	}()
	// drainGrace past exitGrace: what is still in the pipe when attached
	// sessions are given up on reaches dst.
	d := newDrainer(f, r.p.done, exitGrace+drainGrace)
	buf := make([]byte, MaxDataPayload)
	for {
		n, err := d.Read(buf)
		if n > 0 {
			dst.Write(buf[:n])
			r.a.mu.Lock()
			targets := make([]*session, 0, len(r.attachers))
			for s := range r.attachers {
				targets = append(targets, s)
			}
			r.a.mu.Unlock()
			for _, s := range targets {
				if errors.Is(s.sendOutput(stream, buf[:n], r.cut), errGaveUp) {
					s.giveUp()
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// ended tells every attached session how the run ended and closes
// finished.
func (r *mainRun) ended() {
	r.a.mu.Lock()
	targets := make([]*session, 0, len(r.attachers))
	for s := range r.attachers {
		targets = append(targets, s)
	}
	r.attachers = make(map[*session]struct{})
	r.done = true
	r.a.mu.Unlock()
	for _, s := range targets {
		s.finish(r.result)
	}
	r.releaseStdin(false)
	close(r.finished)
}

func (r *mainRun) detach(s *session) {
	r.a.mu.Lock()
	delete(r.attachers, s)
	r.a.mu.Unlock()
}

// releaseStdin stops attached sessions writing to the run's input. With
// closeIt it also ends that input: a pipe is closed, a terminal gets its
// end-of-file character. Once the run has exited a terminal is left
// alone: its tee closes it.
func (r *mainRun) releaseStdin(closeIt bool) {
	r.stdinMu.Lock()
	defer r.stdinMu.Unlock()
	if r.stdin == nil {
		return
	}
	if closeIt || r.tty == nil {
		r.stdin.Close()
	}
	r.stdin = nil
}

// resize sets the size of the run's terminal, if it has one.
func (r *mainRun) resize(rows, cols uint16) {
	if r.tty != nil {
		setWinsize(r.tty, rows, cols)
	}
}

// mainStdinWriter lets attached sessions write to a run's standard
// input, one at a time.
type mainStdinWriter struct{ r *mainRun }

func (w *mainStdinWriter) Write(p []byte) (int, error) {
	w.r.stdinMu.Lock()
	f := w.r.stdin
	w.r.stdinMu.Unlock()
	if f == nil {
		return 0, os.ErrClosed
	}
	return f.Write(p)
}

func (w *mainStdinWriter) Close() error {
	if w.r.a.cfg.StdinOnce {
		w.r.releaseStdin(true)
	}
	return nil
}

// supervise waits for each run to end and applies the restart policy;
// once it ends, it writes the record and closes exited.
func (a *Agent) supervise() {
	r := <-a.first
	var delay time.Duration
	for r != nil {
		<-r.finished
		a.mu.Lock()
		if !a.restartDue(r.result) {
			a.mu.Unlock()
			break
		}
		delay = nextDelay(delay, a.finishedAt.Sub(a.startedAt))
		a.restarts++
		a.state = StateRestarting
		wake := make(chan struct{})
		a.wake = wake
		a.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-wake:
		}
		t.Stop()
		a.mu.Lock()
		a.wake = nil
		stopped := a.stopped
		a.mu.Unlock()
		if stopped {
			break
		}
		next, err := a.startRun()
		if err != nil {
			// As Docker's, a restart that cannot start leaves the
			// container exited, with the reason.
			a.startFailed(err)
			break
		}
		r = next
	}
	a.end()
}

// restartDue reports whether the main command, whose run just ended with
// res, is to be started again, by Docker's rules: never after a signal
// through the agent; on-failure after a non-zero exit while the restarts
// are fewer than a positive MaxRetries; always and unless-stopped after
// every exit. Call with a.mu held.
func (a *Agent) restartDue(res gantry.ExecResult) bool {
	if a.stopped {
		return false
	}
	p := a.cfg.Restart
	switch p.Name {
	case gantry.RestartAlways, gantry.RestartUnlessStopped:
		return true
	case gantry.RestartOnFailure:
		return res.ExitCode != 0 && (p.MaxRetries == 0 || a.restarts < p.MaxRetries)
	}
	return false
}

// startFailed ends the agent's runs with the exit code a shell gives a
// command that could not be started, saying why on stderr.
func (a *Agent) startFailed(err error) {
	w := orDiscard(a.cfg.Stderr)
	if a.errc != nil {
		w = a.errc
	}
	fmt.Fprintf(w, "gantry-agent: %v\n", err)
	a.mu.Lock()
	a.last = gantry.ExecResult{ExitCode: exitCodeOf(err)}
	a.finishedAt = time.Now()
	a.state = StateExited
	a.mu.Unlock()
}

// end is the end of the restart policy: the last run's result is the
// agent's, the record is written and Wait returns.
func (a *Agent) end() {
	a.mu.Lock()
	a.state = StateExited
	a.status = a.last
	rec := recordOf(a.last)
	rec.Restarts = a.restarts
	if a.health != nil {
		rec.Health, rec.FailingStreak = a.health.Status, a.health.FailingStreak
	}
	rec.StartedAt, rec.FinishedAt = a.startedAt, a.finishedAt
	a.mu.Unlock()
	if a.cfg.Record {
		if err := WriteRecord(a.outc, a.errc, rec); err != nil {
			a.log.Debug("writing the log record", zap.Error(err))
		}
	}
	close(a.exited)
}

// StartMain starts the main command of an agent started with
// Config.Gate and returns once it runs. It is a no-op returning nil
// once the main command has started or ended. A main command that
// cannot be started is an error saying why (as Start's), and the agent
// then ends with the exit code a shell gives it (127 not found, 126 not
// executable, else 125).
func (a *Agent) StartMain() error {
	a.startMu.Lock()
	defer a.startMu.Unlock()
	a.mu.Lock()
	created := a.state == StateCreated
	a.mu.Unlock()
	if !created {
		return nil
	}
	r, err := a.startRun()
	if err != nil {
		a.startFailed(err)
		a.first <- nil
		return err
	}
	a.first <- r
	return nil
}

// Signal sends a signal to the main command, as docker kill does to a
// container's: the restart policy no longer restarts it, whatever its
// exit. While a restart is pending the signal calls it off, and the
// agent ends with the last run's exit code, as Docker does. Before
// StartMain (Config.Gate), a signal whose default action ends a process
// calls the start off: the agent ends as if the command had been killed
// by it at once (128+N); any other is an error wrapping
// gantry.ErrConflict. Once the main command has exited for good it does
// nothing.
func (a *Agent) Signal(sig syscall.Signal) error {
	return a.signal(sig, false)
}

// signal is Signal; from a controller, before StartMain, it is a
// conflict whatever the signal, as docker kill of a created container
// is: only the platform (a signal the agent passes on) calls the start
// off.
func (a *Agent) signal(sig syscall.Signal, controller bool) error {
	a.startMu.Lock()
	defer a.startMu.Unlock()
	a.mu.Lock()
	switch a.state {
	case StateCreated:
		if controller || !terminates(sig) {
			a.mu.Unlock()
			return fmt.Errorf("agent: %w: the main command has not been started", gantry.ErrConflict)
		}
		a.stopped = true
		a.state = StateExited
		a.last = gantry.ExecResult{ExitCode: 128 + int(sig), Signal: gantry.SignalName(int(sig))}
		a.finishedAt = time.Now()
		a.mu.Unlock()
		a.first <- nil
		return nil
	case StateExited:
		code := a.last.ExitCode
		a.mu.Unlock()
		if controller {
			return fmt.Errorf("agent: %w: the main command is not running (exit code %d)", gantry.ErrConflict, code)
		}
		return nil
	case StateRestarting:
		a.stopped = true
		if a.wake != nil {
			close(a.wake)
			a.wake = nil
		}
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	r := a.cur
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.p.signal(sig)
}

// terminates reports whether sig's default action ends a process.
func terminates(sig syscall.Signal) bool {
	switch sig {
	case 0, syscall.SIGCHLD, syscall.SIGCONT, syscall.SIGURG, syscall.SIGWINCH,
		syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return false
	}
	return true
}

// Status returns the main command's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		State:        a.state,
		ExitCode:     a.last.ExitCode,
		Signal:       a.last.Signal,
		RestartCount: a.restarts,
		StartedAt:    a.startedAt,
		FinishedAt:   a.finishedAt,
	}
	if a.health != nil {
		h := *a.health
		st.Health = &h
	}
	return st
}

// answer serves a "start", "status" or "signal" session: STARTED, for a
// status the Status as JSON on STDOUT, and EXIT 0; a start or signal
// that fails is refused with the reason instead.
func (c *agentConn) answer(s *session, req *openRequest) *startError {
	var out []byte
	switch req.Kind {
	case "start":
		if err := c.a.StartMain(); err != nil {
			return reason(err)
		}
	case "signal":
		if err := c.a.signal(syscall.Signal(req.Signal), true); err != nil {
			return reason(err)
		}
	default:
		var err error
		if out, err = json.Marshal(c.a.Status()); err != nil {
			return startErrorf(errKindOther, "status: %v", err)
		}
	}
	c.mu.Lock()
	c.sessions[s.id] = s
	c.mu.Unlock()
	if err := c.m.send(&frame{header: header{typ: frameStarted, session: s.id}, amount: defaultWindow}); err != nil {
		s.abort(err)
		return nil
	}
	if len(out) == 0 {
		// At once: a main command that StartMain started may end, and
		// the agent with it, right after.
		s.finish(gantry.ExecResult{})
		return nil
	}
	go func() {
		if err := s.pumpOutput(bytes.NewReader(out), streamStdout); err != io.EOF {
			s.abort(err)
			return
		}
		s.finish(gantry.ExecResult{})
	}()
	return nil
}

// kindOf is the ERROR kind of an error wrapping a gantry sentinel.
func kindOf(err error) errorKind {
	for _, k := range []errorKind{errKindInvalidArgument, errKindNotFound, errKindPermissionDenied,
		errKindConflict, errKindExhausted, errKindNotSupported} {
		if errors.Is(err, kindSentinel(k)) {
			return k
		}
	}
	return errKindOther
}

// reason is err as an ERROR frame's kind and reason; the client names
// the kind itself, so the reason does not repeat it.
func reason(err error) *startError {
	k := kindOf(err)
	msg := strings.TrimPrefix(err.Error(), "agent: ")
	msg = strings.TrimPrefix(msg, kindSentinel(k).Error()+": ")
	return startErrorf(k, "%s", msg)
}
