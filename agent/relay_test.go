package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/gantryhq/gantry"
)

// startRelay serves a Relay on a loopback test server and returns it
// with its base URL (ws://127.0.0.1:port).
func startRelay(t testing.TB, opts *RelayOptions) (*Relay, string) {
	t.Helper()
	rl, err := NewRelay(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	return rl, wsURL(srv)
}

// connectRelay runs a.ConnectRelay to the relay at base as container id
// until the test ends.
func connectRelay(t testing.TB, a *Agent, base, id string) {
	t.Helper()
	u, err := RelayAgentURL(base, id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.ConnectRelay(ctx, u, &ConnectOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConnectRelay: %v", err)
		}
	})
}

// dialRelayed puts a through a new relay and dials it there.
func dialRelayed(t testing.TB, a *Agent) *Client {
	t.Helper()
	_, base := startRelay(t, nil)
	connectRelay(t, a, base, "c1")
	return mustDialRelay(t, base, "c1", testSecret, nil)
}

func mustDialRelay(t testing.TB, base, id string, secret []byte, opts *DialOptions) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := DialRelay(ctx, base, id, secret, opts)
	if err != nil {
		t.Fatalf("DialRelay: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// waitIdle waits until the relay holds n idle connections for id.
func waitIdle(t *testing.T, rl *Relay, id string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d idle connections of %q", n, id), func() bool { return rl.idleCount(id) == n })
}

func TestRelayExec(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	cl := dialRelayed(t, a)
	ctx := context.Background()

	var out, errb bytes.Buffer
	res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: &out, Stderr: &errb})
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("Exec = %+v, %v; want exit code 3", res, err)
	}
	if out.String() != "out\n" || errb.String() != "err\n" {
		t.Errorf("stdout %q stderr %q, want \"out\\n\" and \"err\\n\"", out.String(), errb.String())
	}

	out.Reset()
	in := strings.Repeat("relayed input\n", 20000)
	res, err = cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"cat"}, Stdin: strings.NewReader(in), Stdout: &out})
	if err != nil || res.ExitCode != 0 || out.String() != in {
		t.Errorf("cat of %d bytes: %+v, %v, %d bytes back", len(in), res, err, out.Len())
	}

	resize := make(chan gantry.TerminalSize, 1)
	resize <- gantry.TerminalSize{Rows: 24, Cols: 80}
	tty := &syncBuffer{}
	res, err = cl.Exec(ctx, gantry.ExecConfig{
		Cmd:    []string{"sh", "-c", `test -t 0 && test -t 1 && echo tty; stty size; read x; echo "got $x"; exit 4`},
		Tty:    true,
		Resize: resize,
		Stdin:  strings.NewReader("hi\n"),
		Stdout: tty,
	})
	got := strings.ReplaceAll(tty.String(), "\r\n", "\n")
	if err != nil || res.ExitCode != 4 || !strings.Contains(got, "tty\n") || !strings.Contains(got, "24 80\n") || !strings.HasSuffix(got, "got hi\n") {
		t.Errorf("TTY exec = %+v, %v, output %q", res, err, got)
	}
	if cl.ID() != "c1" {
		t.Errorf("ID() = %q, want c1", cl.ID())
	}
}

