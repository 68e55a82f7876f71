package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/gantryhq/gantry"
	"go.uber.org/zap"
)

// Relay pairs clients with the agents of containers that neither can
// reach directly: a Cloud Run job takes no inbound connections, and a
// client behind NAT takes none either. It is an http.Handler for two
// WebSocket paths (subprotocol gantry-agent.v1):
//
//	GET /agent?id=ID   an agent's idle connection (Agent.ConnectRelay),
//	                   queued under the container ID
//	GET /client?id=ID  a client (DialRelay), paired with the oldest idle
//	                   connection of ID, waiting for one if there is none
//
// Once paired, the relay copies every WebSocket message between the two
// unchanged, in both directions, without reading what it carries, until
// either side ends; it then closes the other with the same close status.
// Before a client arrives, the relay holds what the agent has sent (its
// HELLO) and pings the idle connection to keep it alive.
//
// The relay never sees the secret and cannot authenticate as either side:
// the agent and the client authenticate each other with the protocol's
// end-to-end handshake through it, both binding the relay's /agent URL as
// the endpoint (see the package documentation). Like any TLS front end,
// though, it could read and alter the sessions' bytes that follow the
// handshake, so it must be run where such a front end would be trusted.
// What the relay decides is
// which clients may ask for an agent (RelayOptions.Authorize) and how much
// it holds: idle connections per ID and in all, and clients, are bounded,
// and a request past a bound is refused before it is upgraded.
type Relay struct {
	o   RelayOptions
	log *zap.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	idle     map[string][]*relayConn      // idle connections by ID, oldest first
	slots    map[string]int               // idle connections and reservations by ID
	nIdle    int                          // the sum of slots
	waiting  map[string][]chan *relayConn // clients waiting by ID, oldest first
	nClients int                          // clients waiting or paired
	live     map[*relayConn]struct{}      // every agent connection, idle or paired
	pingers  sync.WaitGroup
}

// RelayOptions configures NewRelay.
type RelayOptions struct {
	// Authorize decides whether a client's request (GET /client) may
	// reach an agent, for example by checking an identity token in its
	// Authorization header. It runs before anything else; an error
	// refuses the request with HTTP 401 Unauthorized, or 403 Forbidden
	// when the error wraps gantry.ErrPermissionDenied, and the client
	// reaches no agent. Nil allows every client: a client without the
	// secret still gets nothing from the agent, but takes its idle
	// connection, which the agent then replaces. On Cloud Run the
	// service's IAM invoker check can do this job instead.
	Authorize func(r *http.Request) error
	// PairTimeout is how long a client waits for an idle connection of
	// its container before it is refused with 503 Service Unavailable.
	// Zero means 30 s.
	PairTimeout time.Duration
	// MaxIdlePerID and MaxIdle bound the idle agent connections held for
	// one container and in all; an agent connection past either is
	// refused with 503 Service Unavailable. Zero means 4 and 4096.
	MaxIdlePerID, MaxIdle int
	// MaxClients bounds the clients waiting or paired, past which a
	// client is refused with 503 Service Unavailable. Zero means 4096.
	MaxClients int
	// PingInterval is how often the relay pings each connection it
	// holds; one that has not answered a ping by the next is dropped,
	// with the connection paired with it. Zero means 20 s.
	PingInterval time.Duration
	// Logger receives diagnostics; nil means none.
	Logger *zap.Logger
}

// relayIdleBytes bounds what an agent may send on an idle connection
// before its client arrives (its HELLO takes at most 1325 bytes); the
// relay holds it until then. Each message counts heldOverhead bytes more,
// so that empty messages are bounded too.
const (
	relayIdleBytes = 4 << 10
	heldOverhead   = 64
)

