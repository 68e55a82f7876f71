package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
)

// DialPort connects to TCP port port on 127.0.0.1 inside the container,
// as kubectl port-forward does: the agent dials the port and the
// returned net.Conn carries the connection's bytes both ways over a
// session of its own, with the protocol's flow control. It behaves as a
// TCP connection does: Read returns io.EOF once the port has shut its
// side, CloseWrite shuts this side (the *net.TCPConn method of that
// name; assert it with an interface), Close still delivers what was
// written before it, and deadlines interrupt Read and Write as on any
// net.Conn. An error of the port's socket (a reset) is Read's error once
// the bytes that came before it are read.
//
// A port outside 1..65535 is an error wrapping gantry.ErrInvalidArgument,
// sent to no one; a port nothing listens on one wrapping
// gantry.ErrNotFound. ctx bounds the dial only; cancelling it later does
// not affect the connection. Closing the Client, or losing its
// connection, ends every connection from DialPort at once, even one
// whose Close has not yet delivered what was written before it: to be
// sure the port got everything, CloseWrite and read until io.EOF.
func (c *Client) DialPort(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("agent: forward: %w: port %d is not in 1..65535", gantry.ErrInvalidArgument, port)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := c.open(&openRequest{Kind: "forward", Port: port, Window: defaultWindow}, "forward")
	if err != nil {
		return nil, err
	}
	select {
	case <-s.started:
	case <-s.ended:
		// An ERROR that follows STARTED at once is the connection's to
		// report, after what arrived before it.
		select {
		case <-s.started:
		default:
			return nil, s.how.err
		}
	case <-ctx.Done():
		if c.remove(s.id) != nil {
			c.m.send(&frame{header: header{typ: frameClose, session: s.id}})
		}
		s.end(sessionEnd{err: fmt.Errorf("agent: forward: %w", errSessionAbandoned)})
		return nil, ctx.Err()
	}
	return &portConn{
		s:      s,
		local:  Addr{ID: c.id},
		remote: Addr{ID: c.id, Port: port},
		closed: make(chan struct{}),
		rd:     newDeadline(),
		wd:     newDeadline(),
	}, nil
}

// Addr is an address of a connection from Client.DialPort: Network is
// "gantry-agent" and String the address inside the container,
// "127.0.0.1:port".
type Addr struct {
	// ID is the container's ID as its agent announced it (Client.ID);
	// empty in forward mode.
	ID string
	// Port is the port the agent dialled, for the remote end; the local
	// end, the controller's, has none and is 0.
	Port int
}

// Network returns "gantry-agent".
func (a Addr) Network() string { return "gantry-agent" }

// String returns "127.0.0.1:port".
func (a Addr) String() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port)) }

// portConn is the net.Conn of a forward session.
type portConn struct {
	s             *clientSession
	local, remote Addr
	closed        chan struct{} // closed by Close
	rd, wd        *deadline

	readMu sync.Mutex // one Read at a time

	writeMu sync.Mutex // one Write at a time, so that writes never interleave
	wbuf    []byte     // a STDIN frame being built, under writeMu

	// sendMu orders the STDIN frames of Write with CloseWrite and Close,
	// so that STDIN_CLOSE and CLOSE follow every byte Write accepted.
	sendMu   sync.Mutex
	isClosed bool
	wClosed  bool
}

