package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// tokenGate stands in for the IAM check of a relay's or Hub's front end:
// it passes a request on only with exactly one Authorization header,
// "Bearer " and the token currently valid, and X-Static: s (which the
// agent sends from ConnectOptions.HTTPHeader), and refuses every other
// with 401.
type tokenGate struct {
	next  http.Handler
	valid atomic.Pointer[string]

	mu      sync.Mutex
	seen    []string // the Authorization of every request but a relay client's, in order
	clients int      // requests for a relay's /client
	refused int
}

func newTokenGate(next http.Handler, valid string) *tokenGate {
	g := &tokenGate{next: next}
	g.valid.Store(&valid)
	return g
}

func (g *tokenGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Values("Authorization")
	ok := len(auth) == 1 && auth[0] == "Bearer "+*g.valid.Load() && r.Header.Get("X-Static") == "s"
	g.mu.Lock()
	if r.URL.Path == "/client" {
		g.clients++
	} else {
		g.seen = append(g.seen, r.Header.Get("Authorization"))
	}
	if !ok {
		g.refused++
	}
	g.mu.Unlock()
	if !ok {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	g.next.ServeHTTP(w, r)
}

func (g *tokenGate) stats() (seen []string, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen), g.refused
}

func (g *tokenGate) clientCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clients
}

// tokenSource is a ConnectOptions.Header that sends the token the test
// last issued, and counts its calls.
type tokenSource struct {
	token atomic.Pointer[string]
	calls atomic.Int32
}

func (s *tokenSource) issue(tok string) { s.token.Store(&tok) }

func (s *tokenSource) header(ctx context.Context) (http.Header, error) {
	s.calls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("Header's context has no deadline")
	}
	return http.Header{"authorization": {"Bearer " + *s.token.Load()}}, nil
}

// staticHeader is the HTTPHeader the tests give alongside Header: its
// Authorization must be replaced, its X-Static kept.
func staticHeader() http.Header {
	return http.Header{"Authorization": {"Bearer stale"}, "X-Static": {"s"}}
}

func echoThrough(t *testing.T, cl *Client, s string) {
	t.Helper()
	var out bytes.Buffer
	res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", s}, Stdout: &out})
	if err != nil || res.ExitCode != 0 || out.String() != s+"\n" {
		t.Fatalf("echo %s: %+v, %v, %q", s, res, err, out.String())
	}
}

// TestConnectRelayFreshHeaderEachDial: the agent asks Header for its
// headers before every dial of the relay, so when the token the relay's
// front end accepts changes, the agent's next dial, refused while it
// still has the old token, gets through with the new one.
func TestConnectRelayFreshHeaderEachDial(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	rl, err := NewRelay(nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := newTokenGate(rl, "t1")
	srv := httptest.NewServer(gate)
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	base := wsURL(srv)
	u, err := RelayAgentURL(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	src := &tokenSource{}
	src.issue("t1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.ConnectRelay(ctx, u, &ConnectOptions{
			HTTPHeader: staticHeader(),
			Header:     src.header,
			MinBackoff: 10 * time.Millisecond,
			MaxBackoff: 50 * time.Millisecond,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConnectRelay: %v", err)
		}
	}()
	client := func() *Client {
		return mustDialRelay(t, base, "c1", testSecret, &DialOptions{HTTPHeader: http.Header{
			"Authorization": {"Bearer " + *gate.valid.Load()},
			"X-Static":      {"s"},
		}})
	}

	echoThrough(t, client(), "first")
	waitIdle(t, rl, "c1", 1)

	// The token rotates at the front end. The connection already open
	// still serves a client; the agent's next dial, with t1, is refused
	// until it is issued t2.
	t2 := "t2"
	gate.valid.Store(&t2)
	echoThrough(t, client(), "second")
	waitFor(t, "dials refused with the old token", func() bool {
		_, refused := gate.stats()
		return refused >= 3
	})
	if n := rl.idleCount("c1"); n != 0 {
		t.Fatalf("%d idle connections made with a refused token", n)
	}
	src.issue("t2")
	waitIdle(t, rl, "c1", 1)
	echoThrough(t, client(), "third")

	seen, _ := gate.stats()
	var agentTokens []string
	for _, s := range seen {
		if len(agentTokens) == 0 || agentTokens[len(agentTokens)-1] != s {
			agentTokens = append(agentTokens, s)
		}
	}
	if n := gate.clientCount(); n != 3 {
		t.Errorf("the gate saw %d clients, want 3", n)
	}
	// The agent never sent HTTPHeader's stale token.
	if slices.Contains(seen, "Bearer stale") {
		t.Errorf("the stale Authorization of HTTPHeader was sent: %q", seen)
	}
	if !slices.Equal(agentTokens, []string{"Bearer t1", "Bearer t2"}) {
		t.Errorf("tokens in order of use: %q, want Bearer t1 then Bearer t2", agentTokens)
	}
	// One Header call per dial, give or take the one under way.
	dials := len(seen)
	if calls := int(src.calls.Load()); calls < dials || calls > dials+1 {
		t.Errorf("Header called %d times for %d dials", calls, dials)
	}
}

// TestConnectHeaderErrorIsAFailedDial: an error from Header is logged as
// a failed attempt and retried after the backoff, and once Header works
// the agent connects to the Hub with its headers.
func TestConnectHeaderErrorIsAFailedDial(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	a := startAgent(t, Config{ID: "c1", Logger: zap.New(core)})
	hub := mustHub(t, testSecrets, nil)
	gate := newTokenGate(hub, "good")
	srv := httptest.NewServer(gate)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})

	const failures = 4
	const minBackoff = 20 * time.Millisecond
	var mu sync.Mutex
	var calls []time.Time
	header := func(ctx context.Context) (http.Header, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) <= failures {
			return nil, errors.New("metadata server unreachable")
		}
		return http.Header{"Authorization": {"Bearer good"}}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Connect(ctx, wsURL(srv), &ConnectOptions{
			HTTPHeader: staticHeader(),
			Header:     header,
			MinBackoff: minBackoff,
			MaxBackoff: time.Second,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Connect: %v", err)
		}
	}()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	cl, err := hub.Client(cctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	echoThrough(t, cl, "connected")

	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	if len(got) != failures+1 {
		t.Fatalf("Header called %d times, want %d failures and one success", len(got), failures)
	}
	// The backoff doubles from minBackoff, and waits at least half of it.
	for i := 1; i < len(got); i++ {
		if gap, least := got[i].Sub(got[i-1]), minBackoff<<(i-1)/2; gap < least {
			t.Errorf("attempt %d came %v after the one before, want at least %v", i+1, gap, least)
		}
	}
	if seen, refused := gate.stats(); len(seen) != 1 || refused != 0 {
		t.Errorf("the Hub's front end saw %q (%d refused), want only the successful dial", seen, refused)
	}
	failed := logs.FilterMessage("agent: dialing the hub failed").All()
	if len(failed) != failures {
		t.Fatalf("%d failed dials logged, want %d", len(failed), failures)
	}
	if msg := failed[0].ContextMap()["error"]; msg != "getting the request headers: metadata server unreachable" {
		t.Errorf("logged error %q", msg)
	}
}