func TestRelayClientsOneAfterAnotherAndAtOnce(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	rl, base := startRelay(t, nil)
	connectRelay(t, a, base, "c1")
	ctx := context.Background()
	echo := func(cl *Client, s string) error {
		var out bytes.Buffer
		res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"echo", s}, Stdout: &out})
		if err != nil || res.ExitCode != 0 || out.String() != s+"\n" {
			return fmt.Errorf("echo %s: %+v, %v, %q", s, res, err, out.String())
		}
		return nil
	}
	for i := range 3 {
		cl := mustDialRelay(t, base, "c1", testSecret, nil)
		if err := echo(cl, fmt.Sprint("one after another ", i)); err != nil {
			t.Error(err)
		}
		cl.Close()
	}

	const n = 6
	clients := make([]*Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if clients[i], errs[i] = DialRelay(dctx, base, "c1", testSecret, nil); errs[i] == nil {
				errs[i] = echo(clients[i], fmt.Sprint("at once ", i))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	// Every client holds its own connection; they all work side by side.
	for i, cl := range clients {
		if cl == nil {
			continue
		}
		if err := echo(cl, fmt.Sprint("again ", i)); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		cl.Close()
	}
	// The agent keeps exactly one idle connection in the end.
	waitIdle(t, rl, "c1", 1)
}

// TestRelayWrongSecret: a wrong secret on either side gets nothing, and
// the error says authentication failed.
func TestRelayWrongSecret(t *testing.T) {
	wrong := bytes.Repeat([]byte{'w'}, 32)
	check := func(t *testing.T, cl *Client, err error) {
		t.Helper()
		if cl != nil || !errors.Is(err, gantry.ErrPermissionDenied) || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("DialRelay = %v, %v; want no client and an authentication failure", cl, err)
		}
	}
	t.Run("client", func(t *testing.T) {
		a := startAgent(t, Config{ID: "c1"})
		_, base := startRelay(t, nil)
		connectRelay(t, a, base, "c1")
		cl, err := DialRelay(context.Background(), base, "c1", wrong, nil)
		check(t, cl, err)
		// The agent's next idle connection serves the right secret.
		good := mustDialRelay(t, base, "c1", testSecret, nil)
		var b bytes.Buffer
		if res, err := good.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", "ok"}, Stdout: &b}); err != nil || res.ExitCode != 0 || b.String() != "ok\n" {
			t.Errorf("Exec with the right secret = %+v, %v, %q", res, err, b.String())
		}
	})
	t.Run("agent", func(t *testing.T) {
		a := startAgent(t, Config{ID: "c1", Secret: wrong})
		_, base := startRelay(t, nil)
		connectRelay(t, a, base, "c1")
		cl, err := DialRelay(context.Background(), base, "c1", testSecret, nil)
		check(t, cl, err)
	})
	t.Run("container", func(t *testing.T) {
		// The agent of another container, reached under this one's ID, is
		// refused even with the same secret: the ID is bound too.
		a := startAgent(t, Config{ID: "c2"})
		_, base := startRelay(t, nil)
		u, _ := RelayAgentURL(base, "c1")
		connectRelayURL(t, a, u)
		cl, err := DialRelay(context.Background(), base, "c1", testSecret, nil)
		check(t, cl, err)
	})
	t.Run("endpoint", func(t *testing.T) {
		// A client that names the relay differently from the agent binds
		// another endpoint, and is refused: an agent is reachable only
		// through the relay URL it dialled.
		a := startAgent(t, Config{ID: "c1"})
		_, base := startRelay(t, nil)
		connectRelay(t, a, base, "c1")
		other := strings.Replace(base, "127.0.0.1", "localhost", 1)
		cl, err := DialRelay(context.Background(), other, "c1", testSecret, nil)
		check(t, cl, err)
	})
}

