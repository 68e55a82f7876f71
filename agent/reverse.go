package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

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
	var o ConnectOptions
	if opts != nil {
		o = *opts
	}
	if a.cfg.PassThrough {
		return fmt.Errorf("agent: connect: %w: a pass-through agent serves no sessions", gantry.ErrInvalidArgument)
	}
	if err := checkSecure(rawURL, o.Insecure); err != nil {
		return fmt.Errorf("agent: connect %s: %w", rawURL, err)
	}
	endpoint, err := endpointOf(rawURL)
	if err != nil {
		return fmt.Errorf("agent: connect %s: %w", rawURL, err)
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := o.MinBackoff
	for {
		dctx, dcancel := context.WithTimeout(ctx, o.DialTimeout)
		c, raw, _, err := dialWebSocket(dctx, rawURL, o.HTTPClient, o.HTTPHeader)
		dcancel()
		switch {
		case err != nil:
			a.log.Info("agent: dialing the hub failed", zap.String("url", rawURL), zap.Error(err))
		case c.Subprotocol() != subprotocol:
			c.CloseNow()
			err = errors.New("the server is not a gantry hub")
			a.log.Info("agent: dialing the hub failed", zap.String("url", rawURL), zap.Error(err))
		default:
			if a.serve(ctx, newWSTransport(c, raw), modeReverse, rawURL, binding{dialled: endpoint}) {
				backoff = o.MinBackoff
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, o.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}
