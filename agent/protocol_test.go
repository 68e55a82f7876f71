package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// oneMessage is a transport holding a single incoming message, read
// through a countingReader.
type oneMessage struct {
	memTransport
	msg *countingReader
}

func (o *oneMessage) next(context.Context) (io.Reader, error) { return o.msg, nil }

// TestHandshakeRefusesOversizeFrameFromItsHeader: before authentication a
// peer may not make either side read (or buffer) more than the largest
// handshake frame; a longer one is refused from its header.
func TestHandshakeRefusesOversizeFrameFromItsHeader(t *testing.T) {
	for _, typ := range []byte{frameAuth, frameHello} {
		size := maxHandshakePayload + 1
		msg := make([]byte, headerLen+size)
		putHeader(msg, typ, 0, size)
		tr := &oneMessage{msg: &countingReader{r: bytes.NewReader(msg)}}
		var err error
		if typ == frameAuth {
			err = agentHandshake(context.Background(), tr, testSecret, modeForward, "", servesTest)
		} else {
			_, err = controllerHandshake(context.Background(), tr, func(string) []byte { return testSecret }, modeReverse, servesTest)
		}
		if !errors.Is(err, errProtocol) {
			t.Errorf("frame 0x%02x of %d bytes: %v, want a protocol error", typ, size, err)
		}
		if tr.msg.n != headerLen {
			t.Errorf("frame 0x%02x: read %d bytes of an oversize handshake frame, want only its %d-byte header", typ, tr.msg.n, headerLen)
		}
	}
}

// TestWrongDirectionRefusedForAnySession: a frame that only the other
// side may send is a protocol violation even when it names a session that
// is not live; it must not be silently dropped as a late frame would be.
func TestWrongDirectionRefusedForAnySession(t *testing.T) {
	payload := func() io.Reader { return bytes.NewReader([]byte{'x'}) }
	ac := &agentConn{sessions: make(map[uint32]*session)}
	cl := newClient(&memTransport{}, "", nil)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"STDOUT to the agent", func() error { return ac.data(header{typ: frameStdout, session: 7, length: 1}, payload()) }},
		{"STDERR to the agent", func() error { return ac.data(header{typ: frameStderr, session: 7, length: 1}, payload()) }},
		{"stdin CREDIT to the agent", func() error {
			return ac.handle(&frame{header: header{typ: frameCredit, session: 7}, stream: streamStdin, amount: 1})
		}},
		{"STDIN to the controller", func() error { return cl.data(header{typ: frameStdin, session: 7, length: 1}, payload()) }},
		{"stdout CREDIT to the controller", func() error {
			return cl.handle(&frame{header: header{typ: frameCredit, session: 7}, stream: streamStdout, amount: 1})
		}},
	} {
		if err := tc.call(); !errors.Is(err, errProtocol) {
			t.Errorf("%s for a session that is not live: %v, want a protocol error", tc.name, err)
		}
	}
}

// TestConnectRetriesAHubThatNeverAnswers: a Hub address that accepts the
// connection but never answers the upgrade must not hold reverse mode
// forever; the agent gives up on that attempt and dials again.
func TestConnectRetriesAHubThatNeverAnswers(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	var attempts atomic.Int64
	release := make(chan struct{})
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Connect(ctx, wsURL(srv), &ConnectOptions{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, DialTimeout: 20 * time.Millisecond})
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "a second attempt after a silent Hub", func() bool { return attempts.Load() >= 2 })
}

