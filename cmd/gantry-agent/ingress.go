package main

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ingressDialWait is how long the bridge keeps trying to reach the
// command's port for a connection before it closes the connection: the
// server may not listen yet. A variable so that tests need not wait for
// it.
var ingressDialWait = 5 * time.Second

// ingressRetry is the pause between two dials of the command's port.
const ingressRetry = 20 * time.Millisecond

// ingress is the bridge of -ingress: it takes the connections the
// platform sends to its port and copies each to and from the command's
// port on 127.0.0.1.
type ingress struct {
	ln     net.Listener
	target string
	log    *zap.Logger
	closed chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startIngress listens on addr and bridges every connection to port
// on 127.0.0.1.
func startIngress(addr string, port int, log *zap.Logger) (*ingress, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &ingress{
		ln:     ln,
		target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		log:    log,
		closed: make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	b.wg.Go(b.serve)
	return b, nil
}

func (b *ingress) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !b.track(c) {
			c.Close()
			return
		}
		b.wg.Go(func() {
			defer b.untrack(c)
			b.bridge(c)
		})
	}
}

// track registers a connection so that Close can end it; false once
// the bridge is closed.
func (b *ingress) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.closed:
		return false
	default:
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *ingress) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
}

// dial reaches the command's port, trying again for ingressDialWait
// while nothing answers.
func (b *ingress) dial() net.Conn {
	deadline := time.Now().Add(ingressDialWait)
	for {
		d := net.Dialer{Deadline: deadline}
		up, err := d.Dial("tcp", b.target)
		if err == nil {
			return up
		}
		if time.Now().After(deadline) {
			b.log.Debug("ingress: nothing answers", zap.String("target", b.target), zap.Error(err))
			return nil
		}
		t := time.NewTimer(ingressRetry)
		select {
		case <-t.C:
		case <-b.closed:
			t.Stop()
			return nil
		}
	}
}

// bridge copies c to and from the command's port until both directions
// end, passing each side's end of output on as a half close.
func (b *ingress) bridge(c net.Conn) {
	up := b.dial()
	if up == nil {
		return
	}
	if !b.track(up) {
		up.Close()
		return
	}
	defer b.untrack(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		closeWrite(up)
	}()
	io.Copy(c, up)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		return
	}
	c.Close()
}

// Addr is the address the bridge listens on.
func (b *ingress) Addr() net.Addr { return b.ln.Addr() }

// Close stops listening, ends every bridged connection and returns once
// their goroutines have.
func (b *ingress) Close() {
	b.mu.Lock()
	select {
	case <-b.closed:
		b.mu.Unlock()
		return
	default:
	}
	close(b.closed)
	conns := make([]net.Conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	b.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	b.wg.Wait()
}