// NewRelay returns a Relay. A negative bound or duration in opts is an
// error wrapping gantry.ErrInvalidArgument.
func NewRelay(opts *RelayOptions) (*Relay, error) {
	var o RelayOptions
	if opts != nil {
		o = *opts
	}
	if o.PairTimeout < 0 || o.PingInterval < 0 || o.MaxIdlePerID < 0 || o.MaxIdle < 0 || o.MaxClients < 0 {
		return nil, fmt.Errorf("agent: relay: %w: negative bound in RelayOptions", gantry.ErrInvalidArgument)
	}
	if o.PairTimeout == 0 {
		o.PairTimeout = 30 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = keepaliveInterval
	}
	if o.MaxIdlePerID == 0 {
		o.MaxIdlePerID = 4
	}
	if o.MaxIdle == 0 {
		o.MaxIdle = 4096
	}
	if o.MaxClients == 0 {
		o.MaxClients = 4096
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Relay{
		o:       o,
		log:     o.Logger,
		ctx:     ctx,
		cancel:  cancel,
		idle:    make(map[string][]*relayConn),
		slots:   make(map[string]int),
		waiting: make(map[string][]chan *relayConn),
		live:    make(map[*relayConn]struct{}),
	}, nil
}

// ServeHTTP serves /agent and /client; any other path is 404 Not Found.
func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/agent":
		rl.serveAgent(w, r)
	case "/client":
		rl.serveClient(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Close refuses new connections, ends every pairing and idle connection
// (closing each side with status 1001, going away) and returns once they
// have ended. Agents keep trying to reconnect.
func (rl *Relay) Close() error {
	rl.mu.Lock()
	rl.closed = true
	conns := make([]*relayConn, 0, len(rl.live))
	for rc := range rl.live {
		conns = append(conns, rc)
	}
	rl.mu.Unlock()
	rl.cancel()
	var ending sync.WaitGroup
	for _, rc := range conns {
		ending.Go(func() { rc.end(nil, errRelayClosed) })
	}
	ending.Wait()
	rl.pingers.Wait()
	return nil
}

var errRelayClosed = errors.New("relay closed")

// refuse answers a request that is not upgraded, on a connection that is
// then closed.
func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, status)
}

// relayID returns the request's container ID, or answers 400 Bad Request.
func relayID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodGet {
		refuse(w, http.StatusMethodNotAllowed, "this URL speaks only WebSocket")
		return "", false
	}
	id := r.URL.Query().Get("id")
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) {
		refuse(w, http.StatusBadRequest, fmt.Sprintf("the query must give a container id of 1 to %d bytes of UTF-8", maxIDLen))
		return "", false
	}
	return id, true
}

func (rl *Relay) serveAgent(w http.ResponseWriter, r *http.Request) {
	id, ok := relayID(w, r)
	if !ok || !upgradable(w, r) {
		return
	}
	if !rl.reserve(id) {
		rl.log.Debug("relay: agent refused: too many idle connections", zap.String("id", id), zap.String("peer", r.RemoteAddr))
		refuse(w, http.StatusServiceUnavailable, "too many idle agent connections")
		return
	}
	c, raw := acceptUpgrade(w, r)
	if c == nil {
		rl.mu.Lock()
		rl.release(id)
		rl.mu.Unlock()
		return
	}
	c.SetReadLimit(maxMessage)
	rc := &relayConn{rl: rl, id: id, agent: relaySide{c, raw}, done: make(chan struct{})}
	if !rl.enqueue(rc) {
		relaySide{c, raw}.close(websocket.StatusGoingAway, "")
		return
	}
	rl.log.Debug("relay: agent waiting", zap.String("id", id), zap.String("peer", r.RemoteAddr))
	rl.startKeepalive(rc, rc.agent)
	rc.pumpAgent()
}

