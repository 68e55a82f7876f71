package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// keepaliveInterval is how often an idle connection is pinged; a peer
// that does not answer within the same interval is considered gone, which
// ends its sessions and, in reverse mode, starts a reconnect.
const keepaliveInterval = 20 * time.Second

// mux is one authenticated connection carrying many sessions. Both ends
// use it; the role-specific part is the handler given to run.
type mux struct {
	t   transport
	ctx context.Context
	log *zap.Logger

	cancel    context.CancelFunc
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
}

func newMux(t transport, log *zap.Logger) *mux {
	ctx, cancel := context.WithCancel(context.Background())
	return &mux{t: t, ctx: ctx, cancel: cancel, log: log}
}

// errConnClosed is the cause a session sees when its connection ends.
var errConnClosed = errors.New("agent connection closed")

// send writes one control frame.
func (m *mux) send(f *frame) error {
	b, err := encodeControl(f)
	if err != nil {
		return err
	}
	return m.write(b)
}

// write sends one complete message. A failed write ends the connection.
func (m *mux) write(msg []byte) error {
	if err := m.t.write(m.ctx, msg); err != nil {
		m.shutdown(err, false)
		return m.cause()
	}
	return nil
}

// done is closed when the connection has ended.
func (m *mux) done() <-chan struct{} { return m.ctx.Done() }

// cause reports why the connection ended.
func (m *mux) cause() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if m.err == nil {
		return errConnClosed
	}
	return m.err
}

// shutdown ends the connection once; fault marks a peer that broke the
// protocol, which is closed without a close handshake.
func (m *mux) shutdown(err error, fault bool) {
	m.closeOnce.Do(func() {
		m.errMu.Lock()
		m.err = errors.Join(errConnClosed, err)
		m.errMu.Unlock()
		m.cancel()
		m.t.close(fault)
	})
}

// run reads frames until the connection ends, passing control frames to
// handle and data payloads to sink. It returns the reason the connection
// ended. A malformed frame or any handler error closes the connection.
func (m *mux) run(handle func(f *frame) error, sink dataSink) error {
	if ws, ok := m.t.(interface{ conn() *websocket.Conn }); ok {
		go m.keepalive(ws.conn())
	}
	buf := make([]byte, maxControlPayload)
	for {
		r, err := m.t.next(m.ctx)
		if err != nil {
			m.shutdown(err, errors.Is(err, errProtocol))
			return m.cause()
		}
		f, err := readFrame(r, buf, sink)
		if err == nil && !isData(f.typ) {
			err = handle(&f)
		}
		if err != nil {
			fault := errors.Is(err, errProtocol)
			if fault {
				m.log.Warn("closing agent connection: peer broke the protocol", zap.Error(err))
			}
			m.shutdown(err, fault)
			return m.cause()
		}
	}
}

func (m *mux) keepalive(c *websocket.Conn) {
	t := time.NewTicker(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, keepaliveInterval)
		err := c.Ping(ctx)
		cancel()
		if err != nil {
			m.shutdown(err, false)
			return
		}
	}
}
