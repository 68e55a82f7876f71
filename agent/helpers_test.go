package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// The test binary doubles as a fast, deterministic output generator:
// GANTRY_TEST_GEN=N makes it write N bytes of pattern to stdout.
func TestMain(m *testing.M) {
	if n := os.Getenv("GANTRY_TEST_GEN"); n != "" {
		size, _ := strconv.ParseInt(n, 10, 64)
		if err := writePattern(os.Stdout, size); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const patternBlock = 64 << 10

// patternBase is pseudo-random so that shifted or repeated data cannot
// look right; each block also carries its index, so dropped or reordered
// blocks are caught.
var patternBase = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, patternBlock)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func patternBlockAt(i int64) []byte {
	b := append([]byte(nil), patternBase...)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func writePattern(f io.Writer, size int64) error {
	const perWrite = 16
	buf := make([]byte, perWrite*patternBlock)
	for i := 0; i < perWrite; i++ {
		copy(buf[i*patternBlock:], patternBase)
	}
	var blk int64
	for size > 0 {
		for i := 0; i < perWrite; i++ {
			binary.BigEndian.PutUint64(buf[i*patternBlock:], uint64(blk+int64(i)))
		}
		n := min(int64(len(buf)), size)
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
		blk += perWrite
	}
	return nil
}

// patternChecker is an io.Writer that verifies the pattern as it arrives,
// optionally sleeping to play a slow reader.
type patternChecker struct {
	off        int64
	bad        int64 // offset of the first wrong byte, or -1
	cur        []byte
	curBlk     int64
	slowEvery  int64
	sinceSleep int64
}

func newPatternChecker(slowEvery int64) *patternChecker {
	return &patternChecker{bad: -1, curBlk: -1, slowEvery: slowEvery}
}

func (c *patternChecker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		blk := c.off / patternBlock
		if blk != c.curBlk {
			c.cur, c.curBlk = patternBlockAt(blk), blk
		}
		in := c.off % patternBlock
		k := min(len(p), patternBlock-int(in))
		if c.bad < 0 && !bytes.Equal(p[:k], c.cur[in:int(in)+k]) {
			c.bad = c.off
		}
		c.off += int64(k)
		p = p[k:]
	}
	if c.slowEvery > 0 {
		c.sinceSleep += int64(n)
		if c.sinceSleep >= c.slowEvery {
			c.sinceSleep = 0
			time.Sleep(time.Millisecond)
		}
	}
	return n, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent starts an in-process agent; by default its main command is
// cat on an open stdin, which runs until the test ends.
func startAgent(t testing.TB, cfg Config) *Agent {
	t.Helper()
	if cfg.Cmd == nil {
		cfg.Cmd = []string{"cat"}
		cfg.OpenStdin = true
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	a, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		a.Close()
		a.Signal(syscall.SIGKILL)
		a.Wait()
	})
	return a
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dialForward serves a in forward mode and dials it.
func dialForward(t testing.TB, a *Agent) *Client {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	cl, err := Dial(context.Background(), wsURL(srv), testSecret, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// dialReverse makes a connect to a Hub and returns the Hub's client.
func dialReverse(t testing.TB, a *Agent) *Client {
	t.Helper()
	hub, srv := newHub(t)
	connect(t, a, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := hub.Client(ctx, "c1")
	if err != nil {
		t.Fatalf("Hub.Client: %v", err)
	}
	return cl
}

// testSecrets knows one container, c1, with testSecret.
func testSecrets(id string) []byte {
	if id == "c1" {
		return testSecret
	}
	return nil
}

// mustHub returns a Hub or fails the test.
func mustHub(t testing.TB, secret func(string) []byte, opts *HubOptions) *Hub {
	t.Helper()
	hub, err := NewHub(secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	return hub
}

// mustEndpoint returns rawURL's endpoint or fails the test.
func mustEndpoint(t testing.TB, rawURL string) string {
	t.Helper()
	ep, err := endpointOf(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func newHub(t testing.TB) (*Hub, *httptest.Server) {
	hub := mustHub(t, testSecrets, nil)
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return hub, srv
}

func connect(t testing.TB, a *Agent, srv *httptest.Server) {
	connectURL(t, a, wsURL(srv))
}

func connectURL(t testing.TB, a *Agent, url string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Connect(ctx, url, &ConnectOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// modes runs f once per connection mode.
func modes(t *testing.T, cfg Config, f func(t *testing.T, a *Agent, cl *Client)) {
	for _, m := range []struct {
		name string
		dial func(testing.TB, *Agent) *Client
	}{{"forward", dialForward}, {"reverse", dialReverse}} {
		t.Run(m.name, func(t *testing.T) {
			cfg := cfg
			if cfg.ID == "" {
				cfg.ID = "c1"
			}
			a := startAgent(t, cfg)
			f(t, a, m.dial(t, a))
		})
	}
}

// connModes are the ways a client reaches the agent: forward (it dials
// the agent), reverse (the agent dials a Hub) and relay (both dial a
// Relay, which pairs them and copies messages), all over loopback.
var connModes = []struct {
	name string
	dial func(testing.TB, *Agent) *Client
}{{"forward", dialForward}, {"reverse", dialReverse}, {"relay", dialRelayed}}

// processGone reports whether pid no longer exists (reaped).
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func genEnv(n int64) []string {
	return []string{"GANTRY_TEST_GEN=" + fmt.Sprint(n)}
}
