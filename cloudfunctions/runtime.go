package cloudfunctions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	functions "cloud.google.com/go/functions/apiv2"
	"cloud.google.com/go/functions/apiv2/functionspb"
	logging "cloud.google.com/go/logging/apiv2"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/gantryhq/gantry/internal/quota"
	"go.uber.org/zap"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
)

// Defaults of Config.
const (
	// DefaultPollInterval is how often a wait for something no request
	// can be held for (the next run, a removal) looks again, and the
	// cadence of long-running operation polls.
	DefaultPollInterval = time.Second
	// DefaultLogGrace is how long Logs keeps reading after it has seen
	// the container stop: Cloud Logging ingests seconds late.
	DefaultLogGrace = 10 * time.Second

	// The logs of a function's Cloud Run service.
	stdoutLog = "run.googleapis.com/stdout"
	stderrLog = "run.googleapis.com/stderr"
)

// Config holds what a Runtime needs to know once.
type Config struct {
	// Project is the Google Cloud project ID. Required.
	Project string
	// Region is the Cloud Functions region, such as "us-central1".
	// Required.
	Region string
	// ServiceAccount is the email of the identity the functions run as;
	// empty means the default (the Compute Engine default service
	// account).
	ServiceAccount string
	// Labels are Google Cloud labels put on every function. Keys and
	// values must follow Google's label rules; gantry's own keys are
	// refused.
	Labels map[string]string
	// Session is the value of the session label on everything this
	// Runtime creates. Empty means a fresh random one.
	Session string
	// PollInterval is the cadence of the waits no request can be held
	// for and of operation polls; zero means DefaultPollInterval.
	PollInterval time.Duration
	// LogGrace is how long a following Logs reads on after the container
	// stopped; zero means DefaultLogGrace.
	LogGrace time.Duration
	// HTTPClient invokes the functions. Nil means a client that sends a
	// Google-signed ID token for each function's URL
	// (google.golang.org/api/idtoken, from the same client options), which
	// a function that does not allow unauthenticated calls requires.
	// Set it to a client of your own for another way of authenticating,
	// or for an endpoint that takes none (an emulator).
	HTTPClient *http.Client
	// MinInstances keeps that many instances of every function warm.
	// The state of a run lives in the function's one instance: when Cloud
	// Run retires an idle instance the container reads as created again
	// (see Capabilities). 1 keeps it, at the price of an idle instance.
	MinInstances int
	// Logger receives the Runtime's own diagnostics; nil means none.
	Logger *zap.Logger
	// Budget bounds the requests a minute the Runtime makes.
	Budget Budget
}

// Budget is how many API requests a minute a Runtime may make of each
// kind, a share of the project's quotas, which every process of the
// project spends. A request refused with RESOURCE_EXHAUSTED all the same
// is retried after the delay Google's RetryInfo asks for. A zero field
// means its default; a negative one, no limit. Invocations of the
// functions themselves are HTTP requests to their URLs and spend none.
type Budget struct {
	// Reads and Writes are Cloud Functions API reads (gets, lists,
	// operation polls) and writes (create, delete, upload URLs) per
	// minute.
	Reads, Writes int
	// LogLists is Cloud Logging's entries.list per minute (Google's
	// quota: 60 per project).
	LogLists int
}

// DefaultBudget is the Budget of a Config that sets none.
var DefaultBudget = Budget{Reads: 300, Writes: 30, LogLists: 30}

