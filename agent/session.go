package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"github.com/gantryhq/gantry"
)

// session is the agent's side of one exec, attach or forward.
type session struct {
	c      *agentConn
	id     uint32
	attach bool
	mr     *mainRun // the run an attached session is attached to
	fwd    *forward // forward sessions only

	stdin *inbox     // nil when the controller sends no input
	out   [2]*credit // stdout, stderr

	proc *proc
	tty  *os.File // pty master of a TTY exec

	abortOne sync.Once
	aborted  chan struct{}
}

func newSession(c *agentConn, id uint32, req *openRequest) *session {
	s := &session{c: c, id: id, attach: req.Kind == "attach", aborted: make(chan struct{})}
	if req.Kind == "forward" {
		s.fwd = newForward(req.Port)
	}
	if req.Stdin || s.fwd != nil {
		s.stdin = newInbox(defaultWindow)
	}
	s.out[0] = newCredit(int(req.Window))
	s.out[1] = newCredit(int(req.Window))
	return s
}

// startExec starts the process of an exec session and the goroutines that
// serve it. On failure nothing is left running.
func (s *session) startExec(req *openRequest) *startError {
	a := s.c.a
	env := mergeEnv(a.env, req.Env)
	attr := &os.ProcAttr{Dir: a.cfg.Dir, Sys: &syscall.SysProcAttr{}}
	if req.Dir != "" {
		attr.Dir = req.Dir
	}
	if serr := checkDir(attr.Dir); serr != nil {
		return serr
	}
	if req.User != "" {
		cred, home, serr := credentialFor(req.User)
		if serr != nil {
			return serr
		}
		attr.Sys.Credential = cred
		if envValue(req.Env, "HOME") == "" {
			env = mergeEnv(env, []string{"HOME=" + home})
		}
	}
	if req.TTY && envValue(env, "TERM") == "" {
		env = append(env, "TERM=xterm")
	}
	attr.Env = env
	path, serr := lookPath(req.Cmd[0], env)
	if serr != nil {
		return serr
	}

	var parentEnds []*os.File // ours, kept
	var childEnds []*os.File  // the child's, closed after the start
	closeAll := func() {
		for _, f := range append(parentEnds, childEnds...) {
			f.Close()
		}
	}
	var stdinW io.WriteCloser
	var outputs []*os.File
	if req.TTY {
		master, slave, err := openPTY()
		if err != nil {
			return startErrorf(errKindOther, "exec %q: allocating a pty: %v", req.Cmd[0], err)
		}
		if req.Rows > 0 && req.Cols > 0 {
			setWinsize(master, req.Rows, req.Cols)
		}
		parentEnds = append(parentEnds, master)
		childEnds = append(childEnds, slave)
		attr.Files = []*os.File{slave, slave, slave}
		attr.Sys.Setsid = true
		attr.Sys.Setctty = true
		attr.Sys.Ctty = 0
		s.tty = master
		stdinW = &ttyInput{master}
		outputs = []*os.File{master}
	} else {
		attr.Files = make([]*os.File, 3)
		if req.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return startErrorf(errKindOther, "exec %q: %v", req.Cmd[0], err)
			}
			attr.Files[0] = r
			childEnds = append(childEnds, r)
			parentEnds = append(parentEnds, w)
			stdinW = w
		} else {
			null, err := os.Open(os.DevNull)
			if err != nil {
				return startErrorf(errKindOther, "exec %q: %v", req.Cmd[0], err)
			}
			attr.Files[0] = null
			childEnds = append(childEnds, null)
		}
		for i := 1; i <= 2; i++ {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return startErrorf(errKindOther, "exec %q: %v", req.Cmd[0], err)
			}
			growPipe(w)
			attr.Files[i] = w
			childEnds = append(childEnds, w)
			parentEnds = append(parentEnds, r)
			outputs = append(outputs, r)
		}
		// Its own process group, so that ending the session reaches the
		// children it started too.
		attr.Sys.Setpgid = true
	}

	p, err := a.sp.start(path, req.Cmd, attr)
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		for _, f := range parentEnds {
			f.Close()
		}
		return classifyStart(req.Cmd[0], err)
	}
	s.proc = p
	a.execs.Go(func() { <-p.done })
	if err := s.c.m.send(&frame{header: header{typ: frameStarted, session: s.id}, amount: defaultWindow}); err != nil {
		s.abort(err)
	}

	var pumps sync.WaitGroup
	for i, f := range outputs {
		d := newDrainer(f, p.done, 0)
		stream := streamStdout + byte(i)
		pumps.Go(func() { s.pumpOutput(d, stream) })
	}
	if s.stdin != nil {
		go s.pumpStdin(stdinW, req.TTY)
	} else if stdinW != nil {
		stdinW.Close()
	}
	go func() {
		<-p.done
		pumps.Wait()
		if !s.isAborted() {
			s.finish(p.result())
		}
		s.abort(errSessionClosed)
		for _, f := range parentEnds {
			f.Close()
		}
	}()
	return nil
}