func (rl *Relay) serveClient(w http.ResponseWriter, r *http.Request) {
	if rl.o.Authorize != nil {
		if err := rl.o.Authorize(r); err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, gantry.ErrPermissionDenied) {
				status = http.StatusForbidden
			}
			rl.log.Debug("relay: client refused", zap.String("peer", r.RemoteAddr), zap.Error(err))
			refuse(w, status, http.StatusText(status))
			return
		}
	}
	id, ok := relayID(w, r)
	if !ok || !upgradable(w, r) {
		return
	}
	rl.mu.Lock()
	admitted := !rl.closed && rl.nClients < rl.o.MaxClients
	if admitted {
		rl.nClients++
	}
	rl.mu.Unlock()
	if !admitted {
		rl.log.Debug("relay: client refused: too many clients", zap.String("id", id), zap.String("peer", r.RemoteAddr))
		refuse(w, http.StatusServiceUnavailable, "too many clients")
		return
	}
	defer func() {
		rl.mu.Lock()
		rl.nClients--
		rl.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(r.Context(), rl.o.PairTimeout)
	defer cancel()
	var rc *relayConn
	for rc == nil {
		if rc = rl.claim(ctx, id); rc == nil {
			if r.Context().Err() == nil {
				refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("no agent of container %q is waiting at the relay", id))
			}
			return
		}
		if rc.ended() {
			rc = nil
		}
	}
	c, raw := acceptUpgrade(w, r)
	if c == nil {
		rl.requeue(rc)
		return
	}
	c.SetReadLimit(maxMessage)
	client := relaySide{c, raw}
	if err := rc.pair(client); err != nil {
		rc.end(client.c, err)
		client.close(websocket.StatusGoingAway, "")
		return
	}
	rl.log.Debug("relay: client paired", zap.String("id", id), zap.String("peer", r.RemoteAddr))
	rl.startKeepalive(rc, client)
	rc.pumpClient(client)
}

// reserve takes an idle slot for an agent of id about to be upgraded.
func (rl *Relay) reserve(id string) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed || rl.nIdle >= rl.o.MaxIdle || rl.slots[id] >= rl.o.MaxIdlePerID {
		return false
	}
	rl.slots[id]++
	rl.nIdle++
	return true
}

// release gives back an idle slot of id; rl.mu is held.
func (rl *Relay) release(id string) {
	if rl.slots[id]--; rl.slots[id] <= 0 {
		delete(rl.slots, id)
	}
	rl.nIdle--
}

// enqueue hands a new idle connection, holding a slot, to the oldest
// client waiting for its ID, or queues it.
func (rl *Relay) enqueue(rc *relayConn) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		rl.release(rc.id)
		return false
	}
	rl.live[rc] = struct{}{}
	rl.offerLocked(rc)
	return true
}

// offerLocked gives rc, which holds a slot, to the oldest client waiting
// for its ID, giving back the slot, or else queues it; rl.mu is held.
func (rl *Relay) offerLocked(rc *relayConn) {
	if w := rl.waiting[rc.id]; len(w) > 0 {
		if len(w) == 1 {
			delete(rl.waiting, rc.id)
		} else {
			rl.waiting[rc.id] = w[1:]
		}
		rl.release(rc.id)
		w[0] <- rc
		return
	}
	rl.idle[rc.id] = append(rl.idle[rc.id], rc)
}

// requeue puts back at the head of its queue a connection that a client
// claimed but could not use, unless it has ended.
func (rl *Relay) requeue(rc *relayConn) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if _, ok := rl.live[rc]; !ok || rl.closed {
		return
	}
	rl.slots[rc.id]++
	rl.nIdle++
	if len(rl.waiting[rc.id]) > 0 {
		rl.offerLocked(rc)
		return
	}
	rl.idle[rc.id] = append([]*relayConn{rc}, rl.idle[rc.id]...)
}

