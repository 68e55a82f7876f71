package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
	"go.uber.org/zap"

	"github.com/gantryhq/gantry"
)

// backend is the name errors carry: `docker: stop "web": ...`.
const backend = "docker"

// Runtime is a gantry.Runtime over a Docker Engine. It is safe for
// concurrent use. It keeps nothing in memory that a new Runtime would
// need: every container carries its gantry record in its labels.
type Runtime struct {
	cli *client.Client
	cfg config
	log *zap.Logger

	state gantry.CloseState
	// base ends when the Runtime is closed; every call to the daemon runs
	// under it, so Close ends pending waits, follows and execs.
	base   context.Context
	cancel context.CancelFunc
	// wg counts the goroutines a method leaves running (waits, stops,
	// timeouts), which Close waits for.
	wg sync.WaitGroup

	// stopSignals reports whether the daemon takes a signal with stop and
	// restart (API 1.42 and later); older daemons ignore it, so Stop then
	// does what the daemon would do, from here.
	stopSignals bool

	mu sync.Mutex
	// timeouts holds the timers that bound runs this Runtime started
	// (Spec.Timeout), by container ID.
	timeouts map[string]*runTimer
}

type config struct {
	clientOpts []client.Opt
	network    string
	session    string
	log        *zap.Logger
}

// Option configures New.
type Option func(*config)

// WithClientOptions adds options for moby's client, applied after
// client.FromEnv, so they take precedence over the environment: a host, a
// TLS configuration, an HTTP client.
func WithClientOptions(opts ...client.Opt) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

// WithHost talks to the daemon at host ("unix:///var/run/docker.sock",
// "tcp://10.0.0.2:2376") instead of DOCKER_HOST or the default socket.
func WithHost(host string) Option {
	return WithClientOptions(client.WithHost(host))
}

// WithNetwork sets the network mode of the containers the Runtime creates
// ("none", "host", a network's name). Empty, the default, is the daemon's
// default network.
func WithNetwork(mode string) Option {
	return func(c *config) { c.network = mode }
}

// WithSession sets the value of the session label every container this
// Runtime creates carries, so a sweeper can find what one process or test
// run left behind. The default is a fresh random value per Runtime.
func WithSession(session string) Option {
	return func(c *config) { c.session = session }
}

// WithLogger makes the Runtime log its operations to l at Debug level.
// The default logs nothing.
func WithLogger(l *zap.Logger) Option {
	return func(c *config) { c.log = l }
}

// New connects to a Docker Engine: by default the one DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH name, as the docker CLI does, or
// the local socket. It agrees on an API version with the daemon (any from
// 1.40 up) before it returns, so an engine that is not there is an
// ErrUnavailable here rather than at the first call.
func New(ctx context.Context, opts ...Option) (_ *Runtime, err error) {
	defer gantry.WrapOp(&err, backend, "new", "")
	cfg := config{session: newSession(), log: zap.NewNop()}
	for _, o := range opts {
		o(&cfg)
	}
	cli, err := client.New(append([]client.Opt{client.FromEnv}, cfg.clientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: docker client: %w", gantry.ErrInvalidArgument, err)
	}
	ping, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		cli.Close()
		return nil, classify(err, "reach the Docker daemon at "+cli.DaemonHost())
	}
	base, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cli:         cli,
		cfg:         cfg,
		log:         cfg.log,
		base:        base,
		cancel:      cancel,
		stopSignals: versions.GreaterThanOrEqualTo(cli.ClientVersion(), "1.42"),
		timeouts:    map[string]*runTimer{},
	}
	r.log.Debug("connected", zap.String("host", cli.DaemonHost()), zap.String("api", cli.ClientVersion()),
		zap.String("daemon api", ping.APIVersion), zap.String("session", cfg.session))
	return r, nil
}

func newSession() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Session returns the value of the session label of the containers this
// Runtime creates.
func (r *Runtime) Session() string { return r.cfg.session }

// Client returns the moby client the Runtime uses, for what gantry does not
// cover (images, networks, volumes). Closing the Runtime closes it.
func (r *Runtime) Client() *client.Client { return r.cli }

// Close ends every pending wait, follow and exec of the Runtime and
// releases its connection. Containers keep running: the daemon owns them,
// and a new Runtime sees them.
func (r *Runtime) Close() error {
	return r.state.Close(func() error {
		r.cancel()
		r.mu.Lock()
		for id, t := range r.timeouts {
			t.stop()
			delete(r.timeouts, id)
		}
		r.mu.Unlock()
		r.wg.Wait()
		return r.cli.Close()
	})
}

// BeforeClose implements gantry.BeforeCloser.
func (r *Runtime) BeforeClose(f func()) (stop func() bool, err error) {
	return r.state.BeforeClose(f)
}

// join returns a context that ends when ctx does or when the Runtime is
// closed, for one call to the daemon.
func (r *Runtime) join(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.base, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// closedOr returns gantry.ErrClosed when the Runtime was closed while a
// call ran (which is what ended it), and err otherwise.
func (r *Runtime) closedOr(err error) error {
	if err != nil && r.base.Err() != nil {
		return gantry.ErrClosed
	}
	return err
}

var (
	_ gantry.Runtime        = (*Runtime)(nil)
	_ gantry.WaitRegisterer = (*Runtime)(nil)
	_ gantry.BeforeCloser   = (*Runtime)(nil)
	_ gantry.Restarter      = (*Runtime)(nil)
	_ gantry.Pauser         = (*Runtime)(nil)
	_ gantry.Renamer        = (*Runtime)(nil)
	_ gantry.Updater        = (*Runtime)(nil)
	_ gantry.Attacher       = (*Runtime)(nil)
	_ gantry.ProcessLister  = (*Runtime)(nil)
	_ gantry.StatsReader    = (*Runtime)(nil)
)