func connectRelayURL(t testing.TB, a *Agent, u string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.ConnectRelay(ctx, u, &ConnectOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestRelayAuthorize: a client that Authorize refuses gets 401 or 403
// before any upgrade, reaches no agent, and leaves the agent's idle
// connection to the next client.
func TestRelayAuthorize(t *testing.T) {
	rl, err := NewRelay(&RelayOptions{Authorize: func(r *http.Request) error {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			return nil
		case "":
			return errors.New("no token")
		}
		return fmt.Errorf("token refused: %w", gantry.ErrPermissionDenied)
	}})
	if err != nil {
		t.Fatal(err)
	}
	var agentDials atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/agent" {
			agentDials.Add(1)
		}
		rl.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	base := wsURL(srv)
	a := startAgent(t, Config{ID: "c1"})
	connectRelay(t, a, base, "c1")
	waitIdle(t, rl, "c1", 1)

	for _, c := range []struct {
		token  string
		status int
	}{{"", http.StatusUnauthorized}, {"Bearer bad", http.StatusForbidden}} {
		req, _ := http.NewRequest("GET", srv.URL+"/client?id=c1", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Protocol", subprotocol)
		if c.token != "" {
			req.Header.Set("Authorization", c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("token %q: HTTP %d, want %d", c.token, resp.StatusCode, c.status)
		}

		h := http.Header{}
		if c.token != "" {
			h.Set("Authorization", c.token)
		}
		cl, err := DialRelay(context.Background(), base, "c1", testSecret, &DialOptions{HTTPHeader: h})
		if cl != nil || !errors.Is(err, gantry.ErrPermissionDenied) || !strings.Contains(err.Error(), fmt.Sprint(c.status)) {
			t.Errorf("DialRelay with token %q = %v, %v; want a refusal with HTTP %d", c.token, cl, err, c.status)
		}
	}
	if n := agentDials.Load(); n != 1 || rl.idleCount("c1") != 1 {
		t.Errorf("after refused clients: %d agent dials and %d idle connections, want 1 and 1", n, rl.idleCount("c1"))
	}
	cl := mustDialRelay(t, base, "c1", testSecret, &DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer good"}}})
	var out bytes.Buffer
	if res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", "in"}, Stdout: &out}); err != nil || res.ExitCode != 0 || out.String() != "in\n" {
		t.Errorf("Exec = %+v, %v, %q", res, err, out.String())
	}
}

// TestRelayImpostorAgent: a party that queues a connection under a
// container's ID before its agent does, without the secret, makes the
// client that meets it fail its handshake; the genuine agent is still
// reachable by the next client.
func TestRelayImpostorAgent(t *testing.T) {
	rl, base := startRelay(t, nil)
	u, _ := RelayAgentURL(base, "c1")
	ep := mustEndpoint(t, u)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, raw, _, err := dialWebSocket(ctx, u, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	imp := newWSTransport(c, raw)
	impostor := make(chan error, 1)
	go func() {
		err := agentHandshake(ctx, imp, bytes.Repeat([]byte{'i'}, 32), modeReverse, "c1", binding{dialled: ep})
		imp.close(true)
		impostor <- err
	}()
	waitIdle(t, rl, "c1", 1)

	a := startAgent(t, Config{ID: "c1"})
	connectRelay(t, a, base, "c1")
	waitIdle(t, rl, "c1", 2)

	cl, err := DialRelay(context.Background(), base, "c1", testSecret, nil)
	if cl != nil || !errors.Is(err, gantry.ErrPermissionDenied) {
		t.Fatalf("DialRelay meeting the impostor = %v, %v; want an authentication failure", cl, err)
	}
	if err := <-impostor; err == nil {
		t.Error("the impostor completed a handshake")
	}
	cl = mustDialRelay(t, base, "c1", testSecret, nil)
	var b bytes.Buffer
	if res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", "genuine"}, Stdout: &b}); err != nil || res.ExitCode != 0 || b.String() != "genuine\n" {
		t.Errorf("Exec on the genuine agent = %+v, %v, %q", res, err, b.String())
	}
}

// rawRelayConn dials the relay at path with the package's subprotocol,
// as a peer that speaks no protocol at all.
func rawRelayConn(t *testing.T, base, path string) *websocket.Conn {
	t.Helper()
	c, _, _, err := dialWebSocket(context.Background(), base+path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(maxMessage)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

type wsMessage struct {
	typ websocket.MessageType
	b   []byte
}

// TestRelayCopiesMessagesUnchanged: the relay passes on any messages,
// which need not be frames of the protocol, unchanged and in order in
// both directions, including what the agent sent before the client came,
// and closes each side with the status the other closed with.
func TestRelayCopiesMessagesUnchanged(t *testing.T) {
	rl, base := startRelay(t, nil)
	ctx := context.Background()
	agent := rawRelayConn(t, base, "/agent?id=x")
	early := []wsMessage{
		{websocket.MessageBinary, bytes.Repeat([]byte{0xff}, 1000)},
		{websocket.MessageText, []byte("not a frame")},
		{websocket.MessageBinary, nil},
	}
	for _, m := range early {
		if err := agent.Write(ctx, m.typ, m.b); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, rl, "x", 1)
	client := rawRelayConn(t, base, "/client?id=x")
	waitIdle(t, rl, "x", 0)

	rnd := rand.New(rand.NewPCG(1, 2))
	messages := func() []wsMessage {
		var ms []wsMessage
		for _, n := range []int{0, 1, 125, 126, 65535, 65536, 100000, maxMessage} {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			ms = append(ms, wsMessage{websocket.MessageBinary, b})
		}
		return append(ms, wsMessage{websocket.MessageText, []byte("text too")})
	}
	toAgent, toClient := messages(), append(early, messages()...)
	var wg sync.WaitGroup
	for _, dir := range []struct {
		name     string
		from, to *websocket.Conn
		msgs     []wsMessage
		skip     int // messages sent already
	}{{"client to agent", client, agent, toAgent, 0}, {"agent to client", agent, client, toClient, len(early)}} {
		wg.Go(func() {
			for _, m := range dir.msgs[dir.skip:] {
				if err := dir.from.Write(ctx, m.typ, m.b); err != nil {
					t.Errorf("%s: write: %v", dir.name, err)
					return
				}
			}
		})
		wg.Go(func() {
			for i, want := range dir.msgs {
				typ, b, err := dir.to.Read(ctx)
				if err != nil {
					t.Errorf("%s: message %d: %v", dir.name, i, err)
					return
				}
				if typ != want.typ || !bytes.Equal(b, want.b) {
					t.Errorf("%s: message %d arrived as %v of %d bytes, want %v of %d bytes, unchanged", dir.name, i, typ, len(b), want.typ, len(want.b))
				}
			}
		})
	}
	wg.Wait()

	// The client closes with a status of its own; the agent gets it.
	closed := make(chan error, 1)
	go func() { closed <- client.Close(4001, "bye") }()
	if _, _, err := agent.Read(ctx); websocket.CloseStatus(err) != 4001 {
		t.Errorf("agent's read after the client closed: %v, want status 4001", err)
	}
	<-closed
}

// TestRelayEnds: when either side vanishes, the other is closed; an idle
// connection that goes away leaves the queue.
func TestRelayEnds(t *testing.T) {
	rl, base := startRelay(t, nil)
	ctx := context.Background()

	agent := rawRelayConn(t, base, "/agent?id=x")
	waitIdle(t, rl, "x", 1)
	agent.CloseNow()
	waitIdle(t, rl, "x", 0)

	agent = rawRelayConn(t, base, "/agent?id=x")
	client := rawRelayConn(t, base, "/client?id=x")
	if err := client.Write(ctx, websocket.MessageBinary, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := agent.Read(ctx); err != nil || string(b) != "hello" {
		t.Fatalf("agent read %q, %v", b, err)
	}
	agent.CloseNow()
	if _, _, err := client.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client's read after the agent vanished: %v, want status 1001", err)
	}

	// An agent that sends more than an idle connection may hold is cut off.
	agent = rawRelayConn(t, base, "/agent?id=y")
	waitIdle(t, rl, "y", 1)
	agent.Write(ctx, websocket.MessageBinary, make([]byte, relayIdleBytes))
	waitIdle(t, rl, "y", 0)
	if _, _, err := agent.Read(ctx); err == nil {
		t.Error("the relay kept an idle connection that sent too much")
	}
}

// TestRelayBounds: idle connections per ID and in all, and clients, are
// bounded, and refused past the bound before any upgrade; a client with
// no agent to meet is refused after PairTimeout.
func TestRelayBounds(t *testing.T) {
	rl, base := startRelay(t, &RelayOptions{MaxIdlePerID: 1, MaxIdle: 2, MaxClients: 1, PairTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	status := func(path string) int {
		_, _, resp, err := dialWebSocket(ctx, base+path, nil, nil)
		if err == nil {
			t.Fatalf("%s: upgraded past a bound", path)
		}
		if resp == nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	a1 := rawRelayConn(t, base, "/agent?id=a")
	if s := status("/agent?id=a"); s != http.StatusServiceUnavailable {
		t.Errorf("second idle connection of one ID: HTTP %d, want 503", s)
	}
	rawRelayConn(t, base, "/agent?id=b")
	if s := status("/agent?id=c"); s != http.StatusServiceUnavailable {
		t.Errorf("third idle connection in all: HTTP %d, want 503", s)
	}
	waitIdle(t, rl, "a", 1)
	a1.CloseNow()
	waitIdle(t, rl, "a", 0)
	rawRelayConn(t, base, "/agent?id=c")

	waiting := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := DialRelay(ctx, base, "nobody", testSecret, nil)
		waiting <- err
	}()
	waitFor(t, "a waiting client", func() bool {
		rl.mu.Lock()
		defer rl.mu.Unlock()
		return rl.nClients == 1
	})
	if s := status("/client?id=nobody"); s != http.StatusServiceUnavailable {
		t.Errorf("second client: HTTP %d, want 503", s)
	}
	if err := <-waiting; !errors.Is(err, gantry.ErrUnavailable) || time.Since(start) < 200*time.Millisecond {
		t.Errorf("client with no agent: %v after %v, want ErrUnavailable after the pair timeout", err, time.Since(start))
	}
	for _, path := range []string{"/client", "/client?id=", "/agent?id=" + strings.Repeat("x", maxIDLen+1)} {
		if s := status(path); s != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", path, s)
		}
	}
	if s := status("/other?id=a"); s != http.StatusNotFound {
		t.Errorf("/other: HTTP %d, want 404", s)
	}
}

// TestConnectRelayReconnects: an agent dials again, with backoff, while
// the relay refuses it, and after the relay drops its idle connection.
func TestConnectRelayReconnects(t *testing.T) {
	var current atomic.Pointer[Relay]
	var refusals atomic.Int64
	refusals.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/agent" && refusals.Add(-1) >= 0 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		current.Load().ServeHTTP(w, r)
	}))
	defer srv.Close()
	newRelay := func() *Relay {
		rl, err := NewRelay(nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rl.Close() })
		current.Store(rl)
		return rl
	}
	base := wsURL(srv)
	first := newRelay()
	a := startAgent(t, Config{ID: "c1"})
	connectRelay(t, a, base, "c1")
	waitIdle(t, first, "c1", 1)
	if refusals.Load() >= 0 {
		t.Errorf("connected with %d refusals to go", refusals.Load())
	}

	second := newRelay()
	first.Close()
	waitIdle(t, second, "c1", 1)
	cl := mustDialRelay(t, base, "c1", testSecret, nil)
	var out bytes.Buffer
	if res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", "back"}, Stdout: &out}); err != nil || res.ExitCode != 0 || out.String() != "back\n" {
		t.Errorf("Exec = %+v, %v, %q", res, err, out.String())
	}
}