func (b Budget) limits() quota.Limits {
	pick := func(v, def int) int {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	// Functions' requests spend from the Run classes (quota.ClassOf).
	return quota.Limits{
		RunReads:  pick(b.Reads, DefaultBudget.Reads),
		RunWrites: pick(b.Writes, DefaultBudget.Writes),
		LogLists:  pick(b.LogLists, DefaultBudget.LogLists),
	}
}

// Runtime runs gantry containers as Cloud Functions (2nd gen). It
// implements gantry.Runtime and gantry.Restarter, and keeps nothing in
// memory that another Runtime could not rebuild from the cloud.
type Runtime struct {
	cfg    Config
	parent string
	log    *zap.Logger
	opts   []option.ClientOption

	fns    *functions.FunctionClient
	logs   *logging.Client
	budget *quota.Budget
	tail   *cloudlog.Tail
	invoke *invoker

	// runtimes caches the runtime IDs ListRuntimes answered, once it has.
	runtimesMu sync.Mutex
	runtimes   map[string]bool

	// bg is the lifetime of the requests that hold runs open: Close ends
	// it, and held tracks them.
	bg     context.Context
	stopBg context.CancelFunc
	held   sync.WaitGroup

	state gantry.CloseState
}

var (
	_ gantry.Runtime        = (*Runtime)(nil)
	_ gantry.Restarter      = (*Runtime)(nil)
	_ gantry.WaitRegisterer = (*Runtime)(nil)
	_ gantry.BeforeCloser   = (*Runtime)(nil)
)

// New returns a Runtime for cfg. With no opts it uses Application Default
// Credentials against Google Cloud; gcptest's ClientOptions point it at
// the emulator. It checks cfg before connecting.
func New(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Runtime, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Session == "" {
		cfg.Session = "s" + naming.RandomHex(5)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.LogGrace <= 0 {
		cfg.LogGrace = DefaultLogGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	budget := quota.New(cfg.Budget.limits())
	user := slices.Clip(opts)
	opts = append(user, budget.ClientOptions()...)
	r := &Runtime{
		cfg:    cfg,
		parent: "projects/" + cfg.Project + "/locations/" + cfg.Region,
		budget: budget,
		opts:   user,
		log:    cfg.Logger.With(zap.String("backend", "cloudfunctions"), zap.String("session", cfg.Session)),
	}
	r.bg, r.stopBg = context.WithCancel(context.Background())
	r.invoke = newInvoker(cfg.HTTPClient, user)
	var err error
	if r.fns, err = functions.NewFunctionClient(ctx, opts...); err != nil {
		r.stopBg()
		return nil, fmt.Errorf("cloudfunctions: new: functions client: %w", err)
	}
	if r.logs, err = logging.NewClient(ctx, opts...); err != nil {
		r.Close()
		return nil, fmt.Errorf("cloudfunctions: new: logging client: %w", err)
	}
	// One tail session serves every follower of the Runtime (Cloud
	// Logging allows 10 a project): the output of every gantry function
	// of the region; each follower takes its own function's.
	var tf cloudlog.Filter
	tf.Eq("resource.type", "cloud_run_revision").
		Eq("resource.labels.location", cfg.Region).
		Raw("resource.labels.service_name:"+cloudlog.Quote(functionPrefix)).
		Logs(stdoutLog, stderrLog)
	r.tail = cloudlog.NewTail(r.logs, cfg.Project, tf.String(), "cloudfunctions: tail")
	return r, nil
}

func (c *Config) validate() error {
	bad := func(field, value, reason string) error {
		return fmt.Errorf("cloudfunctions: new: Config.%s %q: %w: %s", field, value, gantry.ErrInvalidArgument, reason)
	}
	switch {
	case c.Project == "":
		return bad("Project", "", "a project ID is required")
	case strings.ContainsAny(c.Project, "/ "):
		return bad("Project", c.Project, "a project ID has no slashes or spaces")
	case c.Region == "":
		return bad("Region", "", "a region such as us-central1 is required")
	case strings.ContainsAny(c.Region, "/ "):
		return bad("Region", c.Region, "a region has no slashes or spaces")
	case c.Session != "" && !meta.ValidValue(c.Session):
		return bad("Session", c.Session, "must be a Google label value: up to 63 lowercase letters, digits, _ and -")
	case c.PollInterval < 0:
		return bad("PollInterval", c.PollInterval.String(), "must not be negative")
	case c.LogGrace < 0:
		return bad("LogGrace", c.LogGrace.String(), "must not be negative")
	case c.MinInstances < 0 || c.MinInstances > 1:
		return bad("MinInstances", fmt.Sprint(c.MinInstances), "must be 0 or 1: a container is one instance")
	}
	for k, v := range c.Labels {
		switch {
		case !meta.ValidKey(k):
			return bad("Labels", k, "a label key is 1 to 63 lowercase letters, digits, _ and -, starting with a letter")
		case !meta.ValidValue(v):
			return bad("Labels["+k+"]", v, "a label value is up to 63 lowercase letters, digits, _ and -")
		case k == meta.LabelManagedBy || strings.HasPrefix(k, "gantry-") || strings.HasPrefix(k, meta.UserLabelPrefix):
			return bad("Labels", k, "this key is gantry's own (managed-by, gantry-*, l-*)")
		}
	}
	if len(c.Labels) > 16 {
		return bad("Labels", fmt.Sprint(len(c.Labels)), "at most 16, to leave room under Google's 64 for gantry's and the containers'")
	}
	return nil
}

// Session returns the session label value of this Runtime's resources.
func (r *Runtime) Session() string { return r.cfg.Session }

// Close runs the functions given to BeforeClose, then drops the requests
// that hold runs open (the runs go on: a new Runtime waits for them),
// ends pending Waits with gantry.ErrClosed and closes the clients.
// Afterwards every method returns gantry.ErrClosed at once; a second
// Close returns nil.
func (r *Runtime) Close() error {
	return r.state.Close(r.release)
}

// BeforeClose arranges for f to run at the start of Close, while the
// Runtime still works (see gantry.BeforeCloser).
func (r *Runtime) BeforeClose(f func()) (stop func() bool, err error) {
	return r.state.BeforeClose(f)
}

func (r *Runtime) release() error {
	r.stopBg()
	r.held.Wait()
	var errs []error
	if r.fns != nil {
		errs = append(errs, r.fns.Close())
	}
	if r.logs != nil {
		errs = append(errs, r.logs.Close())
	}
	r.invoke.close()
	return errors.Join(errs...)
}

// functionPrefix starts the ID of every function gantry creates (see
// package naming for how a container's name becomes its function's ID).
const functionPrefix = "gantryfn-"

func functionIDForName(name string) string { return naming.ResourceForName(functionPrefix, name) }

func lastSegment(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

func (r *Runtime) functionName(fnID string) string { return r.parent + "/functions/" + fnID }

// fn is a gantry container's function and the record decoded from it.
type fn struct {
	pb  *functionspb.Function
	rec meta.Record
}

func (f *fn) id() string  { return lastSegment(f.pb.GetName()) }
func (f *fn) url() string { return f.pb.GetServiceConfig().GetUri() }

// decode reads the container record of a function: its labels, and the
// record JSON kept in a build-time environment variable (see recordEnv).
func decode(pb *functionspb.Function) (meta.Record, error) {
	ann := map[string]string{}
	if v, ok := pb.GetBuildConfig().GetEnvironmentVariables()[recordEnv]; ok {
		ann[meta.AnnotationRecord] = v
	}
	return meta.Decode(pb.GetLabels(), ann)
}

// getFunction reads function fnID; one that is not gantry's is
// meta.ErrNotGantry.
func (r *Runtime) getFunction(ctx context.Context, fnID string) (*fn, error) {
	pb, err := r.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: r.functionName(fnID)}, gcperr.Retry())
	if err != nil {
		return nil, err
	}
	rec, err := decode(pb)
	if err != nil {
		return nil, &corruptError{name: pb.GetName(), err: err}
	}
	return &fn{pb: pb, rec: rec}, nil
}

// corruptError is a function that carries gantry's label but no readable
// record.
type corruptError struct {
	name string
	err  error
}

func (e *corruptError) Error() string { return "function " + e.name + ": " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// resolve finds the container id names, as Docker does (see
// naming.Lookup). On a closed Runtime it fails at once.
func (r *Runtime) resolve(ctx context.Context, id string) (*fn, error) {
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	get := func(fnID string) (*fn, meta.Record, bool, error) {
		f, err := r.getFunction(ctx, fnID)
		var corrupt *corruptError
		switch {
		case err == nil:
			return f, f.rec, true, nil
		case errors.Is(err, meta.ErrNotGantry), gcperr.Is(err, codes.NotFound):
			return nil, meta.Record{}, false, nil
		case errors.As(err, &corrupt):
			return nil, meta.Record{}, false, err
		}
		return nil, meta.Record{}, false, gcperr.Wrap(ctx, err, "read function %s", r.functionName(fnID))
	}
	list := func() ([]*fn, []meta.Record, error) {
		all, err := r.listFunctions(ctx)
		recs := make([]meta.Record, len(all))
		for i, f := range all {
			recs[i] = f.rec
		}
		return all, recs, err
	}
	return naming.Lookup(id, functionPrefix, get, list)
}

// listFunctions returns every gantry function in the region that is not
// being deleted.
func (r *Runtime) listFunctions(ctx context.Context) ([]*fn, error) {
	it := r.fns.ListFunctions(ctx, &functionspb.ListFunctionsRequest{Parent: r.parent, PageSize: 1000}, gcperr.Retry())
	var out []*fn
	for {
		pb, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, gcperr.Wrap(ctx, err, "list functions of %s", r.parent)
		}
		if !meta.Managed(pb.GetLabels()) || pb.GetState() == functionspb.Function_DELETING {
			continue
		}
		rec, err := decode(pb)
		if err != nil {
			r.log.Warn("skipping a gantry function whose record does not decode", zap.String("function", pb.GetName()), zap.Error(err))
			continue
		}
		out = append(out, &fn{pb: pb, rec: rec})
	}
}