// ttyInput writes input to a pty master; closing it sends the terminal's
// end-of-file character instead of closing the master, which also
// carries output.
type ttyInput struct{ master *os.File }

func (t *ttyInput) Write(p []byte) (int, error) { return t.master.Write(p) }

func (t *ttyInput) Close() error {
	_, err := t.master.Write([]byte{4})
	return err
}

// pumpOutput sends what r yields (a process's output, a forwarded
// socket's), never more than the controller has credited. It returns r's
// error (io.EOF at its end), or why the session or connection stopped
// taking output.
func (s *session) pumpOutput(r io.Reader, stream byte) error {
	cr := s.out[stream-streamStdout]
	typ := frameStdout
	if stream == streamStderr {
		typ = frameStderr
	}
	// Start small and grow, so idle sessions cost little memory and busy
	// ones move large frames.
	buf := make([]byte, headerLen+16<<10)
	for {
		n, err := cr.take(len(buf)-headerLen, nil, nil)
		if err != nil {
			return err
		}
		m, rerr := r.Read(buf[headerLen : headerLen+n])
		if m < n {
			cr.putBack(n - m)
		}
		if m > 0 {
			putHeader(buf, typ, s.id, m)
			if err := s.c.m.write(buf[:headerLen+m]); err != nil {
				return err
			}
			if m == len(buf)-headerLen && len(buf) < headerLen+MaxDataPayload {
				buf = make([]byte, min(2*len(buf), headerLen+MaxDataPayload))
			}
		}
		if rerr != nil {
			return rerr
		}
	}
}

