package agent

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gantryhq/gantry"
	"go.uber.org/zap"
)

// Hub is the controller's end of reverse mode: an http.Handler that agents
// dial into (Agent.Connect), which authenticates each one against its
// container's secret and hands out a Client per connected container.
type Hub struct {
	secret    func(id string) []byte
	endpoints []string // HubOptions.Endpoints in endpoint form
	log       *zap.Logger

	mu      sync.Mutex
	closed  bool
	clients map[string]*Client
	changed chan struct{} // closed and replaced whenever clients changes
}

// HubOptions configures NewHub.
type HubOptions struct {
	// Endpoints are the URLs agents dial to reach the Hub (the URL given
	// to Agent.Connect, or a relay's); an agent that dialled any other URL
	// is refused, so that an impostor it was led to cannot relay its
	// proof to the Hub (see the package documentation). Empty means the
	// Hub's own loopback address and port, dialled directly.
	Endpoints []string
	// Logger receives diagnostics; nil means none.
	Logger *zap.Logger
}

// NewHub returns a Hub. secret returns the secret of the container with
// the given ID, or nil for an ID the caller does not know; such an agent
// is refused exactly as one with a wrong secret is. An endpoint that is
// not a ws:// or wss:// URL is an error wrapping gantry.ErrInvalidArgument.
func NewHub(secret func(id string) []byte, opts *HubOptions) (*Hub, error) {
	var o HubOptions
	if opts != nil {
		o = *opts
	}
	eps, err := endpoints(o.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("agent: hub: %w", err)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Hub{secret: secret, endpoints: eps, log: o.Logger, clients: make(map[string]*Client), changed: make(chan struct{})}, nil
}

// ServeHTTP upgrades an agent's request to a WebSocket, authenticates it
// and keeps it as the container's current connection until it drops or a
// newer one from the same container replaces it.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, raw := upgrade(w, r)
	if c == nil {
		return
	}
	t := newWSTransport(c, raw)
	serves := servesLoopback(r)
	if len(h.endpoints) > 0 {
		serves = servesListed(h.endpoints)
	}
	id, err := controllerHandshake(r.Context(), t, func(id string) []byte {
		if s := h.secret(id); len(s) >= MinSecretLen {
			return s
		}
		return nil
	}, modeReverse, binding{serves: serves})
	if err != nil {
		// Debug, not Info: anyone who can reach the Hub can make this
		// happen, as often as they like.
		h.log.Debug("agent refused", zap.String("peer", r.RemoteAddr), zap.Error(err))
		t.close(true)
		return
	}
	cl := newClient(t, id, h.log)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		cl.Close()
		return
	}
	old := h.clients[id]
	h.clients[id] = cl
	h.notifyLocked()
	h.mu.Unlock()
	if old != nil {
		old.Close()
	}
	cl.run()
	h.mu.Lock()
	if h.clients[id] == cl {
		delete(h.clients, id)
		h.notifyLocked()
	}
	h.mu.Unlock()
}

func (h *Hub) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Client returns the connection of the container with the given ID,
// waiting until its agent connects or ctx ends.
func (h *Hub) Client(ctx context.Context, id string) (*Client, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, fmt.Errorf("agent: hub: %w: closed", gantry.ErrUnavailable)
		}
		cl := h.clients[id]
		changed := h.changed
		h.mu.Unlock()
		if cl != nil {
			select {
			case <-cl.Done():
			default:
				return cl, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("agent: waiting for the agent of %q to connect: %w", id, ctx.Err())
		}
	}
}

// Close drops every agent connection; agents keep trying to reconnect.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	list := make([]*Client, 0, len(h.clients))
	for _, cl := range h.clients {
		list = append(list, cl)
	}
	h.clients = make(map[string]*Client)
	h.notifyLocked()
	h.mu.Unlock()
	var closing sync.WaitGroup
	for _, cl := range list {
		closing.Go(func() { cl.Close() })
	}
	closing.Wait()
	return nil
}

