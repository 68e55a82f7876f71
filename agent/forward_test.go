package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"golang.org/x/net/nettest"
)

// tcpServer is a TCP server on 127.0.0.1 standing for one inside the
// container; it counts the connections it has open.
type tcpServer struct {
	port int
	open atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startTCPServer serves every connection with handle, which need not
// close it.
func startTCPServer(t testing.TB, handle func(c *net.TCPConn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &tcpServer{port: ln.Addr().(*net.TCPAddr).Port, conns: make(map[net.Conn]struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.open.Add(1)
			srv.mu.Lock()
			srv.conns[c] = struct{}{}
			srv.mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					srv.mu.Lock()
					delete(srv.conns, c)
					srv.mu.Unlock()
					srv.open.Add(-1)
				}()
				handle(c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		srv.mu.Lock()
		for c := range srv.conns {
			c.Close()
		}
		srv.mu.Unlock()
		wg.Wait()
	})
	return srv
}

func echo(c *net.TCPConn) { io.Copy(c, c) }

// freePort is a port nothing listens on, most likely.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func dialPort(t testing.TB, cl *Client, port int) net.Conn {
	t.Helper()
	c, err := cl.DialPort(context.Background(), port)
	if err != nil {
		t.Fatalf("DialPort(%d): %v", port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func closeWrite(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
}

// waitSessionsGone waits until the client has no session left: each
// forward ended with its EXIT or ERROR, or was closed.
func waitSessionsGone(t *testing.T, cl *Client) {
	t.Helper()
	waitFor(t, "the client's sessions to end", func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.sessions) == 0
	})
}

// TestDialPortEcho: bytes go to a TCP server in the container and come
// back, in every connection mode; a half-close from the client ends in
// EOF from the server and the session ends of itself.
func TestDialPortEcho(t *testing.T) {
	for _, mode := range connModes {
		t.Run(mode.name, func(t *testing.T) {
			srv := startTCPServer(t, echo)
			a := startAgent(t, Config{ID: "c1"})
			cl := mode.dial(t, a)
			c := dialPort(t, cl, srv.port)
			for _, msg := range []string{"hello", "world, once more"} {
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
					t.Fatalf("read %q, %v; want %q", got, err, msg)
				}
			}
			closeWrite(t, c)
			if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("Read after the server's EOF: %d, %v; want 0, io.EOF", n, err)
			}
			waitSessionsGone(t, cl)
			waitFor(t, "the server's connection to close", func() bool { return srv.open.Load() == 0 })
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v, want net.ErrClosed", err)
			}
			want := fmt.Sprintf("127.0.0.1:%d", srv.port)
			if got := c.RemoteAddr(); got.String() != want || got.Network() != "gantry-agent" || got.(Addr).ID != cl.ID() {
				t.Errorf("RemoteAddr %#v (%s %s), want %s on gantry-agent", got, got.Network(), got, want)
			}
			if got := c.LocalAddr(); got.String() != "127.0.0.1:0" || got.Network() != "gantry-agent" {
				t.Errorf("LocalAddr %s %s", got.Network(), got)
			}
		})
	}
}

// TestDialPortLargeBothWays moves a large pattern to an echo server and
// back through one forward, in every connection mode, once with a slow
// reader: every byte arrives, in order, in both directions.
func TestDialPortLargeBothWays(t *testing.T) {
	size := int64(64 << 20)
	if raceEnabled || testing.Short() {
		size = 4 << 20
	}
	for _, mode := range connModes {
		for _, slow := range []int64{0, 64 << 10} {
			if slow > 0 && mode.name != "forward" {
				continue
			}
			t.Run(fmt.Sprintf("%s/slow=%d", mode.name, slow), func(t *testing.T) {
				srv := startTCPServer(t, echo)
				a := startAgent(t, Config{ID: "c1"})
				cl := mode.dial(t, a)
				c := dialPort(t, cl, srv.port)
				werr := make(chan error, 1)
				go func() {
					err := writePattern(c, size)
					if err == nil {
						err = c.(interface{ CloseWrite() error }).CloseWrite()
					}
					werr <- err
				}()
				check := newPatternChecker(slow)
				if _, err := io.Copy(check, c); err != nil {
					t.Fatalf("reading: %v", err)
				}
				if err := <-werr; err != nil {
					t.Fatalf("writing: %v", err)
				}
				if check.off != size || check.bad >= 0 {
					t.Fatalf("got %d bytes back (first wrong byte at %d), want %d", check.off, check.bad, size)
				}
				waitSessionsGone(t, cl)
			})
		}
	}
}