func (c *portConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "gantry-agent", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads what the port sent, crediting the agent as it goes.
func (c *portConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.stopped(c.rd); err != nil {
		return 0, c.opErr("read", err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	out := c.s.out[0]
	var data []byte
	for {
		var err error
		data, err = out.peekUntil(c.closed, c.rd.wait())
		if errors.Is(err, errGaveUp) {
			if err := c.stopped(c.rd); err != nil {
				return 0, c.opErr("read", err)
			}
			// The deadline moved on while Read waited.
			continue
		}
		if err == io.EOF {
			return 0, err
		}
		if err != nil {
			return 0, c.opErr("read", err)
		}
		break
	}
	n := copy(p, data)
	if g := out.release(n); g > 0 && c.live() {
		c.s.c.m.send(&frame{header: header{typ: frameCredit, session: c.s.id}, stream: streamStdout, amount: uint32(g)})
	}
	return n, nil
}

// stopped reports why an operation under deadline d may not go on: the
// connection is closed or the deadline has passed.
func (c *portConn) stopped(d *deadline) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if d.passed() {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c *portConn) live() bool {
	select {
	case <-c.s.ended:
		return false
	default:
		return true
	}
}

// ended is the error of a write to a session that is over: the agent's
// error, or EPIPE once the port's connection ended in order.
func (c *portConn) ended() error {
	if c.live() {
		return nil
	}
	if c.s.how.err != nil {
		return c.s.how.err
	}
	return syscall.EPIPE
}

// Write sends p to the port, as fast as the agent credits it.
func (c *portConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n := 0
	for {
		err := c.stopped(c.wd)
		if err == nil {
			c.sendMu.Lock()
			if c.wClosed {
				err = syscall.EPIPE
			}
			c.sendMu.Unlock()
		}
		if err == nil {
			err = c.ended()
		}
		if err != nil {
			return n, c.opErr("write", err)
		}
		if len(p) == 0 {
			return n, nil
		}
		k, err := c.s.stdin.take(min(len(p), MaxDataPayload), c.closed, c.wd.wait())
		if errors.Is(err, errSessionOver) {
			<-c.s.ended
		}
		if errors.Is(err, errGaveUp) || errors.Is(err, errSessionOver) {
			// The checks above say why.
			continue
		}
		if err != nil {
			return n, c.opErr("write", err)
		}
		if cap(c.wbuf) < headerLen+k {
			c.wbuf = make([]byte, headerLen+max(k, 32<<10))
		}
		msg := c.wbuf[:headerLen+k]
		putHeader(msg, frameStdin, c.s.id, k)
		copy(msg[headerLen:], p[:k])
		c.sendMu.Lock()
		if c.isClosed || c.wClosed {
			c.sendMu.Unlock()
			c.s.stdin.putBack(k)
			continue
		}
		err = c.s.c.m.write(msg)
		c.sendMu.Unlock()
		if err != nil {
			return n, c.opErr("write", fmt.Errorf("%w: %v", gantry.ErrUnavailable, err))
		}
		n += k
		p = p[k:]
	}
}

// CloseWrite shuts the connection's write side, as shutdown(2) does: the
// port reads EOF after everything written before.
func (c *portConn) CloseWrite() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.isClosed {
		return c.opErr("close", net.ErrClosed)
	}
	if c.wClosed {
		return nil
	}
	c.wClosed = true
	if !c.live() {
		return nil
	}
	if err := c.s.c.m.send(&frame{header: header{typ: frameStdinClose, session: c.s.id}}); err != nil {
		return c.opErr("close", fmt.Errorf("%w: %v", gantry.ErrUnavailable, err))
	}
	return nil
}

// Close closes the connection. Reads and writes under way return
// net.ErrClosed; the agent still writes to the port what was written
// before (giving up after forwardLinger if the port takes nothing), then
// closes its socket.
func (c *portConn) Close() error {
	c.sendMu.Lock()
	if c.isClosed {
		c.sendMu.Unlock()
		return c.opErr("close", net.ErrClosed)
	}
	c.isClosed = true
	close(c.closed)
	c.sendMu.Unlock()
	s := c.s
	if s.c.remove(s.id) != nil {
		s.c.m.send(&frame{header: header{typ: frameClose, session: s.id}})
	}
	s.end(sessionEnd{err: fmt.Errorf("agent: forward: %w", errSessionAbandoned)})
	c.rd.set(time.Time{})
	c.wd.set(time.Time{})
	return nil
}

func (c *portConn) LocalAddr() net.Addr  { return c.local }
func (c *portConn) RemoteAddr() net.Addr { return c.remote }

func (c *portConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *portConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(c.rd, t) }
func (c *portConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(c.wd, t) }

func (c *portConn) setDeadline(d *deadline, t time.Time) error {
	select {
	case <-c.closed:
		return c.opErr("set", net.ErrClosed)
	default:
	}
	d.set(t)
	return nil
}

// deadline is one deadline of a portConn: a channel closed once it has
// passed, which the operations it bounds wait on.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer // closes done; nil when no deadline is pending
	done  chan struct{}
}

func newDeadline() *deadline { return &deadline{done: make(chan struct{})} }

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// Its function has run or is running: let it close the channel
		// it holds before a new one replaces it.
		<-d.done
	}
	d.timer = nil
	select {
	case <-d.done:
		d.done = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.done)
		return
	}
	done := d.done
	d.timer = time.AfterFunc(wait, func() { close(done) })
}

// wait returns a channel closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}

func (d *deadline) passed() bool {
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}
