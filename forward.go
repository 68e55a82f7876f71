package gantry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// PortForward is a local listener whose connections reach a TCP port
// inside a container, as kubectl port-forward's: ForwardPort makes one.
// Every connection it accepts is a new DialPort to the container's port,
// and bytes are copied both ways until both sides are done. An end of
// input on one side is passed on as a half-close (CloseWrite) of the
// other, so a client can send its request, close its writing side and
// still read the whole answer.
type PortForward struct {
	dialer PortDialer
	id     string
	port   int
	ln     net.Listener
	// ctx ends at Close, and with it every dial in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	err    error
}

// ForwardPort listens on 127.0.0.1 at a port the system picks and
// forwards every connection to TCP port port of container id, which must
// be running; see ForwardPortAt.
func ForwardPort(ctx context.Context, rt Runtime, id string, port int) (*PortForward, error) {
	return ForwardPortAt(ctx, rt, id, port, "127.0.0.1:0")
}

// ForwardPortAt listens on addr ("host:port", as net.Listen takes it) and
// forwards every connection it accepts to TCP port port of container id.
// The container is looked up once, here, and must be running (else
// ErrConflict); its full ID is what later connections dial, so a rename
// does not redirect them. ctx bounds this setup only: the forward runs
// until Close. A backend without PortDialer gives ErrNotSupported.
//
// A connection whose dial fails is closed at once; Err then reports why.
func ForwardPortAt(ctx context.Context, rt Runtime, id string, port int, addr string) (*PortForward, error) {
	if err := ValidatePort(port); err != nil {
		return nil, fmt.Errorf("forward port: %w", err)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("forward port: %w", &FieldError{Field: "addr", Value: addr, Reason: "must be host:port"})
	}
	d, ok := rt.(PortDialer)
	if !ok {
		return nil, unsupported(rt, "forward port")
	}
	c, err := rt.Inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, fmt.Errorf("forward port: %w: container %s is not running", ErrConflict, id)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("forward port: %w: %w", ErrUnavailable, err)
	}
	pf := &PortForward{dialer: d, id: c.ID, port: port, ln: ln, conns: map[net.Conn]struct{}{}}
	pf.ctx, pf.cancel = context.WithCancel(context.Background())
	pf.wg.Add(1)
	go pf.serve()
	return pf, nil
}

// Addr is the address the forward listens on: connect there.
func (pf *PortForward) Addr() net.Addr { return pf.ln.Addr() }

// Err returns the error of the latest connection that could not reach the
// container, or nil.
func (pf *PortForward) Err() error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.err
}

// Close stops listening, closes every forwarded connection (both ends) and
// returns once all the forward's goroutines have ended. Later calls do
// nothing and return nil.
func (pf *PortForward) Close() error {
	pf.mu.Lock()
	if pf.closed {
		pf.mu.Unlock()
		return nil
	}
	pf.closed = true
	for c := range pf.conns {
		c.Close()
	}
	pf.mu.Unlock()
	pf.cancel()
	err := pf.ln.Close()
	pf.wg.Wait()
	return err
}

// maxAcceptPause bounds the pause after a failed Accept (too many open
// files, say), as net/http's server pauses.
const maxAcceptPause = time.Second

func (pf *PortForward) serve() {
	defer pf.wg.Done()
	var pause time.Duration
	for {
		conn, err := pf.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || pf.ctx.Err() != nil {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), maxAcceptPause)
			select {
			case <-time.After(pause):
			case <-pf.ctx.Done():
				return
			}
			continue
		}
		pause = 0
		if !pf.track(conn) {
			conn.Close()
			return
		}
		pf.wg.Add(1)
		go pf.forward(conn)
	}
}

// track records c for Close; it reports false, leaving c to the caller,
// once the forward is closed.
func (pf *PortForward) track(c net.Conn) bool {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.closed {
		return false
	}
	pf.conns[c] = struct{}{}
	return true
}

func (pf *PortForward) untrack(c net.Conn) {
	pf.mu.Lock()
	delete(pf.conns, c)
	pf.mu.Unlock()
	c.Close()
}

// forward dials the container for one accepted connection and copies.
func (pf *PortForward) forward(local net.Conn) {
	defer pf.wg.Done()
	defer pf.untrack(local)
	remote, err := pf.dialer.DialPort(pf.ctx, pf.id, pf.port)
	if err != nil {
		if pf.ctx.Err() == nil {
			pf.mu.Lock()
			pf.err = err
			pf.mu.Unlock()
		}
		return
	}
	if !pf.track(remote) {
		remote.Close()
		return
	}
	defer pf.untrack(remote)
	pipe(local, remote)
}

// pipe copies a to b and b to a until both directions are done, passing an
// end of input on as a half-close (CloseWrite) where the other connection
// has one, and closing it where it has not. A read or write error closes
// both connections, which ends both directions.
func pipe(a, b net.Conn) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(b, a, abort)
	}()
	copyHalf(a, b, abort)
	<-done
}

// closeWriter is a connection whose writing side can be closed alone, as
// *net.TCPConn's.
type closeWriter interface{ CloseWrite() error }

// copyHalf copies src to dst. At src's end it half-closes dst (or closes
// it, without CloseWrite); on an error it calls abort.
func copyHalf(dst, src net.Conn, abort func()) {
	_, err := io.Copy(dst, src)
	if err != nil {
		abort()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}