// TestRefusedPeersDoNotFillTheLog: an unauthenticated peer can connect as
// often as it likes, so the refusals of the agent and of the Hub stay
// below Info, where a production logger would write them.
func TestRefusedPeersDoNotFillTheLog(t *testing.T) {
	const peers = 20
	infoOrAbove := func(logs *observer.ObservedLogs) []observer.LoggedEntry {
		return logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zap.InfoLevel }).All()
	}

	core, logs := observer.New(zap.DebugLevel)
	a := startAgent(t, Config{Logger: zap.New(core)})
	srv := httptestServer(t, a)
	for range peers {
		if _, err := Dial(context.Background(), wsURL(srv), []byte("wrong-secret-wrong-secret"), nil); err == nil {
			t.Fatal("Dial with a wrong secret succeeded")
		}
	}
	// The refusal is logged before the agent closes, and Close waits for
	// every connection's handler.
	a.Close()
	if n := logs.FilterMessage("agent connection refused").Len(); n != peers {
		t.Errorf("agent logged %d refusals at Debug, want %d", n, peers)
	}
	if e := infoOrAbove(logs); len(e) != 0 {
		t.Errorf("agent: %d log entries at Info or above for refused peers, first %q", len(e), e[0].Message)
	}

	hcore, hlogs := observer.New(zap.DebugLevel)
	hub := mustHub(t, func(id string) []byte { return testSecret }, &HubOptions{Logger: zap.New(hcore)})
	hsrv := httptestServer(t, hub)
	t.Cleanup(func() { hub.Close() })
	impostor := startAgent(t, Config{ID: "c1", Secret: []byte("wrong-secret-wrong-secret")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		impostor.Connect(ctx, wsURL(hsrv), &ConnectOptions{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	}()
	waitFor(t, "the Hub to refuse the impostor repeatedly", func() bool {
		return hlogs.FilterMessage("agent refused").Len() >= peers
	})
	cancel()
	<-done
	if e := infoOrAbove(hlogs); len(e) != 0 {
		t.Errorf("hub: %d log entries at Info or above for refused agents, first %q", len(e), e[0].Message)
	}
}

// TestReplayAndReflectionRefused keeps holding what the hardening review
// found to hold: a handshake message recorded from one exchange is
// refused in the next (fresh nonces), and a controller's proof sent back
// to it as the agent's is refused (role labels), in both modes.
func TestReplayAndReflectionRefused(t *testing.T) {
	ctx := context.Background()
	endpointFor := map[byte]string{modeForward: testAgentEndpoint, modeReverse: testHubEndpoint}
	id := map[byte]string{modeForward: "", modeReverse: "c1"}
	agentBinding := func(mode byte) binding {
		if mode == modeReverse {
			return binding{dialled: testHubEndpoint}
		}
		return servesTest
	}
	ctlBinding := func(mode byte) binding {
		if mode == modeForward {
			return binding{dialled: testAgentEndpoint}
		}
		return servesTest
	}
	secrets := func(string) []byte { return testSecret }
	parse := func(msg []byte) frame {
		f, err := readFrame(bytes.NewReader(msg), make([]byte, maxHandshakePayload), nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, mode := range []byte{modeForward, modeReverse} {
		// An honest exchange, recorded.
		p := newPipeTransport()
		agentDone := make(chan error, 1)
		go func() { agentDone <- agentHandshake(ctx, p, testSecret, mode, id[mode], agentBinding(mode)) }()
		helloMsg, _ := p.await(frameHello)
		ctlSide := newPipeTransport()
		ctlDone := make(chan error, 1)
		go func() {
			_, err := controllerHandshake(ctx, ctlSide, secrets, mode, ctlBinding(mode))
			ctlDone <- err
		}()
		ctlSide.deliver(helloMsg)
		authMsg, _ := ctlSide.await(frameAuth)
		p.deliver(authMsg)
		okMsg, _ := p.await(frameAuthOK)
		ctlSide.deliver(okMsg)
		if err := <-agentDone; err != nil {
			t.Fatalf("mode %d: honest exchange, agent: %v", mode, err)
		}
		if err := <-ctlDone; err != nil {
			t.Fatalf("mode %d: honest exchange, controller: %v", mode, err)
		}

		// The recorded AUTH, replayed to the agent.
		p = newPipeTransport()
		go func() { agentDone <- agentHandshake(ctx, p, testSecret, mode, id[mode], agentBinding(mode)) }()
		p.await(frameHello)
		p.deliver(authMsg)
		if err := <-agentDone; !errors.Is(err, errAuth) {
			t.Errorf("mode %d: agent given a replayed AUTH: %v, want errAuth", mode, err)
		}

		// The recorded HELLO and AUTH_OK, replayed to the controller.
		ctlSide = newPipeTransport()
		go func() {
			_, err := controllerHandshake(ctx, ctlSide, secrets, mode, ctlBinding(mode))
			ctlDone <- err
		}()
		ctlSide.deliver(helloMsg)
		ctlSide.await(frameAuth)
		ctlSide.deliver(okMsg)
		if err := <-ctlDone; !errors.Is(err, errAuth) {
			t.Errorf("mode %d: controller given a replayed AUTH_OK: %v, want errAuth", mode, err)
		}

		// The controller's own proof, reflected as the agent's.
		ctlSide = newPipeTransport()
		go func() {
			_, err := controllerHandshake(ctx, ctlSide, secrets, mode, ctlBinding(mode))
			ctlDone <- err
		}()
		hello := frame{header: header{typ: frameHello}, version: protocolVersion, mode: mode, nonce: newNonce(), id: id[mode]}
		if mode == modeReverse {
			hello.endpoint = endpointFor[mode]
		}
		b, _ := encodeControl(&hello)
		ctlSide.deliver(b)
		auth, _ := ctlSide.await(frameAuth)
		reflected, _ := encodeControl(&frame{header: header{typ: frameAuthOK}, mac: parse(auth).mac})
		ctlSide.deliver(reflected)
		if err := <-ctlDone; !errors.Is(err, errAuth) {
			t.Errorf("mode %d: controller given its own proof back: %v, want errAuth", mode, err)
		}
	}
}
