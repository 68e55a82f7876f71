package agent

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestInstallCopies(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	content := bytes.Repeat([]byte("agent\x00"), 100000)
	os.WriteFile(src, content, 0o600)
	volume := filepath.Join(dir, "volume")
	os.Mkdir(volume, 0o755)
	dest := filepath.Join(volume, "gantry-agent")
	os.WriteFile(dest, []byte("an older copy"), 0o644)
	if err := Install(context.Background(), InstallOptions{Source: src, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	st, err := os.Stat(dest)
	if err != nil || !bytes.Equal(got, content) || st.Mode().Perm() != 0o755 {
		t.Fatalf("dest: %d bytes, mode %v, %v; want the source's %d bytes, mode 0755", len(got), st.Mode(), err, len(content))
	}
	if entries, _ := os.ReadDir(volume); len(entries) != 1 {
		t.Errorf("the volume holds %d files, want only the copy", len(entries))
	}
	// Its own executable by default.
	self := filepath.Join(volume, "self")
	if err := Install(context.Background(), InstallOptions{Dest: self}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(self); err != nil || st.Size() == 0 {
		t.Errorf("copy of the running executable: %v", err)
	}
}

func TestInstallErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("x"), 0o600)
	for name, opts := range map[string]InstallOptions{
		"no such directory": {Source: src, Dest: filepath.Join(dir, "missing", "agent")},
		"no such source":    {Source: filepath.Join(dir, "missing"), Dest: filepath.Join(dir, "agent")},
		"no destination":    {Source: src},
		"bad address":       {Source: src, Dest: filepath.Join(dir, "agent2"), Ready: "127.0.0.1:99999"},
	} {
		if err := Install(context.Background(), opts); err == nil {
			t.Errorf("%s: Install succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		// src and agent2, copied before the listen failed.
		t.Errorf("%d files left in %s, want 2", len(entries), dir)
	}
}

// startLifeline serves a lifeline listener and returns its address and
// a channel closed when serveLifeline returns.
func startLifeline(t *testing.T, ctx context.Context, wait time.Duration) (string, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveLifeline(ctx, ln, wait, zap.NewNop())
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serveLifeline did not return")
		}
	})
	return ln.Addr().String(), done
}

func ended(done <-chan struct{}, within time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}

func TestLifeline(t *testing.T) {
	addr, done := startLifeline(t, context.Background(), time.Minute)
	// Probes: connect and close, or send something else.
	for _, send := range []string{"", "", "GET / HTTP/1.1\r\n\r\n", "gantry-agent lifeline"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(send))
		c.Close()
	}
	if ended(done, 100*time.Millisecond) {
		t.Fatal("probes ended the sidecar")
	}
	stop := HoldLifeline(addr, nil)
	if ended(done, 100*time.Millisecond) {
		stop()
		t.Fatal("the sidecar ended while the lifeline was held")
	}
	// More probes change nothing.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
	}
	if ended(done, 50*time.Millisecond) {
		stop()
		t.Fatal("a probe after the lifeline ended the sidecar")
	}
	stop()
	if !ended(done, 5*time.Second) {
		t.Fatal("the lifeline closed and the sidecar stayed up")
	}
}

func TestLifelineWaitExpires(t *testing.T) {
	start := time.Now()
	addr, done := startLifeline(t, context.Background(), 200*time.Millisecond)
	// A probe does not count as the lifeline.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
	}
	if !ended(done, 5*time.Second) {
		t.Fatal("no lifeline came and the sidecar stayed up")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the wait of 200ms", d)
	}
}

func TestLifelineContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := startLifeline(t, ctx, time.Minute)
	stop := HoldLifeline(addr, nil)
	defer stop()
	cancel()
	if !ended(done, 5*time.Second) {
		t.Fatal("the context ended and the sidecar stayed up")
	}
}

// TestHoldLifelineRetries: the sidecar may start listening after the
// main container's agent starts; HoldLifeline keeps trying.
func TestHoldLifelineRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop := HoldLifeline(addr, nil)
	time.Sleep(250 * time.Millisecond)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		stop()
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveLifeline(context.Background(), ln, time.Minute, zap.NewNop())
	}()
	if ended(done, 300*time.Millisecond) {
		t.Fatal("the sidecar ended before the lifeline was released")
	}
	stop()
	if !ended(done, 5*time.Second) {
		t.Fatal("the lifeline, connected late, did not end the sidecar")
	}
}

// TestHoldLifelineUnreachable: a lifeline that cannot be reached costs
// the caller nothing; stop returns at once.
func TestHoldLifelineUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop := HoldLifeline(addr, nil)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("stop took %v", d)
	}
}
