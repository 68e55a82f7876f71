package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// forwardDialTimeout bounds the agent's dial of a forwarded port. On the
// loopback interface a dial is answered at once, accepted or refused;
// only a listener whose backlog is full leaves it waiting.
const forwardDialTimeout = 5 * time.Second

// forwardLinger bounds how long the agent goes on after a controller's
// CLOSE writing the input that came before it to the port, and then
// waiting for the port to close its side, before it closes the socket
// anyway, as the kernel gives up on a closed TCP socket whose peer takes
// nothing. A variable so that tests need not wait for it.
var forwardLinger = 5 * time.Second

// errForwardEnded ends a forward session that ended on its own (EXIT or
// ERROR sent): its socket is closed at once.
var errForwardEnded = errors.New("forward ended")

// forward is the agent's side of a forward session: a TCP connection to
// 127.0.0.1:port in the container, whose bytes are the session's STDIN
// (to the port) and STDOUT (from it).
type forward struct {
	port int
	// ctx is cancelled when the session ends, which stops a dial still in
	// progress.
	ctx    context.Context
	cancel context.CancelFunc
	// Once the socket is connected, one of these is closed when the
	// session ends: hard to close the socket at once, graceful (CLOSE
	// from the controller) to close it once the input has been written.
	hard, graceful chan struct{}
	// flushed is closed when the input pump has stopped, drained when
	// the output pump has.
	flushed, drained chan struct{}

	mu      sync.Mutex
	inDone  bool  // the input ended and the socket's write side is shut
	outDone bool  // the socket's read side reached EOF
	ended   bool  // EXIT or ERROR has been decided on
	err     error // the first failure of either direction
}

func newForward(port int) *forward {
	ctx, cancel := context.WithCancel(context.Background())
	return &forward{port: port, ctx: ctx, cancel: cancel,
		hard: make(chan struct{}), graceful: make(chan struct{}),
		flushed: make(chan struct{}), drained: make(chan struct{})}
}

// stop ends the forward for a session aborted with err: at once, or
// after writing the input already received when the controller closed
// the session.
func (f *forward) stop(stdin *inbox, err error) {
	// Before the cancel: runForward, seeing its context cancelled, must
	// also see which way the session ended.
	if errors.Is(err, errSessionClosed) {
		stdin.closeWrite()
		close(f.graceful)
	} else {
		stdin.abort(err)
		close(f.hard)
	}
	f.cancel()
}

func (f *forward) isGraceful() bool {
	select {
	case <-f.graceful:
		return true
	default:
		return false
	}
}

// startForward checks a forward's port and starts dialling it; STARTED
// or ERROR follows from the dial. The session is registered before this
// returns, so that STDIN_CLOSE and CLOSE that follow OPEN find it.
func (c *agentConn) startForward(s *session) *startError {
	port := s.fwd.port
	if port < 1 || port > 65535 {
		s.fwd.cancel()
		return startErrorf(errKindInvalidArgument, "port %d is not in 1..65535", port)
	}
	c.mu.Lock()
	c.sessions[s.id] = s
	c.mu.Unlock()
	// The read loop is still running: Agent.Close waits for this only
	// after every connection's read loop has ended.
	c.a.forwards.Add(1)
	go s.runForward()
	return nil
}

// runForward dials the session's port and, once connected, copies
// between the socket and the session until both end.
func (s *session) runForward() {
	f := s.fwd
	defer func() {
		if f.isGraceful() {
			s.c.mu.Lock()
			s.c.lingering--
			s.c.mu.Unlock()
		}
		s.c.a.forwards.Done()
	}()
	d := net.Dialer{Timeout: forwardDialTimeout}
	nc, err := d.DialContext(f.ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port)))
	if err != nil {
		if f.ctx.Err() != nil {
			// The session ended first; the controller expects nothing.
			return
		}
		s.abort(errForwardEnded)
		kind, text := errKindOther, fmt.Sprintf("dialling port %d: %v", f.port, err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			kind, text = errKindNotFound, fmt.Sprintf("nothing listens on port %d", f.port)
		}
		s.c.m.send(&frame{header: header{typ: frameError, session: s.id}, kind: kind, text: text})
		return
	}
	conn := nc.(*net.TCPConn)
	if f.ctx.Err() != nil {
		conn.Close()
		return
	}
	if err := s.c.m.send(&frame{header: header{typ: frameStarted, session: s.id}, amount: defaultWindow}); err != nil {
		s.abort(err)
	}
	var pumps sync.WaitGroup
	pumps.Go(func() { s.forwardOutput(conn) })
	pumps.Go(func() { s.forwardInput(conn) })
	select {
	case <-f.hard:
	case <-f.graceful:
		s.linger(conn)
	}
	conn.Close()
	pumps.Wait()
}