// TestDialPortHalfClose: either side may shut its writing first and go
// on reading, as on TCP.
func TestDialPortHalfClose(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)

	t.Run("client first", func(t *testing.T) {
		// The server counts what it gets until EOF, then answers.
		srv := startTCPServer(t, func(c *net.TCPConn) {
			n, _ := io.Copy(io.Discard, c)
			fmt.Fprintf(c, "%d bytes", n)
		})
		c := dialPort(t, cl, srv.port)
		if err := writePattern(c, 1<<20); err != nil {
			t.Fatal(err)
		}
		closeWrite(t, c)
		if _, err := c.Write([]byte("x")); err == nil {
			t.Fatal("Write after CloseWrite succeeded")
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "1048576 bytes" {
			t.Fatalf("answer %q, %v", got, err)
		}
		waitSessionsGone(t, cl)
	})

	t.Run("server first", func(t *testing.T) {
		// The server sends a banner and shuts its side, then reads
		// what comes until EOF.
		got := make(chan string, 1)
		srv := startTCPServer(t, func(c *net.TCPConn) {
			c.Write([]byte("banner"))
			c.CloseWrite()
			b, _ := io.ReadAll(c)
			got <- string(b)
		})
		c := dialPort(t, cl, srv.port)
		banner, err := io.ReadAll(c)
		if err != nil || string(banner) != "banner" {
			t.Fatalf("banner %q, %v", banner, err)
		}
		// The port shut only its side: the session is still live.
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Write([]byte("reply after EOF")); err != nil {
			t.Fatalf("Write after the port's EOF: %v", err)
		}
		closeWrite(t, c)
		if s := <-got; s != "reply after EOF" {
			t.Fatalf("the server got %q", s)
		}
		waitSessionsGone(t, cl)
	})
}

// TestDialPortRefused: a port nothing listens on is gantry.ErrNotFound;
// a port out of range is refused by the client before anything is sent,
// and by the agent when a controller sends it anyway; a kind of session
// the agent does not know is not supported.
func TestDialPortRefused(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	ctx := context.Background()
	port := freePort(t)
	_, err := cl.DialPort(ctx, port)
	if !errors.Is(err, gantry.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("nothing listens on port %d", port)) {
		t.Fatalf("DialPort of a closed port: %v", err)
	}
	for _, p := range []int{0, -1, 65536} {
		if _, err := cl.DialPort(ctx, p); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("DialPort(%d): %v, want gantry.ErrInvalidArgument", p, err)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cl.DialPort(canceled, port); !errors.Is(err, context.Canceled) {
		t.Errorf("DialPort with a cancelled context: %v", err)
	}
	for _, tc := range []struct {
		req  openRequest
		want error
	}{
		{openRequest{Kind: "forward", Port: 70000}, gantry.ErrInvalidArgument},
		{openRequest{Kind: "forward", Port: 0}, gantry.ErrInvalidArgument},
		{openRequest{Kind: "forward", Port: -5}, gantry.ErrInvalidArgument},
		{openRequest{Kind: "teleport"}, gantry.ErrNotSupported},
	} {
		tc.req.Window = defaultWindow
		s, err := cl.open(&tc.req, "test")
		if err != nil {
			t.Fatal(err)
		}
		<-s.ended
		if !errors.Is(s.how.err, tc.want) {
			t.Errorf("OPEN %+v: %v, want %v", tc.req, s.how.err, tc.want)
		}
	}
	// The connection survived all of it.
	srv := startTCPServer(t, echo)
	c := dialPort(t, cl, srv.port)
	if _, err := c.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
}

// TestDialPortMany runs many forwards on one connection at once, each
// with its own bytes.
func TestDialPortMany(t *testing.T) {
	n, size := 64, 256<<10
	if raceEnabled {
		n = 24
	}
	srv := startTCPServer(t, echo)
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := cl.DialPort(context.Background(), srv.port)
			if err != nil {
				t.Errorf("forward %d: %v", i, err)
				return
			}
			defer c.Close()
			want := make([]byte, size)
			r := rand.NewChaCha8([32]byte{byte(i)})
			r.Read(want)
			go func() {
				c.Write(want)
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("forward %d: %d bytes back (equal: %v), %v", i, len(got), bytes.Equal(got, want), err)
			}
		})
	}
	wg.Wait()
	waitSessionsGone(t, cl)
	waitFor(t, "the server's connections to close", func() bool { return srv.open.Load() == 0 })
}

