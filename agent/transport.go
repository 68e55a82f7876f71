package agent

import (
	"context"
	"io"

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
	// direct, on a connection this package dialed, writes this package's
	// messages itself; see frameGatherer.
	direct *frameGatherer
}

// newWSTransport wraps c; direct is the frameGatherer under c when this
// side dialed it (gatheringClient), or nil to write through the library.
func newWSTransport(c *websocket.Conn, direct *frameGatherer) *wsTransport {
	c.SetReadLimit(maxMessage)
	return &wsTransport{c: c, direct: direct}
}

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
	if t.direct != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return t.direct.writeBinary(msg)
	}
	return t.c.Write(ctx, websocket.MessageBinary, msg)
}

func (t *wsTransport) close(fault bool) error {
	if fault {
		// A peer that broke the protocol gets no close handshake to wait on.
		return t.c.CloseNow()
	}
	return t.c.Close(websocket.StatusNormalClosure, "")
}
