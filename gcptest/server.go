package gcptest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest/internal/quota"
)

// DefaultStopGracePeriod is how long a task's container has between
// SIGTERM and SIGKILL when its execution is cancelled or its attempt times
// out: Cloud Run's container runtime contract gives 10 seconds.
const DefaultStopGracePeriod = 10 * time.Second

// Option configures a Server.
type Option func(*config)

type config struct {
	addr          string
	runtime       gantry.Runtime
	instantOps    bool
	grace         time.Duration
	reconcile     time.Duration
	now           func() time.Time
	serverOptions []grpc.ServerOption
	secrets       []secretVersion
	registries    map[string][]remote.Option
	// instanceRestart and instanceRestartMax are the Cloud Run
	// instances' restart backoff (WithInstanceRestartBackoff); zero
	// means the defaults.
	instanceRestart, instanceRestartMax time.Duration

	strict  strictness
	seed    uint64
	seedSet bool
	// projectNumbers maps project numbers to IDs (WithProjectNumber).
	projectNumbers map[string]string
	// errs are the options' errors, reported by NewServer.
	errs []error
}

// WithRuntime runs task attempts as containers of rt instead of the
// default in-memory runtime. The Server does not close rt.
func WithRuntime(rt gantry.Runtime) Option {
	return func(c *config) { c.runtime = rt }
}

// WithInstantOperations makes every long-running operation finish before
// the call that started it returns, so a client never has to poll: CreateJob
// returns a done operation, and RunJob returns once its execution has
// finished (or the call's context ends).
func WithInstantOperations() Option {
	return func(c *config) { c.instantOps = true }
}

// WithAddr makes the Server listen on addr (host:port) instead of
// 127.0.0.1:0.
func WithAddr(addr string) Option {
	return func(c *config) { c.addr = addr }
}

// WithStopGracePeriod replaces DefaultStopGracePeriod, the time between
// SIGTERM and SIGKILL when a task attempt is stopped. Tests of
// cancellation use a short one.
func WithStopGracePeriod(d time.Duration) Option {
	return func(c *config) { c.grace = d }
}

// WithReconcileDelay sets how long Create, Update and Delete operations on
// a job stay pending before they finish (default 20ms), as the real
// control plane takes a moment to reconcile. WithInstantOperations
// overrides it.
func WithReconcileDelay(d time.Duration) Option {
	return func(c *config) { c.reconcile = d }
}

// WithClock replaces time.Now for every timestamp the Server records.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithGRPCServerOptions adds options to the underlying grpc.Server.
func WithGRPCServerOptions(opts ...grpc.ServerOption) Option {
	return func(c *config) { c.serverOptions = append(c.serverOptions, opts...) }
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	cfg    config
	lis    net.Listener
	grpc   *grpc.Server
	rt     gantry.Runtime
	ownsRT bool

	faults  *faultTable
	limiter *quota.Limiter
	secrets secrets
	store   *store
	ops     *operations
	runner  *runner
	images  *imageStore
	ports   *portTable
	// work holds the attempts' volumes and the pulled images; Close
	// removes it.
	work      string
	logs      *logWiring
	functions *functionsWiring
	services  *servicesRoom
	instances *instancesRoom
	// idTokens mints and checks the ID tokens of the metadata server
	// and of IDToken, which the services' URLs take.
	idTokens *idTokens
	metadata *metadataServer

	// rng draws the Server's random choices from its seed.
	rngMu sync.Mutex
	rng   *rand.Rand

	// ctx ends when the Server closes; every background goroutine
	// watches it and is counted in wg.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	bgMu    sync.Mutex
	closing bool

	closeOnce sync.Once
	closeErr  error
	serveErr  chan error
}