// queuedPipe is a pipeTransport held at a relay, as ConnectRelay's are.
type queuedPipe struct {
	*pipeTransport
	claimedCh chan struct{}
}

func (q *queuedPipe) claimed() { close(q.claimedCh) }

// pipePeer is the other end of a pipeTransport, for a real handshake.
type pipePeer struct{ p *pipeTransport }

func (e pipePeer) next(ctx context.Context) (io.Reader, error) {
	select {
	case m := <-e.p.out:
		return bytes.NewReader(m), nil
	case <-e.p.closed:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e pipePeer) write(_ context.Context, msg []byte) error {
	if !e.p.deliver(msg) {
		return io.ErrClosedPipe
	}
	return nil
}

func (e pipePeer) close(bool) error { return e.p.close(false) }

// TestQueuedHandshakeWaitsForItsController: on a connection held at a
// relay the agent waits for AUTH far beyond the handshake timeout, says
// when it arrives, and then completes the handshake.
func TestQueuedHandshakeWaitsForItsController(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &queuedPipe{pipeTransport: newPipeTransport(), claimedCh: make(chan struct{})}
		agentDone := make(chan error, 1)
		go func() {
			agentDone <- agentHandshake(context.Background(), q, testSecret, modeReverse, "c1", binding{dialled: testHubEndpoint})
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-agentDone:
			t.Fatalf("the idle handshake ended after an hour: %v", err)
		case <-q.claimedCh:
			t.Fatal("claimed before any AUTH")
		default:
		}
		id, err := controllerHandshake(context.Background(), pipePeer{q.pipeTransport}, testSecrets, modeReverse, binding{serves: servesListed([]string{testHubEndpoint})})
		if err != nil || id != "c1" {
			t.Fatalf("controller: %q, %v", id, err)
		}
		if err := <-agentDone; err != nil {
			t.Fatalf("agent: %v", err)
		}
		select {
		case <-q.claimedCh:
		default:
			t.Error("AUTH arrived without a claim")
		}
	})
}

