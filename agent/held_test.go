package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeListener is an in-memory network for one server: every dial is a
// net.Pipe whose other end the server accepts. Inside a synctest bubble
// its blocking is durable, so the fake clock runs through timeouts.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A held connection is one way an unauthenticated peer can try to keep a
// connection, and a file descriptor, for ever. Each writes its request
// (and more) and then stalls without reading a response: the server
// must close the connection on its own.
type heldKind struct {
	name string
	send func(c net.Conn)
}

// hugeFrame is the header of a masked binary WebSocket frame that claims
// 2^40 bytes of payload, none of which follow.
var hugeFrame = func() []byte {
	b := []byte{0x82, 0x80 | 127}
	b = binary.BigEndian.AppendUint64(b, 1<<40)
	return append(b, 1, 2, 3, 4)
}()

func upgradeRequest(subprotocols string) string {
	req := "GET / HTTP/1.1\r\nHost: held.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if subprotocols != "" {
		req += "Sec-WebSocket-Protocol: " + subprotocols + "\r\n"
	}
	return req + "\r\n"
}

var heldKinds = []heldKind{
	// No subprotocol offered; then a frame claiming 2^40 bytes, which a
	// close handshake used to skip byte by byte with no deadline.
	{"no subprotocol, then a huge frame", func(c net.Conn) {
		io.WriteString(c, upgradeRequest("other.v1"))
		c.Write(hugeFrame)
	}},
	// Not a WebSocket at all: the refusal used to leave a keep-alive
	// connection idling for ever.
	{"keep-alive after a refusal", func(c net.Conn) {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: held.test\r\n\r\n")
	}},
	// Upgraded, and then a frame claiming 2^40 bytes instead of the
	// handshake: held only until the handshake times out.
	{"upgraded, then a huge frame", func(c net.Conn) {
		io.WriteString(c, upgradeRequest(subprotocol))
		c.Write(hugeFrame)
	}},
}

// TestHeldConnectionsAreClosed opens 1,000 connections of each held kind
// to an agent and to a Hub: every one must be closed within the
// handshake timeout, and a controller (or agent) that knows the secret
// must still connect while they are open. It runs on synctest's fake
// clock over an in-memory network, so the timeout costs no real time,
// and behind an http.Server with no timeouts of its own: what the server
// would otherwise hold is the handler's to bound.
func TestHeldConnectionsAreClosed(t *testing.T) {
	const perKind = 1000
	const endpoint = "ws://held.test/"
	for _, target := range []string{"agent", "hub"} {
		t.Run(target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var handler http.Handler
				var hub *Hub
				if target == "agent" {
					// The main command exits at once: a process the
					// bubble waits on would stop its clock. The agent
					// serves sessions all the same.
					a := startAgent(t, Config{Cmd: []string{"true"}, Endpoints: []string{endpoint}})
					<-a.Exited()
					handler = a
				} else {
					hub = mustHub(t, testSecrets, &HubOptions{Endpoints: []string{endpoint}})
					handler = hub
				}
				ln := newPipeListener()
				srv := &http.Server{Handler: handler}
				go srv.Serve(ln)
				start := time.Now()

				type result struct {
					kind     int
					closedAt time.Time
				}
				results := make(chan result, perKind*len(heldKinds))
				var peers []net.Conn
				for k, kind := range heldKinds {
					for range perKind {
						c, err := ln.dial(context.Background(), "", "")
						if err != nil {
							t.Fatal(err)
						}
						peers = append(peers, c)
						go kind.send(c)
						go func() {
							io.Copy(io.Discard, c)
							results <- result{k, time.Now()}
						}()
					}
				}

				connected := connectLegitimately(t, target, ln, endpoint, hub)
				synctest.Wait()
				openAtConnect := len(peers) - len(results)

				time.Sleep(handshakeTimeout)
				synctest.Wait()
				closed := make([]int, len(heldKinds))
				last := make([]time.Duration, len(heldKinds))
				late := 0
				for range len(results) {
					r := <-results
					closed[r.kind]++
					last[r.kind] = max(last[r.kind], r.closedAt.Sub(start))
					if r.closedAt.Sub(start) > handshakeTimeout {
						late++
					}
				}
				for k, kind := range heldKinds {
					if closed[k] != perKind {
						t.Errorf("%s: %d of %d connections closed by the %s", kind.name, closed[k], perKind, target)
					}
					t.Logf("%s: %d closed, the last %v after the attack began", kind.name, closed[k], last[k])
				}
				if late != 0 {
					t.Errorf("%d connections closed after the handshake timeout", late)
				}
				if connected == nil {
					t.Errorf("a peer with the secret could not connect while %d held connections were open", openAtConnect)
				} else if openAtConnect < perKind {
					t.Errorf("only %d held connections were open when the peer with the secret connected, want at least %d", openAtConnect, perKind)
				}

				for _, c := range peers {
					c.Close()
				}
				if connected != nil {
					connected()
				}
				if hub != nil {
					hub.Close()
				}
				srv.Close()
				synctest.Wait()
			})
		})
	}
}

// connectLegitimately connects a peer that knows the secret to the
// target behind ln, and returns how to disconnect it, or nil if it could
// not connect.
func connectLegitimately(t *testing.T, target string, ln *pipeListener, endpoint string, hub *Hub) func() {
	hc := &http.Client{Transport: &http.Transport{DialContext: ln.dial}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if target == "agent" {
		cl, err := Dial(ctx, endpoint, testSecret, &DialOptions{HTTPClient: hc, Insecure: true})
		if err != nil {
			t.Log(err)
			return nil
		}
		return func() { cl.Close() }
	}
	c, err := dialThrough(ctx, hc, endpoint)
	if err != nil {
		t.Log(err)
		return nil
	}
	served := make(chan error, 1)
	go func() { served <- agentHandshake(ctx, c, testSecret, modeReverse, "c1", binding{dialled: endpoint}) }()
	if err := <-served; err != nil {
		t.Log(err)
		c.close(true)
		return nil
	}
	if _, err := hub.Client(ctx, "c1"); err != nil {
		t.Log(err)
		c.close(true)
		return nil
	}
	return func() { c.close(true) }
}

func dialThrough(ctx context.Context, hc *http.Client, url string) (*wsTransport, error) {
	c, raw, _, err := dialWebSocket(ctx, url, hc, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return newWSTransport(c, raw), nil
}