// sendOutput sends p, which the main command wrote, to an attached
// session, waiting for credit as needed. It stops when the session ends,
// and once cut is done: then a session still waiting for credit is given
// up on (errGaveUp), and one whose connection does not take a write is
// cut off. Each stream has one tee, so calls for a stream never overlap.
func (s *session) sendOutput(stream byte, p []byte, cut context.Context) error {
	cr := s.out[stream-streamStdout]
	typ := frameStdout
	if stream == streamStderr {
		typ = frameStderr
	}
	msg := make([]byte, headerLen+min(len(p), MaxDataPayload))
	for len(p) > 0 {
		n, err := cr.take(len(p), cut.Done(), nil)
		if err != nil {
			return err
		}
		if cut.Err() != nil {
			return errGaveUp
		}
		putHeader(msg, typ, s.id, n)
		copy(msg[headerLen:], p[:n])
		// Only a peer that stops reading its connection blocks a write;
		// closing the connection is the one way to end that write.
		stop := context.AfterFunc(cut, func() { s.c.m.shutdown(errGaveUp, true) })
		err = s.c.m.write(msg[:headerLen+n])
		stop()
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// giveUp ends an attached session that did not take the main command's
// last output in time, telling the controller why. The ERROR is sent
// from a goroutine of its own: the tee must not wait on this session
// again.
func (s *session) giveUp() {
	if s.isAborted() {
		return
	}
	s.abort(errGaveUp)
	go s.c.m.send(&frame{header: header{typ: frameError, session: s.id}, kind: errKindExhausted,
		text: fmt.Sprintf("attach: the main command exited, and this client did not take its remaining output within %v", exitGrace)})
}

// pumpStdin writes the controller's input to w and returns credit as it
// goes. Once w fails (the process stopped reading), input is discarded so
// the controller is never left waiting for credit.
func (s *session) pumpStdin(w io.WriteCloser, tty bool) {
	broken := false
	for {
		p, err := s.stdin.peek()
		if err == io.EOF {
			w.Close()
			return
		}
		if err != nil {
			if !tty {
				w.Close()
			}
			return
		}
		if !broken {
			if _, err := w.Write(p); err != nil {
				broken = true
			}
		}
		if g := s.stdin.release(len(p)); g > 0 {
			if s.c.m.send(&frame{header: header{typ: frameCredit, session: s.id}, stream: streamStdin, amount: uint32(g)}) != nil {
				return
			}
		}
	}
}

// resize resizes an exec's terminal, or for an attached session the main
// command's.
func (s *session) resize(rows, cols uint16) {
	switch {
	case s.mr != nil:
		s.mr.resize(rows, cols)
	case s.tty != nil:
		setWinsize(s.tty, rows, cols)
	}
}

// openPTY opens a pty pair. The master is made non-blocking and handed to
// Go's poller, so that read deadlines work on it (the drainer's grace
// depends on them); pty.Open returns it in blocking mode.
func openPTY() (master, slave *os.File, err error) {
	m, slave, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, m.Fd(), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		slave.Close()
		return nil, nil, errno
	}
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		syscall.Close(int(fd))
		slave.Close()
		return nil, nil, err
	}
	return os.NewFile(fd, m.Name()), slave, nil
}

// setWinsize sets a terminal's size. Unlike pty.Setsize it goes through
// the file's poller reference, which neither switches the file to
// blocking mode nor touches a descriptor that was closed.
func setWinsize(f *os.File, rows, cols uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := pty.Winsize{Rows: rows, Cols: cols}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// finish reports the exit status and ends the session.
func (s *session) finish(r gantry.ExecResult) {
	sig := 0
	if r.Signal != "" {
		sig, _ = gantry.ParseSignal(r.Signal)
	}
	s.c.m.send(&frame{header: header{typ: frameExit, session: s.id}, code: int32(r.ExitCode), killSig: byte(sig)})
	s.abort(errSessionClosed)
}

func (s *session) isAborted() bool {
	select {
	case <-s.aborted:
		return true
	default:
		return false
	}
}

// abort ends the session: its streams stop and, for an exec whose process
// still runs, the process group gets SIGHUP and, if it lingers, SIGKILL.
// An attached session only detaches; the main command is never touched.
// A forward's socket is closed, after the input that arrived is written
// when the controller sent CLOSE (errSessionClosed).
func (s *session) abort(err error) {
	s.abortOne.Do(func() {
		close(s.aborted)
		s.c.remove(s)
		s.out[0].fail(err)
		s.out[1].fail(err)
		if s.fwd != nil {
			if errors.Is(err, errSessionClosed) {
				s.c.mu.Lock()
				s.c.lingering++
				s.c.mu.Unlock()
			}
			s.fwd.stop(s.stdin, err)
			return
		}
		if s.stdin != nil {
			s.stdin.abort(err)
		}
		if s.attach {
			if s.mr != nil {
				s.mr.detach(s)
			}
			return
		}
		p := s.proc
		if p == nil {
			// A start or status session has no process.
			return
		}
		select {
		case <-p.done:
			return
		default:
		}
		p.signalGroup(syscall.SIGHUP)
		go func() {
			t := time.NewTimer(killGrace)
			defer t.Stop()
			select {
			case <-p.done:
			case <-t.C:
				p.signalGroup(syscall.SIGKILL)
			}
		}()
	})
}
