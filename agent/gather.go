package agent

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/coder/websocket"
)

// The WebSocket client in coder/websocket writes through a 4 KiB
// bufio.Writer it does not let the caller size, and a client must mask
// every payload byte (RFC 6455 section 5.3), so it copies each payload
// into that buffer to mask it there and flushes whenever the buffer
// fills: a 256 KiB data frame leaves a dialing side as 64 write system
// calls, where the server side (which does not mask) writes the payload
// in one. Profiled over loopback, those writes were most of the
// reverse-mode cost. With them gathered, what remained on the dialing
// side was that payload copy, the library's masking (eight bytes at a
// time) and the copy into the gathering buffer.
//
// So on a connection this package dialed, its own messages do not go
// through the library's writer at all: frameGatherer.writeBinary frames
// each one itself, masking it with a fresh random key while copying it
// into the outgoing buffer (crypto/subtle.XORBytes, which uses vector
// instructions), and writes the frame in one call. The library still
// writes its own control frames (ping, pong, close) on the same
// connection; frameGatherer passes those through whole, and keeps the two
// kinds of frame from interleaving.

// frameGatherer sits between the library's writer and the upgraded
// connection. It follows the frame headers in the byte stream the library
// writes and hands each complete frame to the connection in one write. It
// never holds back the end of a frame, so every flush the library makes
// still reaches the wire at once, and it holds at most gatherLimit bytes:
// a longer frame goes out in pieces of that size.
type frameGatherer struct {
	rwc io.ReadWriteCloser

	mu       sync.Mutex
	boundary *sync.Cond    // signalled whenever a library frame is complete
	buf      []byte        // bytes of the current frame not yet written
	hdr      [14]byte      // the current library frame's header while it is read
	hn       int           // header bytes seen so far
	rest     uint64        // payload bytes of the current library frame to come
	closing  bool          // the library has sent a close frame
	err      error         // a failed write; every later write fails the same way
	pad      [maskPad]byte // the masking key, repeated; used by writeBinary
}

const (
	// gatherLimit bounds a frameGatherer's buffer: the largest frame this
	// package sends, with the longest WebSocket header.
	gatherLimit = maxMessage + 14
	// maskPad is the length of the repeated masking key XORed into a
	// payload per call; a multiple of 4, so the key's phase carries over.
	maskPad = 1 << 10
	opClose = 0x8
)

func newFrameGatherer(rwc io.ReadWriteCloser) *frameGatherer {
	g := &frameGatherer{rwc: rwc}
	g.boundary = sync.NewCond(&g.mu)
	return g
}

// Read reads from the connection unchanged.
func (g *frameGatherer) Read(p []byte) (int, error) { return g.rwc.Read(p) }

// Close closes the connection. It may be called while a write runs.
func (g *frameGatherer) Close() error { return g.rwc.Close() }