// TestDialPortIsAConn runs x/net's conformance tests of net.Conn on a
// forward against the server's end of its TCP connection: basic I/O,
// ping-pong, deadlines past, present and future, Close interrupting I/O,
// and every method at once.
func TestDialPortIsAConn(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	type held struct {
		c       *net.TCPConn
		release chan struct{}
	}
	accepted := make(chan held, 1)
	srv := startTCPServer(t, func(c *net.TCPConn) {
		h := held{c, make(chan struct{})}
		accepted <- h
		<-h.release
	})
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		c, err := cl.DialPort(context.Background(), srv.port)
		if err != nil {
			return nil, nil, nil, err
		}
		h := <-accepted
		return c, h.c, func() {
			c.Close()
			close(h.release)
		}, nil
	})
}

// TestDialPortDeadlines: a Read or Write that times out says so and
// loses nothing: Write reports exactly the bytes it sent, and they are
// what the port gets.
func TestDialPortDeadlines(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	startReading := make(chan struct{})
	got := make(chan []byte, 1)
	srv := startTCPServer(t, func(c *net.TCPConn) {
		<-startReading
		c.Write([]byte("late"))
		b, _ := io.ReadAll(c)
		got <- b
	})
	c := dialPort(t, cl, srv.port)

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := c.Read(make([]byte, 10))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %d, %v; want a timeout", n, err)
	}

	// Nothing reads at the port: the write fills the windows and
	// buffers on the way, then times out.
	big := make([]byte, 64<<20)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(big)
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	sent, err := c.Write(big)
	if !errors.As(err, &ne) || !ne.Timeout() || sent == 0 || sent == len(big) {
		t.Fatalf("Write past its deadline: %d of %d bytes, %v; want part, and a timeout", sent, len(big), err)
	}
	c.SetDeadline(time.Time{})
	close(startReading)
	late := make([]byte, 4)
	if _, err := io.ReadFull(c, late); err != nil || string(late) != "late" {
		t.Fatalf("Read after the deadline was lifted: %q, %v", late, err)
	}
	if _, err := c.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	closeWrite(t, c)
	want := append(big[:sent:sent], "tail"...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the port got %d bytes, want the %d written (equal prefix: %v)", len(b), len(want), bytes.HasPrefix(want, b))
	}
}

// TestDialPortCloseDeliversWritten: what was written before Close still
// reaches the port, which then reads EOF, as with a TCP socket's close.
func TestDialPortCloseDeliversWritten(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialReverse(t, a)
	got := make(chan int64, 1)
	srv := startTCPServer(t, func(c *net.TCPConn) {
		// Answer as well, so that the agent has output to discard.
		go io.Copy(c, strings.NewReader(strings.Repeat("x", 8<<20)))
		check := newPatternChecker(0)
		io.Copy(check, c)
		if check.bad >= 0 {
			got <- -1
			return
		}
		got <- check.off
	})
	c := dialPort(t, cl, srv.port)
	const size = 6 << 20
	if err := writePattern(c, size); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != size {
		t.Fatalf("the port got %d bytes before EOF, want %d", n, size)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetDeadline after Close: %v", err)
	}
}

// TestDialPortCloseLingers: input a port never reads is given up on
// forwardLinger after Close, and the agent closes the socket.
func TestDialPortCloseLingers(t *testing.T) {
	old := forwardLinger
	forwardLinger = 100 * time.Millisecond
	t.Cleanup(func() { forwardLinger = old })
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	startReading := make(chan struct{})
	got := make(chan int64, 1)
	srv := startTCPServer(t, func(c *net.TCPConn) {
		<-startReading
		n, _ := io.Copy(io.Discard, c)
		got <- n
	})
	c := dialPort(t, cl, srv.port)
	sent := fillUntilStuck(t, c)
	c.Close()
	time.Sleep(forwardLinger + 200*time.Millisecond)
	close(startReading)
	if n := <-got; n >= int64(sent) {
		t.Fatalf("the port got %d bytes of the %d written before Close; the agent did not give up", n, sent)
	}
	waitFor(t, "the server's connection to close", func() bool { return srv.open.Load() == 0 })
}

