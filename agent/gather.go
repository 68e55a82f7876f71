package agent

import (
	"encoding/binary"
	"io"
	"net/http"
)

// The WebSocket client in coder/websocket writes through a 4 KiB
// bufio.Writer it does not let the caller size, and a client must mask
// every payload byte (RFC 6455 section 5.3), so it copies each payload
// into that buffer to mask it there and flushes whenever the buffer
// fills: a 256 KiB data frame leaves a dialing side as 64 write system
// calls, where the server side (which does not mask) writes the payload
// in one. Profiled over loopback, those writes were most of the
// reverse-mode cost; masking itself, done eight bytes at a time, was not.
//
// frameGatherer sits between that writer and the upgraded connection. It
// follows the frame headers in the byte stream it carries and hands each
// complete frame to the connection in one write. It never holds back the
// end of a frame, so every flush the WebSocket library makes still reaches
// the wire at once, and it holds at most gatherLimit bytes: a longer frame
// goes out in pieces of that size.
type frameGatherer struct {
	rwc io.ReadWriteCloser

	buf  []byte   // bytes of the current frame not yet written
	hdr  [14]byte // the current frame's header while it is being read
	hn   int      // header bytes seen so far
	rest uint64   // payload bytes of the current frame still to come
	err  error    // a failed write; every later write fails the same way
}

// gatherLimit bounds a frameGatherer's buffer: the largest frame this
// package sends, with the longest WebSocket header.
const gatherLimit = maxMessage + 14

func newFrameGatherer(rwc io.ReadWriteCloser) *frameGatherer {
	return &frameGatherer{rwc: rwc}
}

// Read reads from the connection unchanged.
func (g *frameGatherer) Read(p []byte) (int, error) { return g.rwc.Read(p) }

// Close closes the connection. It may be called while a Write runs.
func (g *frameGatherer) Close() error { return g.rwc.Close() }

// Write takes bytes of the client's outgoing frame stream and writes each
// frame once it is complete. The WebSocket library serialises its writes,
// so calls never overlap.
func (g *frameGatherer) Write(p []byte) (int, error) {
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
				g.rest = framePayloadLen(g.hdr[:g.hn])
				g.hn = 0
				if g.rest == 0 {
					if err := g.flush(); err != nil {
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
			if err := g.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
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
// transport upgrades (status 101).
type gatherTransport struct {
	base http.RoundTripper
}

func (t gatherTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = newFrameGatherer(rwc)
		}
	}
	return resp, nil
}

// gatheringClient returns a copy of hc (nil means http.DefaultClient)
// whose WebSocket connections write whole frames; Dial and Connect, the
// two places this package is the WebSocket client, use it.
func gatheringClient(hc *http.Client) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = gatherTransport{base: base}
	return &c
}