// Write takes bytes of the library's outgoing frame stream and writes
// each frame once it is complete. The library serialises its own writes.
func (g *frameGatherer) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	n := len(p)
	for len(p) > 0 {
		if g.rest == 0 {
			// A frame header, which may arrive split across writes.
			g.hdr[g.hn] = p[0]
			g.hn++
			if err := g.add(p[:1]); err != nil {
				return n - len(p), err
			}
			p = p[1:]
			if size, ok := frameHeaderSize(g.hdr[:g.hn]); ok && g.hn == size {
				if g.hdr[0]&0x0f == opClose {
					g.closing = true
				}
				g.rest = framePayloadLen(g.hdr[:g.hn])
				g.hn = 0
				if g.rest == 0 {
					if err := g.endFrame(); err != nil {
						return n - len(p), err
					}
				}
			}
			continue
		}
		k := len(p)
		if uint64(k) > g.rest {
			k = int(g.rest)
		}
		if err := g.add(p[:k]); err != nil {
			return n - len(p), err
		}
		p = p[k:]
		g.rest -= uint64(k)
		if g.rest == 0 {
			if err := g.endFrame(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// writeBinary sends msg as one masked binary WebSocket message, in one
// write, between the library's frames. msg is not modified.
func (g *frameGatherer) writeBinary(msg []byte) error {
	if len(msg) > maxMessage {
		return fmt.Errorf("agent: message of %d bytes exceeds %d", len(msg), maxMessage)
	}
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// A library frame is only ever left half written between two of the
	// library's own Write calls inside one of its frame writes, which
	// completes it or fails; either wakes this wait.
	for g.err == nil && (g.hn != 0 || g.rest != 0) {
		g.boundary.Wait()
	}
	if g.err != nil {
		return g.err
	}
	if g.closing {
		return net.ErrClosed
	}
	b := append(g.buf[:0], 0x80|0x2) // FIN, binary
	switch n := len(msg); {
	case n > 0xffff:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|byte(n))
	}
	b = append(b, key[:]...)
	h := len(b)
	b = slices.Grow(b, len(msg))[:h+len(msg)]
	for i := 0; i < maskPad; i += 4 {
		copy(g.pad[i:], key[:])
	}
	for p, dst := msg, b[h:]; len(p) > 0; {
		k := subtle.XORBytes(dst, p, g.pad[:min(len(p), maskPad)])
		p, dst = p[k:], dst[k:]
	}
	g.buf = b
	return g.flush()
}

// endFrame writes out a completed library frame and lets a waiting
// writeBinary go ahead.
func (g *frameGatherer) endFrame() error {
	err := g.flush()
	g.boundary.Broadcast()
	return err
}

// add appends b to the buffer, writing the buffer out whenever it reaches
// gatherLimit.
func (g *frameGatherer) add(b []byte) error {
	for len(b) > 0 {
		if len(g.buf) == gatherLimit {
			if err := g.flush(); err != nil {
				return err
			}
		}
		k := min(len(b), gatherLimit-len(g.buf))
		g.buf = append(g.buf, b[:k]...)
		b = b[k:]
	}
	return nil
}

func (g *frameGatherer) flush() error {
	if len(g.buf) == 0 {
		return nil
	}
	if _, err := g.rwc.Write(g.buf); err != nil {
		g.err = err
		g.boundary.Broadcast()
		return err
	}
	g.buf = g.buf[:0]
	return nil
}

// frameHeaderSize reports the length of the WebSocket frame header that
// h begins, once h holds enough of it (two bytes) to tell.
func frameHeaderSize(h []byte) (int, bool) {
	if len(h) < 2 {
		return 0, false
	}
	size := 2
	switch h[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if h[1]&0x80 != 0 {
		size += 4 // masking key
	}
	return size, true
}

// framePayloadLen decodes the payload length from a complete header.
func framePayloadLen(h []byte) uint64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(l)
	}
}

// gatherTransport puts a frameGatherer on every connection its base
// transport upgrades (status 101) and remembers the last one.
type gatherTransport struct {
	base http.RoundTripper

	mu   sync.Mutex
	conn *frameGatherer
}

func (t *gatherTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			g := newFrameGatherer(rwc)
			resp.Body = g
			t.mu.Lock()
			t.conn = g
			t.mu.Unlock()
		}
	}
	return resp, nil
}

// dialledTransport wraps a connection websocket.Dial made through gt.
func dialledTransport(c *websocket.Conn, gt *gatherTransport) *wsTransport {
	g := gt.upgraded()
	if g == nil {
		return newWSTransport(c, nil, nil)
	}
	return newWSTransport(c, g, g)
}

// upgraded returns the connection the transport last upgraded, or nil.
func (t *gatherTransport) upgraded() *frameGatherer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

// gatheringClient returns a copy of hc (nil means http.DefaultClient)
// whose transport puts a frameGatherer on the connection it upgrades;
// Dial and Connect, the two places this package is the WebSocket client,
// use one per handshake and hand the gatherer to newWSTransport. The copy
// follows no redirect, whatever hc does.
func gatheringClient(hc *http.Client) (*http.Client, *gatherTransport) {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t := &gatherTransport{base: base}
	c.Transport = t
	c.CheckRedirect = refuseRedirect
	return &c, t
}

// refuseRedirect stops the WebSocket handshake at a redirect. Following
// one would carry the handshake, and the caller's HTTPHeader, to a URL
// that checkSecure never saw (a wss:// URL can redirect to plain ws://
// on another host) and that is not the endpoint the handshake binds.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the server redirects to %s; redirects are not followed, dial the final URL", req.URL.Redacted())
}