// NewServer starts an emulator listening on 127.0.0.1 on a free port (or
// the address given WithAddr). Close it when done.
//
// Every strict rule is on (see WithStrict) unless Relax or Relaxed turns
// it off: the emulator holds clients to Google's documented contract by
// default.
func NewServer(opts ...Option) (*Server, error) {
	cfg := config{
		addr:      "127.0.0.1:0",
		grace:     DefaultStopGracePeriod,
		reconcile: 20 * time.Millisecond,
		now:       time.Now,
	}
	WithStrict()(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}
	if cfg.grace < 0 {
		return nil, fmt.Errorf("gcptest: negative stop grace period %s", cfg.grace)
	}
	secrets, err := newSecrets(cfg.secrets)
	if err != nil {
		return nil, err
	}
	if !cfg.seedSet {
		cfg.seed = rand.Uint64()
	}
	s := &Server{
		cfg:      cfg,
		faults:   newFaultTable(),
		limiter:  quota.New(cfg.now),
		secrets:  secrets,
		serveErr: make(chan error, 1),
		rng:      rand.New(rand.NewPCG(cfg.seed, ^cfg.seed)),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rt = cfg.runtime
	if s.rt == nil {
		rt, err := defaultRuntime()
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("gcptest: start the default runtime: %w", err)
		}
		s.rt, s.ownsRT = rt, true
	}
	if s.work, err = os.MkdirTemp("", "gcptest-"); err != nil {
		s.cancel()
		if s.ownsRT {
			s.rt.Close()
		}
		return nil, fmt.Errorf("gcptest: a work directory: %w", err)
	}
	s.images = &imageStore{registries: cfg.registries, dir: s.work, pulled: map[string]*pullOnce{}}
	s.ports = newPortTable()
	s.store = newStore()
	s.ops = newOperations(s)
	s.runner = &runner{rt: s.rt, grace: cfg.grace, now: cfg.now, ingest: s.ingestLog}
	s.idTokens = newIDTokens(cfg.now)
	if s.metadata, err = startMetadata(s); err != nil {
		s.cancel()
		os.RemoveAll(s.work)
		if s.ownsRT {
			s.rt.Close()
		}
		return nil, fmt.Errorf("gcptest: the metadata server: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		s.cancel()
		s.metadata.close()
		os.RemoveAll(s.work)
		if s.ownsRT {
			s.rt.Close()
		}
		return nil, fmt.Errorf("gcptest: listen on %s: %w", cfg.addr, err)
	}
	s.lis = lis
	// Answers are counted outermost, so that an injected RESOURCE_EXHAUSTED
	// counts; faults come before quotas, as a call that fails on the way
	// in uses no quota.
	sopts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.faults.countUnary, s.faults.unary, s.quotaUnary),
		grpc.ChainStreamInterceptor(s.faults.countStream, s.faults.stream),
	}, cfg.serverOptions...)
	s.grpc = grpc.NewServer(sopts...)
	runpb.RegisterJobsServer(s.grpc, &jobsService{s: s})
	runpb.RegisterExecutionsServer(s.grpc, &executionsService{s: s})
	runpb.RegisterTasksServer(s.grpc, &tasksService{s: s})
	longrunningpb.RegisterOperationsServer(s.grpc, s.ops)
	s.logs = registerLogging(s)
	s.functions = registerFunctions(s, s.grpc)
	s.services = registerServices(s, s.grpc)
	s.instances = registerInstances(s, s.grpc)
	go func() { s.serveErr <- s.grpc.Serve(lis) }()
	return s, nil
}

// Addr returns the host:port the Server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// ClientOptions returns the options that point a Google client library
// (run/apiv2, logging/apiv2, logadmin, longrunning) at the Server: its
// endpoint, no credentials and a plaintext gRPC connection.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Runtime returns the gantry.Runtime the Server runs task attempts on.
func (s *Server) Runtime() gantry.Runtime { return s.rt }

// Close stops the Server: it cancels every running execution, kills its
// containers at once, stops serving and, unless the runtime came from
// WithRuntime, closes the runtime. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Functions', services' and Cloud Run instances' containers shut
		// down gracefully first: after cancel they would be killed and
		// orphan their commands.
		s.functions.close()
		s.services.close()
		s.instances.close()
		s.bgMu.Lock()
		s.closing = true
		s.bgMu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.logs.close()
		s.metadata.close()
		s.grpc.Stop()
		if err := <-s.serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.closeErr = err
		}
		if s.ownsRT {
			if err := s.rt.Close(); err != nil && s.closeErr == nil {
				s.closeErr = err
			}
		}
		os.RemoveAll(s.work)
	})
	return s.closeErr
}

// goBackground runs f on a goroutine that Close waits for. After Close
// has begun it runs nothing and reports false.
func (s *Server) goBackground(f func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) now() time.Time { return s.cfg.now() }

// Seed returns the seed of the Server's random choices (WithSeed).
func (s *Server) Seed() uint64 { return s.cfg.seed }

// random returns a number drawn from the Server's seed.
func (s *Server) random() uint64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Uint64()
}