// fillUntilStuck writes to c until the agent has credited nothing for a
// second: the port takes nothing more, and input waits in the agent. A
// shorter quiet spell can be a loaded machine's pause, not a full port.
func fillUntilStuck(t *testing.T, c net.Conn) int {
	t.Helper()
	sent := 0
	chunk := make([]byte, 256<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write: %v", err)
			}
			if n == 0 {
				c.SetWriteDeadline(time.Time{})
				return sent
			}
		}
	}
}

// TestDialPortAgentCloseEndsForwards: closing the agent ends every
// forward: the client's reads fail, the port reads EOF, and Close does
// not wait for a port that takes nothing.
func TestDialPortAgentCloseEndsForwards(t *testing.T) {
	for _, mode := range connModes {
		t.Run(mode.name, func(t *testing.T) {
			a := startAgent(t, Config{ID: "c1"})
			cl := mode.dial(t, a)
			stuck := make(chan struct{})
			sink := startTCPServer(t, func(c *net.TCPConn) { <-stuck })
			t.Cleanup(func() { close(stuck) })
			srv := startTCPServer(t, echo)
			live := dialPort(t, cl, srv.port)
			full := dialPort(t, cl, sink.port)
			fillUntilStuck(t, full)
			// One closed by the client, lingering on input nothing reads.
			full.Close()
			readErr := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, live)
				readErr <- err
			}()
			start := time.Now()
			a.Close()
			if d := time.Since(start); d > forwardLinger/2 {
				t.Errorf("Agent.Close took %v", d)
			}
			if err := <-readErr; err == nil {
				t.Error("Read of a forward of a closed agent ended with EOF, want an error")
			}
			waitFor(t, "the echo server's connection to close", func() bool { return srv.open.Load() == 0 })
		})
	}
}

// TestDialPortReset: a port that resets its connection is an error of
// Read, after the bytes it sent first, and of Write.
func TestDialPortReset(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialForward(t, a)
	srv := startTCPServer(t, func(c *net.TCPConn) {
		c.Write([]byte("last words"))
		c.SetLinger(0)
		// Unread input makes the close a reset.
		io.ReadFull(c, make([]byte, 1))
	})
	c := dialPort(t, cl, srv.port)
	if _, err := c.Write([]byte("xx")); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("Read of a reset connection: %q, %v; want an error naming the reset", b, err)
	}
	if string(b) != "last words" {
		t.Errorf("read %q before the reset, want %q", b, "last words")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write to a reset connection succeeded")
	}
	waitSessionsGone(t, cl)
}

// TestForwardProtocolViolations: frames that have no meaning on a
// forward close the connection, on either side.
func TestForwardProtocolViolations(t *testing.T) {
	srv := startTCPServer(t, echo)
	for _, f := range []frame{
		{header: header{typ: frameSignal}, signal: 15},
		{header: header{typ: frameResize}, rows: 24, cols: 80},
	} {
		a := startAgent(t, Config{ID: "c1"})
		cl := dialForward(t, a)
		c := dialPort(t, cl, srv.port)
		f.session = c.(*portConn).s.id
		if err := cl.m.send(&f); err != nil {
			t.Fatal(err)
		}
		select {
		case <-cl.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("frame 0x%02x on a forward: the agent kept the connection", f.typ)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, gantry.ErrUnavailable) {
			t.Errorf("Read after the connection closed: %v", err)
		}
	}

	stderr := func(tr transport, open frame) {
		sendFrame(tr, frame{header: header{typ: frameStarted, session: open.session}, amount: defaultWindow})
		msg := make([]byte, headerLen+1)
		putHeader(msg, frameStderr, open.session, 1)
		tr.write(context.Background(), msg)
	}
	cl, err := Dial(context.Background(), impostorAgentServer(t, stderr), testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, err := cl.DialPort(context.Background(), 80)
	if err == nil {
		_, err = io.ReadAll(c)
	}
	if !errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("STDERR on a forward: %v, want the connection closed", err)
	}

	stdoutClose := func(tr transport, open frame) {
		sendFrame(tr, frame{header: header{typ: frameStarted, session: open.session}, amount: defaultWindow})
		sendFrame(tr, frame{header: header{typ: frameStdoutClose, session: open.session}})
	}
	cl, err = Dial(context.Background(), impostorAgentServer(t, stdoutClose), testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"true"}}); !errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("STDOUT_CLOSE on an exec: %v, want the connection closed", err)
	}
}