// ConnectOptions configures Agent.Connect.
type ConnectOptions struct {
	// HTTPClient makes the WebSocket handshakes; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// HTTPHeader is added to each handshake request.
	HTTPHeader http.Header
	// Header, if set, is called before every attempt, with a context
	// bounded by DialTimeout, for headers to add to that attempt's
	// handshake request: each key it returns replaces that key's values
	// in HTTPHeader. It suits credentials that expire, such as an
	// identity token the relay's front end asks for. An error from it
	// counts as a failed attempt: it is logged and the agent tries again
	// after the backoff. Calls made by one Connect or ConnectRelay do not
	// overlap.
	Header func(ctx context.Context) (http.Header, error)
	// Insecure allows a plain ws:// URL to a host that is not a loopback
	// address.
	Insecure bool
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure (with jitter) and starts over after a
	// connection that authenticated. Zero means 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds each attempt's connection and WebSocket upgrade,
	// so a Hub (or a proxy in front of it) that accepts the connection but
	// never answers cannot stop the agent from trying again. Zero means
	// 30 s.
	DialTimeout time.Duration
}

// defaultDialTimeout is ConnectOptions.DialTimeout's default.
const defaultDialTimeout = 30 * time.Second

// Connect runs reverse mode: it dials the Hub at rawURL, serves sessions
// on the connection, and whenever the connection fails or drops dials
// again with backoff. rawURL is bound into the handshake, so the Hub must
// serve it (HubOptions.Endpoints, or by default its own loopback address).
// It returns when ctx ends or the agent is closed, and at once for a URL
// that could never work.
func (a *Agent) Connect(ctx context.Context, rawURL string, opts *ConnectOptions) error {
	d, err := a.newRedialer("connect", "hub", rawURL, opts)
	if err != nil {
		return err
	}
	ctx, cancel := a.untilClosed(ctx)
	defer cancel()
	backoff := d.o.MinBackoff
	for {
		if t := d.dial(ctx); t != nil {
			if a.serve(ctx, t, modeReverse, rawURL, binding{dialled: d.endpoint}) {
				backoff = d.o.MinBackoff
			}
		}
		if !d.pause(ctx, &backoff) {
			return nil
		}
	}
}

// ConnectRelay runs reverse mode through a Relay: it keeps one idle
// connection open at rawURL, the relay's /agent URL with the container's
// ID (RelayAgentURL), for the next client (DialRelay) to claim. The
// handshake on an idle connection waits for its client with no deadline
// (the relay and the agent ping each other meanwhile); as soon as a
// client's first handshake message arrives, the agent dials its next idle
// connection, so clients may come one after another or at once, each
// with its own end-to-end handshake and sessions. It dials again with
// backoff when the relay cannot be reached or drops an idle connection;
// the backoff starts over once a client has claimed a connection or an
// idle one has lasted MaxBackoff. rawURL is bound into the handshake
// (without its query), and DialRelay accepts exactly that endpoint.
// ConnectRelay returns when ctx ends or the agent is closed, once every
// connection it made has ended, and at once for a URL that could never
// work.
func (a *Agent) ConnectRelay(ctx context.Context, rawURL string, opts *ConnectOptions) error {
	d, err := a.newRedialer("connect through relay", "relay", rawURL, opts)
	if err != nil {
		return err
	}
	ctx, cancel := a.untilClosed(ctx)
	defer cancel()
	var conns sync.WaitGroup
	defer conns.Wait()
	backoff := d.o.MinBackoff
	for {
		if ws := d.dial(ctx); ws != nil {
			claimed := make(chan struct{})
			ended := make(chan struct{})
			t := &relayTransport{wsTransport: ws, claim: sync.OnceFunc(func() { close(claimed) })}
			opened := time.Now()
			conns.Go(func() {
				defer close(ended)
				a.serve(ctx, t, modeReverse, rawURL, binding{dialled: d.endpoint})
			})
			conns.Go(func() { idleKeepalive(ws, claimed, ended) })
			select {
			case <-claimed:
			case <-ended:
			}
			select {
			case <-claimed:
				backoff = d.o.MinBackoff
				if ctx.Err() != nil {
					return nil
				}
				continue
			default:
			}
			if time.Since(opened) >= d.o.MaxBackoff {
				backoff = d.o.MinBackoff
			}
		}
		if !d.pause(ctx, &backoff) {
			return nil
		}
	}
}

