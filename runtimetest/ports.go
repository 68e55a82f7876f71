package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// freePort returns a TCP port nothing listens on at this moment. A
// container of a backend that runs host processes listens on this host,
// so its port must be free here; any port suits the others.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// portSpec is s.spec of script, declaring port in Spec.Ports where the
// backend takes ports: a backend that publishes them (Docker's) reaches
// only those, and one that refuses them (a Cloud Run job) may still dial
// a port through an agent inside the container.
func (s *suite) portSpec(script string, port int) gantry.Spec {
	spec := s.spec(newTag(), script)
	if s.caps.Supported(gantry.FeaturePorts) {
		spec.Ports = []gantry.Port{{Port: port}}
	}
	return spec
}

// scriptEcho serves a TCP echo on a port: each connection gets cat, which
// sends back what it reads and ends at the end of its input. It uses
// busybox's nc (-ll keeps listening) where busybox is on the PATH, and nc
// otherwise.
func scriptEcho(port int) string {
	return fmt.Sprintf(`echo ready; if command -v busybox >/dev/null; then exec busybox nc -ll -p %[1]d -e cat; fi; exec nc -ll -p %[1]d -e cat`, port)
}

// echoOnce sends msg on c, half-closes it and reads the whole answer.
func echoOnce(c net.Conn, msg string, deadline time.Time) (string, error) {
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, msg); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return "", fmt.Errorf("the connection (%T) cannot half-close", c)
	}
	if err := cw.CloseWrite(); err != nil {
		return "", fmt.Errorf("CloseWrite: %w", err)
	}
	got, err := io.ReadAll(c)
	return string(got), err
}

// awaitEcho repeats dial-and-echo until the echo comes back (the server
// may not listen yet when the container has just started), and fails t
// when it never does.
func (s *suite) awaitEcho(t *testing.T, rt gantry.Runtime, id, what string, dial func(context.Context) (net.Conn, error)) {
	t.Helper()
	msg := "hello through " + what + "\n"
	var last string
	err := s.poll(s.ctx(t), func() (bool, error) {
		ctx, cancel := context.WithTimeout(s.ctx(t), 5*time.Second+s.h.Latency)
		defer cancel()
		c, err := dial(ctx)
		if err != nil {
			return false, err
		}
		got, err := echoOnce(c, msg, time.Now().Add(5*time.Second+s.h.Latency))
		last = got
		return err == nil && got == msg, err
	})
	if err != nil || last != msg {
		t.Fatalf("echo through %s: got %q, want %q: %v%s", what, last, msg, err, lastLines(rt, id))
	}
}

func (s *suite) testPorts(t *testing.T) {
	s.require(t, gantry.FeaturePortForward)

	t.Run("DialPort", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		port := freePort(t)
		c := Start(t, rt, s.portSpec(scriptEcho(port), port))
		dial := func(ctx context.Context) (net.Conn, error) { return gantry.DialPort(ctx, rt, c.ID, port) }
		s.awaitEcho(t, rt, c.ID, "DialPort", dial)
		// Once it listens, connections at once are answered each on its
		// own.
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				conn, err := dial(s.ctx(t))
				if err != nil {
					t.Errorf("DialPort %d: %v", i, err)
					return
				}
				msg := fmt.Sprintf("connection %d\n", i)
				if got, err := echoOnce(conn, msg, time.Now().Add(s.patience)); err != nil || got != msg {
					t.Errorf("echo on connection %d: %q, %v; want %q", i, got, err, msg)
				}
			})
		}
		wg.Wait()
	})

	t.Run("ForwardPort", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		port := freePort(t)
		c := Start(t, rt, s.portSpec(scriptEcho(port), port))
		pf, err := gantry.ForwardPort(s.ctx(t), rt, c.Name, port)
		if err != nil {
			t.Fatalf("ForwardPort: %v", err)
		}
		defer pf.Close()
		var d net.Dialer
		s.awaitEcho(t, rt, c.ID, "ForwardPort", func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", pf.Addr().String())
		})
		// A connection open when the forward closes is closed with it.
		open, err := d.DialContext(s.ctx(t), "tcp", pf.Addr().String())
		if err != nil {
			t.Fatalf("dial the forward: %v", err)
		}
		defer open.Close()
		if err := pf.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		open.SetDeadline(time.Now().Add(s.patience))
		if n, err := open.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection open across Close read %d bytes, want it closed", n)
		}
		if c, err := d.DialContext(s.ctx(t), "tcp", pf.Addr().String()); err == nil {
			c.Close()
			t.Error("the forward accepts connections after Close")
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		port := freePort(t)
		c := Create(t, rt, s.portSpec("exit 0", port))
		check := func(state string) {
			t.Helper()
			if conn, err := gantry.DialPort(s.ctx(t), rt, c.ID, port); !errors.Is(err, gantry.ErrConflict) {
				if err == nil {
					conn.Close()
				}
				t.Errorf("DialPort to a %s container: %v, want ErrConflict", state, err)
			}
			if pf, err := gantry.ForwardPort(s.ctx(t), rt, c.ID, port); !errors.Is(err, gantry.ErrConflict) {
				if err == nil {
					pf.Close()
				}
				t.Errorf("ForwardPort to a %s container: %v, want ErrConflict", state, err)
			}
		}
		check("created")
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		s.exited(t, rt, c.ID)
		check("exited")
	})

	t.Run("NothingListens", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		port := freePort(t)
		c := Start(t, rt, s.portSpec(scriptForever, port))
		RequireLog(t, rt, c.ID, "ready", s.patience)
		conn, err := gantry.DialPort(s.ctx(t), rt, c.ID, port)
		if err != nil {
			if !errors.Is(err, gantry.ErrNotFound) {
				t.Errorf("DialPort to a port nothing listens on: %v, want ErrNotFound (the connection refused)", err)
			}
			return
		}
		// A backend whose proxy accepts first (Docker's) closes the
		// connection once the container refuses it: no byte comes.
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(s.patience))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection to a port nothing listens on read %d bytes, want it closed (or DialPort to fail with ErrNotFound)", n)
		}
	})
}
