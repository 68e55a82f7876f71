package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// transport carries whole messages; the protocol needs nothing else from
// WebSocket, which keeps the handshake and the frame decoder testable over
// memory.
type transport interface {
	// next returns a reader over the next message. It must be read to EOF
	// before next is called again.
	next(ctx context.Context) (io.Reader, error)
	// write sends one message. It is safe for concurrent use.
	write(ctx context.Context, msg []byte) error
	// close ends the connection; fault says whether the peer broke the
	// protocol.
	close(fault bool) error
}

// subprotocol is negotiated on every WebSocket; a peer that does not offer
// it is refused.
const subprotocol = "gantry-agent.v1"

type wsTransport struct {
	c *websocket.Conn
	// raw closes the connection under c, which ends a close handshake
	// that c.Close would otherwise wait on for as long as the peer likes.
	raw io.Closer
}

// closeGrace bounds a close handshake: a peer that has not answered our
// close by then is cut off. coder/websocket bounds the handshake only
// until the peer starts a frame: it then skips the frame's declared
// length byte by byte with no deadline, so a peer that declares 2^40
// bytes and stalls would hold the connection, and whoever is closing
// it, for ever.
const closeGrace = 2 * time.Second

// newWSTransport wraps c; raw is the connection under c (upgrade on the
// accepting side, dialWebSocket on the dialing side), or nil to close
// without a handshake.
func newWSTransport(c *websocket.Conn, raw io.Closer) *wsTransport {
	c.SetReadLimit(maxMessage)
	return &wsTransport{c: c, raw: raw}
}

// conn is the WebSocket, which the mux pings to keep it alive.
func (t *wsTransport) conn() *websocket.Conn { return t.c }

func (t *wsTransport) next(ctx context.Context) (io.Reader, error) {
	typ, r, err := t.c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, protoErr("text WebSocket message")
	}
	return r, nil
}

func (t *wsTransport) write(ctx context.Context, msg []byte) error {
	return t.c.Write(ctx, websocket.MessageBinary, msg)
}

func (t *wsTransport) close(fault bool) error {
	if fault || t.raw == nil {
		// A peer that broke the protocol gets no close handshake to wait on.
		return t.c.CloseNow()
	}
	cut := time.AfterFunc(closeGrace, func() { t.raw.Close() })
	defer cut.Stop()
	return t.c.Close(websocket.StatusNormalClosure, "")
}

// upgrade accepts r as this package's WebSocket and returns it with the
// connection under it. Any other request is answered with an HTTP error
// on a connection that is then closed, so that a peer cannot keep it (and
// a file descriptor) after its refusal, whatever the server's keep-alive
// settings. It is refused before upgrading: an upgraded peer could only
// be refused with a close handshake, which it could stall.
func upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, net.Conn) {
	if !upgradable(w, r) {
		return nil, nil
	}
	return acceptUpgrade(w, r)
}

// upgradable reports whether r asks for this package's WebSocket, and if
// not answers it with an HTTP error on a connection that is then closed.
func upgradable(w http.ResponseWriter, r *http.Request) bool {
	if !hasToken(r.Header, "Connection", "upgrade", false) || !hasToken(r.Header, "Upgrade", "websocket", false) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this URL speaks only WebSocket", http.StatusUpgradeRequired)
		return false
	}
	if !hasToken(r.Header, "Sec-WebSocket-Protocol", subprotocol, true) {
		w.Header().Set("Connection", "close")
		http.Error(w, "WebSocket subprotocol "+subprotocol+" required", http.StatusBadRequest)
		return false
	}
	return true
}

// acceptUpgrade upgrades a request that upgradable accepted.
func acceptUpgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, net.Conn) {
	w.Header().Set("Connection", "close")
	hw := &hijackRecorder{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		return nil, nil
	}
	if c.Subprotocol() != subprotocol {
		c.CloseNow()
		return nil, nil
	}
	return c, hw.conn
}

// hasToken reports whether one of the comma-separated values of header
// name is token (compared exactly, or ignoring case).
func hasToken(h http.Header, name, token string, exact bool) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == token || !exact && strings.EqualFold(t, token) {
				return true
			}
		}
	}
	return false
}

// hijackRecorder keeps the connection websocket.Accept hijacks, which the
// library does not expose.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, brw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// dialWebSocket dials rawURL as this package's WebSocket client and returns
// the connection with the one under it, which coder/websocket does not
// expose either. The handshake follows no redirect, whatever hc does.
func dialWebSocket(ctx context.Context, rawURL string, hc *http.Client, header http.Header) (*websocket.Conn, io.Closer, *http.Response, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	rec := &upgradeRecorder{base: hc.Transport}
	if rec.base == nil {
		rec.base = http.DefaultTransport
	}
	client := *hc
	client.Transport = rec
	client.CheckRedirect = refuseRedirect
	c, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{
		HTTPClient:   &client,
		HTTPHeader:   header,
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		return nil, nil, resp, err
	}
	rec.mu.Lock()
	raw := rec.conn
	rec.mu.Unlock()
	return c, raw, resp, nil
}

// upgradeRecorder keeps the connection of the response that upgraded
// (status 101), whose body is the connection itself.
type upgradeRecorder struct {
	base http.RoundTripper

	mu   sync.Mutex
	conn io.Closer
}

func (t *upgradeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			t.mu.Lock()
			t.conn = rwc
			t.mu.Unlock()
		}
	}
	return resp, err
}

// refuseRedirect stops the WebSocket handshake at a redirect. Following
// one would carry the handshake, and the caller's HTTPHeader, to a URL
// that checkSecure never saw (a wss:// URL can redirect to plain ws://
// on another host) and that is not the endpoint the handshake binds.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the server redirects to %s; redirects are not followed, dial the final URL", req.URL.Redacted())
}