// TestQueuedHandshakeTimesOutOnceClaimed: once AUTH has begun to arrive,
// the rest of the handshake has the usual deadline.
func TestQueuedHandshakeTimesOutOnceClaimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &queuedPipe{pipeTransport: newPipeTransport(), claimedCh: make(chan struct{})}
		stall := &stallingTransport{queuedPipe: q}
		agentDone := make(chan error, 1)
		go func() {
			agentDone <- agentHandshake(context.Background(), stall, testSecret, modeReverse, "c1", binding{dialled: testHubEndpoint})
		}()
		time.Sleep(time.Hour)
		q.deliver([]byte{frameAuth})
		<-q.claimedCh
		start := time.Now()
		err := <-agentDone
		if err == nil || time.Since(start) != handshakeTimeout {
			t.Errorf("handshake with a stalled AUTH ended after %v with %v, want an error after %v", time.Since(start), err, handshakeTimeout)
		}
	})
}

// stallingTransport hands out a first message whose reader stalls until
// its context ends, like a WebSocket message whose sender stops halfway.
type stallingTransport struct {
	*queuedPipe
}

func (s *stallingTransport) next(ctx context.Context) (io.Reader, error) {
	if _, err := s.queuedPipe.next(ctx); err != nil {
		return nil, err
	}
	return stallReader{ctx}, nil
}

type stallReader struct{ ctx context.Context }

func (r stallReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}