// claim takes the oldest idle connection of id, waiting for one until ctx
// ends; nil means none came.
func (rl *Relay) claim(ctx context.Context, id string) *relayConn {
	rl.mu.Lock()
	if q := rl.idle[id]; len(q) > 0 {
		rc := rl.unqueueLocked(id, 0)
		rl.mu.Unlock()
		return rc
	}
	ch := make(chan *relayConn, 1)
	rl.waiting[id] = append(rl.waiting[id], ch)
	rl.mu.Unlock()
	select {
	case rc := <-ch:
		return rc
	case <-ctx.Done():
	case <-rl.ctx.Done():
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if w := slices.DeleteFunc(rl.waiting[id], func(c chan *relayConn) bool { return c == ch }); len(w) > 0 {
		rl.waiting[id] = w
	} else {
		delete(rl.waiting, id)
	}
	select {
	case rc := <-ch:
		return rc
	default:
		return nil
	}
}

// unqueueLocked removes the i-th idle connection of id and gives back its
// slot; rl.mu is held.
func (rl *Relay) unqueueLocked(id string, i int) *relayConn {
	q := rl.idle[id]
	rc := q[i]
	if q = slices.Delete(q, i, i+1); len(q) > 0 {
		rl.idle[id] = q
	} else {
		delete(rl.idle, id)
	}
	rl.release(id)
	return rc
}

// forget removes an ended connection from the relay's books.
func (rl *Relay) forget(rc *relayConn) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	delete(rl.live, rc)
	if i := slices.Index(rl.idle[rc.id], rc); i >= 0 {
		rl.unqueueLocked(rc.id, i)
	}
}

// idleCount reports the idle connections queued for id.
func (rl *Relay) idleCount(id string) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.idle[id])
}

// startKeepalive runs keepalive for one side of rc unless the relay is
// closed, which ends rc anyway.
func (rl *Relay) startKeepalive(rc *relayConn, side relaySide) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		return
	}
	rl.pingers.Add(1)
	go func() {
		defer rl.pingers.Done()
		rl.keepalive(rc, side)
	}()
}

// keepalive pings one side of rc until rc ends, and ends rc when a ping
// is not answered within the interval.
func (rl *Relay) keepalive(rc *relayConn, side relaySide) {
	t := time.NewTicker(rl.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-rc.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), rl.o.PingInterval)
		err := side.c.Ping(ctx)
		cancel()
		if err != nil {
			rc.end(side.c, err)
			return
		}
	}
}

// relaySide is one WebSocket the relay holds, with the connection under
// it, closed to cut a close handshake short.
type relaySide struct {
	c   *websocket.Conn
	raw net.Conn
}

// close closes the side with a close handshake bounded by closeGrace.
func (s relaySide) close(code websocket.StatusCode, reason string) {
	cut := time.AfterFunc(closeGrace, func() { s.raw.Close() })
	defer cut.Stop()
	s.c.Close(code, reason)
}

// relayConn is an agent's connection to the relay and, once a client has
// claimed it, the client's.
type relayConn struct {
	rl    *Relay
	id    string
	agent relaySide

	// client is set once the client is paired, before the agent's held
	// messages are passed on.
	client atomic.Pointer[relaySide]

	// mu orders the agent's messages to the client: it is held while the
	// held messages are passed on at pairing and while a message read
	// before the pairing is placed.
	mu      sync.Mutex
	paired  bool
	held    []heldMessage
	heldLen int

	endOnce sync.Once
	done    chan struct{} // closed when rc ends
}

type heldMessage struct {
	typ websocket.MessageType
	b   []byte
}

// ended reports whether rc has ended.
func (rc *relayConn) ended() bool {
	select {
	case <-rc.done:
		return true
	default:
		return false
	}
}

// pair makes client the agent's peer and passes on what the agent has
// sent so far.
func (rc *relayConn) pair(client relaySide) error {
	rc.client.Store(&client)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.ended() {
		return errors.New("the agent's connection ended")
	}
	rc.paired = true
	for _, m := range rc.held {
		if err := client.c.Write(context.Background(), m.typ, m.b); err != nil {
			return err
		}
	}
	rc.held, rc.heldLen = nil, 0
	return nil
}

// pumpAgent reads the agent's messages until its connection ends: held
// while the connection is idle, passed on to the client once paired.
func (rc *relayConn) pumpAgent() {
	for {
		typ, r, err := rc.agent.c.Reader(context.Background())
		if err != nil {
			rc.end(rc.agent.c, err)
			return
		}
		rc.mu.Lock()
		paired := rc.paired
		rc.mu.Unlock()
		if paired {
			if from, err := relayMessage(rc.client.Load().c, typ, r); err != nil {
				rc.end(rc.side(from, rc.client.Load().c), err)
				return
			}
			continue
		}
		if err := rc.hold(typ, r); err != nil {
			rc.end(rc.agent.c, err)
			return
		}
	}
}