// relayTransport is an idle connection ConnectRelay holds at a relay;
// claimed tells ConnectRelay that a client has arrived on it.
type relayTransport struct {
	*wsTransport
	claim func()
}

func (t *relayTransport) claimed() { t.claim() }

// idleKeepalive pings the relay on an idle connection until a client
// claims it or it ends, and cuts it off if the relay stops answering: the
// handshake waiting on it has no deadline of its own.
func idleKeepalive(t *wsTransport, claimed, ended <-chan struct{}) {
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-claimed:
			return
		case <-ended:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), keepaliveInterval)
		err := t.c.Ping(ctx)
		cancel()
		if err != nil {
			select {
			case <-claimed:
			case <-ended:
			default:
				t.close(true)
			}
			return
		}
	}
}

// redialer holds what Connect and ConnectRelay need to dial, checked.
type redialer struct {
	a        *Agent
	url      string
	endpoint string
	peer     string // "hub" or "relay", for messages
	o        ConnectOptions
}

func (a *Agent) newRedialer(op, peer, rawURL string, opts *ConnectOptions) (*redialer, error) {
	var o ConnectOptions
	if opts != nil {
		o = *opts
	}
	if a.cfg.PassThrough {
		return nil, fmt.Errorf("agent: %s: %w: a pass-through agent serves no sessions", op, gantry.ErrInvalidArgument)
	}
	if err := checkSecure(rawURL, o.Insecure); err != nil {
		return nil, fmt.Errorf("agent: %s %s: %w", op, rawURL, err)
	}
	endpoint, err := endpointOf(rawURL)
	if err != nil {
		return nil, fmt.Errorf("agent: %s %s: %w", op, rawURL, err)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	return &redialer{a: a, url: rawURL, endpoint: endpoint, peer: peer, o: o}, nil
}

// untilClosed returns ctx, cancelled as well when the agent is closed.
func (a *Agent) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-a.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// dial makes one attempt, logging a failure; nil means it failed.
func (d *redialer) dial(ctx context.Context) *wsTransport {
	dctx, cancel := context.WithTimeout(ctx, d.o.DialTimeout)
	defer cancel()
	header, err := d.header(dctx)
	var c *websocket.Conn
	var raw io.Closer
	if err == nil {
		c, raw, _, err = dialWebSocket(dctx, d.url, d.o.HTTPClient, header)
	}
	if err == nil && c.Subprotocol() != subprotocol {
		c.CloseNow()
		err = fmt.Errorf("the server is not a gantry %s", d.peer)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.a.log.Info("agent: dialing the "+d.peer+" failed", zap.String("url", d.url), zap.Error(err))
		}
		return nil
	}
	return newWSTransport(c, raw)
}

// header returns the headers of the next attempt: HTTPHeader, with what
// ConnectOptions.Header returns set over it.
func (d *redialer) header(ctx context.Context) (http.Header, error) {
	if d.o.Header == nil {
		return d.o.HTTPHeader, nil
	}
	fresh, err := d.o.Header(ctx)
	if err != nil {
		return nil, fmt.Errorf("getting the request headers: %w", err)
	}
	h := d.o.HTTPHeader.Clone()
	if h == nil {
		h = make(http.Header, len(fresh))
	}
	for k, vs := range fresh {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h, nil
}

// pause waits before the next attempt, doubling *backoff, and reports
// whether to go on: false once ctx has ended.
func (d *redialer) pause(ctx context.Context, backoff *time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	wait := *backoff/2 + rand.N(*backoff/2+1)
	*backoff = min(2**backoff, d.o.MaxBackoff)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
