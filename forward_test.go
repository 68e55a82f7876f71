package gantry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// dialer is a Runtime with a PortDialer whose container "c" (full ID
// "c-full") listens on one local port: each port of the container is a
// local listener the test makes.
type dialer struct {
	gantry.Runtime
	running bool
	ports   map[int]string // container port -> local address
	mu      sync.Mutex
	dialed  []string
}

func (d *dialer) Capabilities() gantry.Capabilities { return nil }

func (d *dialer) Inspect(_ context.Context, id string) (*gantry.Container, error) {
	if id != "c" && id != "c-full" {
		return nil, fmt.Errorf("%w: %s", gantry.ErrNotFound, id)
	}
	return &gantry.Container{ID: "c-full", State: gantry.State{Running: d.running}}, nil
}

func (d *dialer) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, id)
	d.mu.Unlock()
	addr, ok := d.ports[port]
	if !ok {
		return nil, fmt.Errorf("%w: nothing listens on port %d", gantry.ErrNotFound, port)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

// server listens locally and serves each connection with f; it returns
// the address and a channel that receives each served connection's end.
func server(t *testing.T, f func(net.Conn)) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				f(c)
				// Whatever is left (nothing, or an end) tells how the
				// forward ended this side.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := io.Copy(io.Discard, c)
				ended <- err
			})
		}
	})
	return ln.Addr().String(), ended
}

// counter answers with the number of bytes it read, once its input ends:
// only a half-close lets a client read that answer.
func counter(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "read %d bytes\n", n)
	c.(*net.TCPConn).CloseWrite()
}

func forward(t *testing.T, rt gantry.Runtime) *gantry.PortForward {
	t.Helper()
	pf, err := gantry.ForwardPort(t.Context(), rt, "c", 5432)
	if err != nil {
		t.Fatalf("ForwardPort: %v", err)
	}
	t.Cleanup(func() { pf.Close() })
	return pf
}

// exchange sends msg through the forward, half-closes and reads the
// whole answer.
func exchange(t *testing.T, addr net.Addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial the forward: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(got)
}

func TestForwardPortHalfCloses(t *testing.T) {
	addr, _ := server(t, counter)
	rt := &dialer{running: true, ports: map[int]string{5432: addr}}
	pf := forward(t, rt)
	if a, ok := pf.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() || a.Port == 0 {
		t.Errorf("Addr() = %v, want 127.0.0.1 and a port", pf.Addr())
	}
	big := strings.Repeat("x", 1<<20)
	if got, want := exchange(t, pf.Addr(), big), "read 1048576 bytes\n"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.dialed) != 1 || rt.dialed[0] != "c-full" {
		t.Errorf("the forward dialled %q, want the full ID c-full once", rt.dialed)
	}
}

func TestForwardPortConcurrentConnections(t *testing.T) {
	addr, _ := server(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	pf := forward(t, &dialer{running: true, ports: map[int]string{5432: addr}})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			msg := fmt.Sprintf("connection %d\n", i)
			if got := exchange(t, pf.Addr(), msg); got != msg {
				t.Errorf("echo %q, want %q", got, msg)
			}
		})
	}
	wg.Wait()
}

func TestForwardPortCloseEndsEverything(t *testing.T) {
	addr, ended := server(t, func(c net.Conn) { c.Write([]byte("hello\n")) })
	pf := forward(t, &dialer{running: true, ports: map[int]string{5432: addr}})
	c, err := net.Dial("tcp", pf.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line := make([]byte, 6)
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "hello\n" {
		t.Fatalf("read %q, %v; want hello", line, err)
	}
	if err := pf.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Both ends of the open connection are closed: the client reads the
	// end, and the container's side sees its input end.
	if n, err := c.Read(line); err == nil {
		t.Errorf("after Close the client read %q, want the connection closed", line[:n])
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("the container's side ended with %v, want a clean end of input", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the container's side of a forwarded connection was not closed by Close")
	}
	if c2, err := net.Dial("tcp", pf.Addr().String()); err == nil {
		c2.Close()
		t.Error("the forward still accepts connections after Close")
	}
	if err := pf.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestForwardPortDialFailure(t *testing.T) {
	pf := forward(t, &dialer{running: true})
	c, err := net.Dial("tcp", pf.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d bytes, %v from a connection the container refused; want it closed", n, err)
	}
	if err := pf.Err(); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("Err() = %v, want the dial's ErrNotFound", err)
	}
}

func TestForwardPortRefuses(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		rt   gantry.Runtime
		id   string
		port int
		want error
	}{
		{"no PortDialer", &bare{}, "c", 80, gantry.ErrNotSupported},
		{"port 0", &dialer{running: true}, "c", 0, gantry.ErrInvalidArgument},
		{"port 65536", &dialer{running: true}, "c", 65536, gantry.ErrInvalidArgument},
		{"not running", &dialer{}, "c", 80, gantry.ErrConflict},
		{"no such container", &dialer{running: true}, "d", 80, gantry.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			pf, err := gantry.ForwardPort(ctx, c.rt, c.id, c.port)
			if err == nil {
				pf.Close()
			}
			if !errors.Is(err, c.want) {
				t.Errorf("ForwardPort: %v, want %v", err, c.want)
			}
		})
	}
}

func TestForwardPortAtAddress(t *testing.T) {
	addr, _ := server(t, counter)
	pf, err := gantry.ForwardPortAt(t.Context(), &dialer{running: true, ports: map[int]string{5432: addr}}, "c", 5432, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if got := exchange(t, pf.Addr(), "abc"); got != "read 3 bytes\n" {
		t.Errorf("answer %q", got)
	}
	if _, err := gantry.ForwardPortAt(t.Context(), &dialer{running: true}, "c", 5432, "not an address"); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("ForwardPortAt(malformed address): %v, want ErrInvalidArgument", err)
	}
	if _, err := gantry.ForwardPortAt(t.Context(), &dialer{running: true}, "c", 5432, pf.Addr().String()); !errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("ForwardPortAt(an address in use): %v, want ErrUnavailable", err)
	}
}

func TestDialPortHelper(t *testing.T) {
	ctx := context.Background()
	if _, err := gantry.DialPort(ctx, &bare{}, "c", 80); !errors.Is(err, gantry.ErrNotSupported) || !strings.HasPrefix(err.Error(), "dial port") {
		t.Errorf("DialPort without PortDialer: %v, want ErrNotSupported naming the operation", err)
	}
	if _, err := gantry.DialPort(ctx, &dialer{}, "c", -1); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("DialPort(-1): %v, want ErrInvalidArgument", err)
	}
	addr, _ := server(t, counter)
	c, err := gantry.DialPort(ctx, &dialer{ports: map[int]string{7: addr}}, "c", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	c.Write([]byte("four"))
	c.(*net.TCPConn).CloseWrite()
	io.Copy(&buf, c)
	if buf.String() != "read 4 bytes\n" {
		t.Errorf("answer %q", buf.String())
	}
}
