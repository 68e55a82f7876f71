package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Delivery into a container whose image lacks the agent: a sidecar
// container of the agent's image runs Install, which copies the agent's
// executable into a volume the two containers share and then answers the
// sidecar's TCP startup probe; the main container depends on the sidecar,
// so it starts once the copy is in place, and runs the copy as its
// entrypoint. The sidecar must then stay up while the main container
// runs (a job's task ends when its containers have exited) and no
// longer: the main container's agent holds a lifeline connection to it
// (HoldLifeline), and the sidecar exits when that connection closes.

// lifelineHello is what the main container's agent writes first on its
// lifeline: a connection that sent it is the lifeline, any other (a
// startup probe connects and closes at once) is not.
const lifelineHello = "gantry-agent lifeline\n"

// helloTimeout bounds the wait for a connection's first bytes.
const helloTimeout = 5 * time.Second

// lifelineDialFor is how long HoldLifeline keeps trying to reach the
// sidecar.
const lifelineDialFor = 10 * time.Second

// DefaultInstallWait is how long Install waits for the lifeline by
// default.
const DefaultInstallWait = 60 * time.Second

// InstallOptions configures Install.
type InstallOptions struct {
	// Dest is the path the executable is copied to, with mode 0755. Its
	// directory must exist.
	Dest string
	// Source is the executable to copy; empty means the running one.
	Source string
	// Ready is the TCP address ("host:port", ":port") to listen on once
	// the copy is in place, for a startup probe and the lifeline. Empty
	// means none: Install returns after the copy.
	Ready string
	// Wait is how long to wait for the lifeline before giving up on it
	// and returning; zero means DefaultInstallWait.
	Wait time.Duration
	// Logger receives diagnostics; nil means none.
	Logger *zap.Logger
}

// Install copies an executable to opts.Dest atomically (a reader of Dest
// sees no file or the whole of it, never part), then, with opts.Ready,
// listens there until the lifeline connection closes, ctx is done, or
// no lifeline arrived within opts.Wait. Each of those is a nil error:
// the sidecar's job is over. Connections that do not send the lifeline's
// hello, such as a startup probe's, are closed and change nothing. A
// failed copy or listen is an error.
func Install(ctx context.Context, opts InstallOptions) error {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	src := opts.Source
	if src == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("agent: install: finding the running executable: %w", err)
		}
		src = exe
	}
	if opts.Dest == "" {
		return errors.New("agent: install: no destination")
	}
	if err := copyExecutable(src, opts.Dest); err != nil {
		return fmt.Errorf("agent: install: %w", err)
	}
	log.Debug("agent installed", zap.String("dest", opts.Dest))
	if opts.Ready == "" {
		return nil
	}
	ln, err := net.Listen("tcp", opts.Ready)
	if err != nil {
		return fmt.Errorf("agent: install: %w", err)
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultInstallWait
	}
	serveLifeline(ctx, ln, wait, log)
	return nil
}

// copyExecutable writes src to a temporary file beside dest and renames
// it over dest.
func copyExecutable(src, dest string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// serveLifeline accepts connections on ln until the first lifeline
// closes, ctx is done, or no lifeline came within wait. It closes ln and
// every connection it accepted before it returns.
func serveLifeline(ctx context.Context, ln net.Listener, wait time.Duration, log *zap.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	var conns sync.WaitGroup
	defer func() {
		cancel()
		ln.Close()
		conns.Wait()
	}()
	lifelines := make(chan net.Conn)
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { greet(ctx, c, lifelines) })
		}
	})

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var c net.Conn
	select {
	case <-ctx.Done():
		return
	case <-timer.C:
		log.Info("no lifeline came; exiting", zap.Duration("wait", wait))
		return
	case c = <-lifelines:
	}
	log.Debug("lifeline connected", zap.String("peer", c.RemoteAddr().String()))
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	select {
	case <-ctx.Done():
	case <-closed:
		log.Debug("lifeline closed; exiting")
	}
	c.Close()
	<-closed
}

// greet reads a connection's first bytes: a lifeline is handed over, any
// other connection closed.
func greet(ctx context.Context, c net.Conn, lifelines chan<- net.Conn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	buf := make([]byte, len(lifelineHello))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != lifelineHello {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case lifelines <- c:
	case <-ctx.Done():
		c.Close()
	}
}

// HoldLifeline connects to the install sidecar listening on addr
// (retrying for up to 10 s while it cannot be reached), sends the
// lifeline's hello and holds the connection until stop is called (or
// the process exits), which ends the sidecar. Failing to reach it is
// logged and has no other effect. stop returns once the connection is
// closed and the retries have ended.
func HoldLifeline(addr string, log *zap.Logger) (stop func()) {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := dialLifeline(ctx, addr, log)
		if c == nil {
			return
		}
		<-ctx.Done()
		c.Close()
	}()
	return func() {
		cancel()
		<-done
	}
}

func dialLifeline(ctx context.Context, addr string, log *zap.Logger) net.Conn {
	ctx, cancel := context.WithTimeout(ctx, lifelineDialFor)
	defer cancel()
	var lastErr error
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			_, err = io.WriteString(c, lifelineHello)
			c.SetWriteDeadline(time.Time{})
			if err == nil {
				log.Debug("lifeline held", zap.String("addr", addr))
				return c
			}
			c.Close()
		}
		if lastErr == nil {
			log.Debug("lifeline not reachable yet; retrying", zap.String("addr", addr), zap.Error(err))
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				log.Warn("could not reach the install sidecar's lifeline address", zap.String("addr", addr), zap.Error(lastErr))
			}
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