// linger closes a forward the controller has closed as a program's
// close of a TCP socket does, within forwardLinger and while the
// connection lasts: the input already received is written, the write
// side shut, and the port's output read and discarded until its EOF. A
// socket closed while the port's output is still unread sends a reset,
// which can cost the port the last input. Until it is done, the forward
// counts against the connection's sessions.
func (s *session) linger(conn *net.TCPConn) {
	t := time.NewTimer(forwardLinger)
	defer t.Stop()
	wait := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-t.C:
		case <-s.c.m.done():
		}
		return false
	}
	if wait(s.fwd.flushed) {
		conn.CloseWrite()
		wait(s.fwd.drained)
	}
}

// forwardOutput sends what the port sends as STDOUT, then STDOUT_CLOSE
// at its end. Once the controller has closed the session it reads and
// discards, so that a port waiting to write does not stop reading the
// input still being written to it.
func (s *session) forwardOutput(conn *net.TCPConn) {
	defer close(s.fwd.drained)
	err := s.pumpOutput(conn, streamStdout)
	switch {
	case s.isAborted():
		if s.fwd.isGraceful() {
			io.Copy(io.Discard, conn)
		}
	case err == io.EOF:
		if err := s.c.m.send(&frame{header: header{typ: frameStdoutClose, session: s.id}}); err != nil {
			s.abort(err)
			return
		}
		s.forwardDone(false, nil)
	default:
		s.forwardDone(false, fmt.Errorf("reading from port %d: %w", s.fwd.port, err))
	}
}

// forwardInput writes the controller's input to the port, crediting it
// as the port takes it, and shuts the socket's write side at its end.
// Input the port does not take is not credited: the controller's writes
// wait until the session ends with an ERROR that says why.
func (s *session) forwardInput(conn *net.TCPConn) {
	f := s.fwd
	defer close(f.flushed)
	for {
		p, err := s.stdin.peek()
		if err == io.EOF && !f.isGraceful() {
			conn.CloseWrite()
			s.forwardDone(true, nil)
			return
		}
		if err != nil {
			return
		}
		if _, err := conn.Write(p); err != nil {
			if !s.isAborted() {
				s.forwardDone(true, fmt.Errorf("writing to port %d: %w", f.port, err))
			}
			return
		}
		if g := s.stdin.release(len(p)); g > 0 && !s.isAborted() {
			if s.c.m.send(&frame{header: header{typ: frameCredit, session: s.id}, stream: streamStdin, amount: uint32(g)}) != nil {
				return
			}
		}
	}
}

// forwardDone records that one direction of a forward is done, failed
// with err or not. The session ends with EXIT (code 0) once both are
// done without a failure, and with ERROR once both are done after a
// failure, or at once when reading from the port failed.
func (s *session) forwardDone(in bool, err error) {
	f := s.fwd
	f.mu.Lock()
	if f.ended {
		f.mu.Unlock()
		return
	}
	if in {
		f.inDone = true
	} else {
		f.outDone = true
	}
	if f.err == nil {
		f.err = err
	}
	if !(f.inDone && f.outDone) && (in || err == nil) {
		f.mu.Unlock()
		return
	}
	f.ended = true
	ferr := f.err
	f.mu.Unlock()
	if s.isAborted() {
		return
	}
	if ferr != nil {
		s.abort(errForwardEnded)
		s.c.m.send(&frame{header: header{typ: frameError, session: s.id}, kind: errKindOther, text: ferr.Error()})
		return
	}
	s.c.m.send(&frame{header: header{typ: frameExit, session: s.id}})
	s.abort(errForwardEnded)
}