// side returns the agent's connection when fromSource, else other.
func (rc *relayConn) side(fromSource bool, other *websocket.Conn) *websocket.Conn {
	if fromSource {
		return rc.agent.c
	}
	return other
}

// hold reads a message the agent sent before its client arrived. The
// client may have arrived meanwhile; then the message goes to it, after
// those held before it.
func (rc *relayConn) hold(typ websocket.MessageType, r io.Reader) error {
	rc.mu.Lock()
	budget := relayIdleBytes - rc.heldLen - heldOverhead
	rc.mu.Unlock()
	tooMuch := fmt.Errorf("the agent sent more than %d bytes before its client arrived", relayIdleBytes)
	if budget < 0 {
		return tooMuch
	}
	b := make([]byte, budget)
	n, err := readMessage(r, b)
	if err != nil {
		return fmt.Errorf("%w: %w", tooMuch, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.paired {
		return rc.client.Load().c.Write(context.Background(), typ, b[:n])
	}
	rc.held = append(rc.held, heldMessage{typ, b[:n]})
	rc.heldLen += n + heldOverhead
	return nil
}

// pumpClient passes the client's messages on to the agent until either
// connection ends.
func (rc *relayConn) pumpClient(client relaySide) {
	for {
		typ, r, err := client.c.Reader(context.Background())
		if err != nil {
			rc.end(client.c, err)
			return
		}
		if from, err := relayMessage(rc.agent.c, typ, r); err != nil {
			if from {
				rc.end(client.c, err)
			} else {
				rc.end(rc.agent.c, err)
			}
			return
		}
	}
}

// end ends rc once: from is the side whose connection failed or closed
// with err (nil when the relay ends it). A side that closed with a status
// has been answered by the library; the other side is closed with that
// status, or with 1001 (going away) when there is none to pass on.
func (rc *relayConn) end(from *websocket.Conn, err error) {
	rc.endOnce.Do(func() {
		rc.rl.forget(rc)
		close(rc.done)
		code, reason := websocket.StatusGoingAway, ""
		var ce websocket.CloseError
		if errors.As(err, &ce) && passable(ce.Code) {
			code, reason = ce.Code, ce.Reason
		}
		rc.rl.log.Debug("relay: connection ended", zap.String("id", rc.id), zap.Error(err))
		sides := []relaySide{rc.agent}
		if c := rc.client.Load(); c != nil {
			sides = append(sides, *c)
		}
		var closing sync.WaitGroup
		for _, s := range sides {
			if s.c == from {
				closing.Go(func() { s.c.CloseNow() })
				continue
			}
			closing.Go(func() { s.close(code, reason) })
		}
		closing.Wait()
	})
}

// passable reports whether a close status received from one side may be
// sent on to the other (1005, no status, is sent as an empty close).
func passable(code websocket.StatusCode) bool {
	switch {
	case code == websocket.StatusNoStatusRcvd:
		return true
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// relayBuffers are the buffers messages pass through once paired.
var relayBuffers = sync.Pool{New: func() any { b := make([]byte, maxMessage); return &b }}

// relayMessage passes one message, read whole, on to dst unchanged. An
// error says whether reading it (fromSource) or writing it failed.
func relayMessage(dst *websocket.Conn, typ websocket.MessageType, r io.Reader) (fromSource bool, err error) {
	bp := relayBuffers.Get().(*[]byte)
	defer relayBuffers.Put(bp)
	n, err := readMessage(r, *bp)
	if err != nil {
		return true, err
	}
	return false, dst.Write(context.Background(), typ, (*bp)[:n])
}

// readMessage reads the rest of a message into buf; a message longer
// than buf is an error.
func readMessage(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, nil
	case err != nil:
		return n, err
	}
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("message longer than %d bytes", len(buf))
		}
		return n, err
	}
	return n, nil
}

// RelayAgentURL returns the URL an agent gives Agent.ConnectRelay to wait
// at the relay at relayURL for clients of container id:
// relayURL/agent?id=ID. relayURL is a ws://, wss://, http:// or https://
// URL, with or without a path of its own.
func RelayAgentURL(relayURL, id string) (string, error) {
	return relayPath(relayURL, "agent", id)
}

func relayPath(relayURL, path, id string) (string, error) {
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) {
		return "", fmt.Errorf("%w: container id of %d bytes, want 1 to %d bytes of UTF-8", gantry.ErrInvalidArgument, len(id), maxIDLen)
	}
	u, err := url.Parse(relayURL)
	if err != nil {
		return "", fmt.Errorf("%w: relay URL: %v", gantry.ErrInvalidArgument, err)
	}
	u = u.JoinPath(path)
	q := u.Query()
	q.Set("id", id)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DialRelay connects to the agent of container id through the relay at
// relayURL (see Relay and Agent.ConnectRelay), and authenticates both ways
// with secret, end to end: the relay sees nothing it could use. It dials
// relayURL/client?id=ID, and accepts only an agent that dialled
// relayURL/agent (RelayAgentURL): that is the endpoint both bind into the
// handshake, so an agent or impostor reached any other way is refused.
// opts.HTTPHeader carries what the relay asks of a client (on Cloud Run,
// an identity token in Authorization); opts.Insecure is as for Dial.
//
// A relay that refuses the client (HTTP 401 or 403) is an error wrapping
// gantry.ErrPermissionDenied, as is a failed authentication (a wrong
// secret on either side, or an agent that is not id's); a relay that
// cannot be reached, or has no agent of id waiting within its
// PairTimeout, is an error wrapping gantry.ErrUnavailable.
func DialRelay(ctx context.Context, relayURL, id string, secret []byte, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("agent: dial relay %s: %w: secret of %d bytes, need at least %d", relayURL, gantry.ErrInvalidArgument, len(secret), MinSecretLen)
	}
	clientURL, err := relayPath(relayURL, "client", id)
	if err != nil {
		return nil, fmt.Errorf("agent: dial relay %s: %w", relayURL, err)
	}
	agentURL, _ := relayPath(relayURL, "agent", id)
	if err := checkSecure(clientURL, o.Insecure); err != nil {
		return nil, fmt.Errorf("agent: dial relay %s: %w", relayURL, err)
	}
	endpoint, err := endpointOf(agentURL)
	if err != nil {
		return nil, fmt.Errorf("agent: dial relay %s: %w", relayURL, err)
	}
	c, raw, resp, err := dialWebSocket(ctx, clientURL, o.HTTPClient, o.HTTPHeader)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("agent: dial relay %s: %w: the relay refused the client (HTTP %d)", relayURL, gantry.ErrPermissionDenied, resp.StatusCode)
		}
		return nil, fmt.Errorf("agent: dial relay %s for %q: %w: %v", relayURL, id, gantry.ErrUnavailable, err)
	}
	if c.Subprotocol() != subprotocol {
		c.CloseNow()
		return nil, fmt.Errorf("agent: dial relay %s: %w: the server is not a gantry relay", relayURL, gantry.ErrUnavailable)
	}
	t := newWSTransport(c, raw)
	secretFor := func(got string) []byte {
		if got == id {
			return secret
		}
		return nil
	}
	if _, err := controllerHandshake(ctx, t, secretFor, modeReverse, binding{serves: servesListed([]string{endpoint})}); err != nil {
		t.close(true)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("agent: dial relay %s for %q: %w: authentication failed (wrong secret, or not the agent of %q waiting at %s): %v", relayURL, id, gantry.ErrPermissionDenied, id, endpoint, err)
	}
	cl := newClient(t, id, o.Logger)
	go cl.run()
	return cl, nil
}
