package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/gantryhq/gantry/internal/poll"
	"github.com/gantryhq/gantry/internal/quota"
	"go.uber.org/zap"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Defaults of Config.
const (
	// DefaultPollInterval is how often the Runtime's one poller lists
	// jobs while anything waits: 60 reads a minute.
	DefaultPollInterval = time.Second
	// DefaultLogGrace is how long Logs keeps reading after it has seen
	// the container stop (and how long after a stop a Logs that does not
	// follow waits before it lists): Cloud Logging ingests seconds late.
	DefaultLogGrace = 10 * time.Second

	// The logs of a Cloud Run job's containers.
	stdoutLog = "run.googleapis.com/stdout"
	stderrLog = "run.googleapis.com/stderr"
)

// Config holds what a Runtime needs to know once.
type Config struct {
	// Project is the Google Cloud project ID. Required.
	Project string
	// Region is the Cloud Run region, such as "us-central1". Required.
	Region string
	// ServiceAccount is the email of the identity containers run as;
	// empty means Cloud Run's default (the Compute Engine default service
	// account).
	ServiceAccount string
	// Labels are Google Cloud labels put on every job and execution, for
	// billing reports and filters. Keys and values must follow Google's
	// label rules; the keys gantry uses itself are refused.
	Labels map[string]string
	// Session is the value of the session label on everything this
	// Runtime creates, which Sweep matches. Empty means a fresh random
	// one; set it to sweep after a crash what a known session left.
	Session string
	// PollInterval is the poller's cadence (and that of long-running
	// operation polls); zero means DefaultPollInterval.
	PollInterval time.Duration
	// LogGrace is how long a following Logs reads on after the container
	// stopped; zero means DefaultLogGrace.
	LogGrace time.Duration
	// Logger receives the Runtime's own diagnostics; nil means none.
	Logger *zap.Logger
	// Budget bounds the requests a minute the Runtime makes, whatever
	// goroutine makes them; see Budget.
	Budget Budget
	// Agent, when set, puts the gantry agent into every container (see
	// AgentConfig); nil means containers run their own command alone, and
	// exec, attach, signals and stop timeouts are not offered.
	Agent *AgentConfig
	// Kind is the kind of a container whose spec does not choose one
	// with KindLabel. Empty chooses by the spec: an instance for a
	// container that publishes ports, has a restart policy or a
	// healthcheck, a job otherwise. Capabilities describes this kind
	// (jobs when empty).
	Kind Kind
}

// Budget is how many requests a minute a Runtime may make of each kind.
// Google's quotas are per project (and for Cloud Run per region), shared
// by every process of the project, so the defaults are a share of them,
// not all of it. A request refused with RESOURCE_EXHAUSTED all the same
// is retried after the delay Google's RetryInfo asks for. A zero field
// means its default; a negative one, no limit.
type Budget struct {
	// Reads, Writes and Runs are Cloud Run Admin API read requests
	// (gets, lists, operation polls), write requests (create, delete,
	// cancel) and job runs, per minute. Defaults: DefaultBudget's.
	Reads, Writes, Runs int
	// LogLists is Cloud Logging's entries.list per minute (Google's
	// quota: 60 per project). Default: DefaultBudget's.
	LogLists int
}

// DefaultBudget is the Budget of a Config that sets none.
var DefaultBudget = Budget{Reads: 300, Writes: 60, Runs: 60, LogLists: 30}

// limits resolves b's zero fields to DefaultBudget's and its negative
// ones to no limit.
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
	return quota.Limits{
		RunReads:   pick(b.Reads, DefaultBudget.Reads),
		RunWrites:  pick(b.Writes, DefaultBudget.Writes),
		RunJobRuns: pick(b.Runs, DefaultBudget.Runs),
		LogLists:   pick(b.LogLists, DefaultBudget.LogLists),
	}
}

// Runtime runs gantry containers as Cloud Run jobs and instances (see
// Kind). It implements
// gantry.Runtime and gantry.Restarter. It keeps nothing in memory that
// another Runtime could not rebuild from the cloud.
type Runtime struct {
	cfg    Config
	parent string
	log    *zap.Logger

	jobs  *run.JobsClient
	execs *run.ExecutionsClient
	tasks *run.TasksClient
	logs  *logging.Client
	// instances is nil in a region without Cloud Run instances.
	instances *run.InstancesClient
	// sawInstances is set once the Runtime has met one of its instances:
	// from then on the poller lists instances too.
	sawInstances atomic.Bool

	poller *poll.Poller[snapshot]
	// pageSize is the page size of the poller's listings.
	pageSize int32
	// budget is spent by every call of the Runtime's clients.
	budget *quota.Budget
	// tail is the one TailLogEntries session that serves every follower.
	tail *cloudlog.Tail
	// exits remembers the exit status of finished executions, which never
	// changes, so List and Inspect read each task once.
	exits exitCache[gantry.ExitStatus]
	// instanceExits remembers how stopped instances' last runs ended,
	// from the agent's records.
	instanceExits exitCache[instanceExit]
	// restarted holds, by instance, when the run before the one this
	// Runtime last started ended (Docker shows it while the container
	// runs again).
	restarted sync.Map // restartKey -> time.Time
	// started holds, by job, the execution this Runtime's last Start
	// began, from RunJob's operation metadata, until the job shows it:
	// Cloud Run reconciles a job's latest execution asynchronously, and
	// meanwhile the job would still show the run before.
	started sync.Map // startKey -> *runpb.ExecutionReference
	// agent is set when containers get the agent.
	agent *agentState
	// state is closed by Close; every method checks it first.
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
	opts = append(slices.Clip(opts), budget.ClientOptions()...)
	r := &Runtime{
		cfg:      cfg,
		parent:   "projects/" + cfg.Project + "/locations/" + cfg.Region,
		pageSize: 1000,
		budget:   budget,
		log:      cfg.Logger.With(zap.String("backend", "cloudrun"), zap.String("session", cfg.Session)),
	}
	var err error
	if cfg.Agent != nil {
		if r.agent, err = newAgentState(*cfg.Agent); err != nil {
			return nil, err
		}
	}
	if r.jobs, err = run.NewJobsClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("cloudrun: new: jobs client: %w", err)
	}
	if r.execs, err = run.NewExecutionsClient(ctx, opts...); err != nil {
		r.Close()
		return nil, fmt.Errorf("cloudrun: new: executions client: %w", err)
	}
	if r.tasks, err = run.NewTasksClient(ctx, opts...); err != nil {
		r.Close()
		return nil, fmt.Errorf("cloudrun: new: tasks client: %w", err)
	}
	if r.instancesOffered() {
		if r.instances, err = run.NewInstancesClient(ctx, opts...); err != nil {
			r.Close()
			return nil, fmt.Errorf("cloudrun: new: instances client: %w", err)
		}
		r.sawInstances.Store(cfg.Kind == KindInstance)
	}
	if r.agent != nil && cfg.Agent.RelayImage != "" {
		svcs, err := run.NewServicesClient(ctx, opts...)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("cloudrun: new: services client: %w", err)
		}
		r.agent.deploy = &relayDeployer{services: svcs}
	}
	if r.logs, err = logging.NewClient(ctx, opts...); err != nil {
		r.Close()
		return nil, fmt.Errorf("cloudrun: new: logging client: %w", err)
	}
	r.poller = poll.New(cfg.PollInterval, r.fetch)
	// One tail session serves every follower of the Runtime: Cloud
	// Logging allows 10 a project. It selects every gantry job's output
	// in the region; each follower takes its own job's.
	var tf cloudlog.Filter
	tf.Eq("resource.labels.location", cfg.Region).
		Raw(`((resource.type="cloud_run_job" AND resource.labels.job_name:`+cloudlog.Quote(jobPrefix)+`) OR (resource.type="cloud_run_instance" AND resource.labels.instance_name:`+cloudlog.Quote(jobPrefix)+`))`).
		Logs(stdoutLog, stderrLog)
	r.tail = cloudlog.NewTail(r.logs, cfg.Project, tf.String(), "cloudrun: tail")
	return r, nil
}

func (c *Config) validate() error {
	bad := func(field, value, reason string) error {
		return fmt.Errorf("cloudrun: new: Config.%s %q: %w: %s", field, value, gantry.ErrInvalidArgument, reason)
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
	case c.Kind != "" && c.Kind != KindJob && c.Kind != KindInstance:
		return bad("Kind", string(c.Kind), "the kind is job, instance or empty")
	case c.Kind == KindInstance && c.Agent == nil:
		return bad("Kind", string(c.Kind), "instances run under the gantry agent: set Config.Agent")
	case c.Kind == KindInstance && slices.Contains(instanceRegionsRefused, c.Region):
		return bad("Kind", string(c.Kind), "Cloud Run has no instances in region "+c.Region)
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
	if c.Agent != nil {
		if err := c.Agent.validate(); err != nil {
			return err
		}
	}
	if len(c.Labels) > 16 {
		return bad("Labels", fmt.Sprint(len(c.Labels)), "at most 16, to leave room under Google's 64 for gantry's and the containers'")
	}
	return nil
}

// Session returns the session label value of this Runtime's resources.
func (r *Runtime) Session() string { return r.cfg.Session }

// Close runs the functions given to BeforeClose, then stops the poller
// (pending Waits return gantry.ErrClosed) and closes the clients.
// Containers keep running: a new Runtime sees them. Afterwards every
// method returns gantry.ErrClosed at once; a second Close returns nil.
func (r *Runtime) Close() error {
	return r.state.Close(r.release)
}

// BeforeClose arranges for f to run at the start of Close, while the
// Runtime still works (see gantry.BeforeCloser).
func (r *Runtime) BeforeClose(f func()) (stop func() bool, err error) {
	return r.state.BeforeClose(f)
}

// release stops the poller and closes the clients.
func (r *Runtime) release() error {
	if r.poller != nil {
		r.poller.Close()
	}
	var errs []error
	if r.agent != nil {
		r.agent.close()
		if r.agent.deploy != nil {
			errs = append(errs, r.agent.deploy.services.Close())
		}
	}
	if r.jobs != nil {
		errs = append(errs, r.jobs.Close())
	}
	if r.execs != nil {
		errs = append(errs, r.execs.Close())
	}
	if r.tasks != nil {
		errs = append(errs, r.tasks.Close())
	}
	if r.instances != nil {
		errs = append(errs, r.instances.Close())
	}
	if r.logs != nil {
		errs = append(errs, r.logs.Close())
	}
	return errors.Join(errs...)
}

func (r *Runtime) jobName(jobID string) string { return r.parent + "/jobs/" + jobID }

// execName returns the full name of an execution given by its ID or name.
func (r *Runtime) execName(jobID, exec string) string {
	if strings.Contains(exec, "/") {
		return exec
	}
	return r.jobName(jobID) + "/executions/" + exec
}

// sameExecution reports whether two names, each an execution's full name
// or its ID, name the same execution (ExecutionReference.name is the ID;
// an Execution's name is full).
func sameExecution(a, b string) bool { return a != "" && lastSegment(a) == lastSegment(b) }

// lastSegment returns what follows the last slash of a resource name.
func lastSegment(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// job is a gantry container's job, or its instance, and the record
// decoded from it.
type job struct {
	pb  *runpb.Job
	in  *runpb.Instance
	rec meta.Record
}

func (j *job) id() string {
	if j.in != nil {
		return lastSegment(j.in.GetName())
	}
	return lastSegment(j.pb.GetName())
}

// name is the full resource name of the job or instance.
func (j *job) name() string {
	if j.in != nil {
		return j.in.GetName()
	}
	return j.pb.GetName()
}

// containers are the containers the job's task or the instance runs.
func (j *job) containers() []*runpb.Container {
	if j.in != nil {
		return j.in.GetContainers()
	}
	return j.pb.GetTemplate().GetTemplate().GetContainers()
}

// latest returns the job's newest execution reference, or nil.
func (j *job) latest() *runpb.ExecutionReference {
	if l := j.pb.GetLatestCreatedExecution(); l.GetName() != "" {
		return l
	}
	return nil
}

func (j *job) running() bool {
	l := j.latest()
	return l != nil && l.GetCompletionTime() == nil
}

// getJob reads job jobID; a job that is not gantry's is ErrNotGantry, one
// whose record does not decode an error that says so.
func (r *Runtime) getJob(ctx context.Context, jobID string) (*job, error) {
	pb, err := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: r.jobName(jobID)}, gcperr.Retry())
	if err != nil {
		return nil, err
	}
	rec, err := meta.Decode(pb.GetLabels(), pb.GetAnnotations())
	if err != nil {
		return nil, &corruptError{job: pb.GetName(), err: err}
	}
	return r.withStarted(&job{pb: pb, rec: rec}), nil
}

// startKey names a container's job in Runtime.started: the job ID and the
// container's ID label, so a new container of the same name is another.
type startKey struct{ job, id string }

func keyOf(pb *runpb.Job) startKey {
	return startKey{lastSegment(pb.GetName()), pb.GetLabels()[meta.LabelID]}
}

// recordStart remembers that this Runtime began execution ex of pb.
func (r *Runtime) recordStart(pb *runpb.Job, ex *runpb.Execution) {
	if ex.GetName() == "" {
		return
	}
	r.started.Store(keyOf(pb), &runpb.ExecutionReference{Name: ex.GetName(), CreateTime: ex.GetCreateTime()})
}

// withStarted shows j as Cloud Run will once it has reconciled the
// execution this Runtime last started: as its latest, running, and
// counted. Once the job shows that execution or a later one, the record
// is dropped.
func (r *Runtime) withStarted(j *job) *job {
	key := keyOf(j.pb)
	v, ok := r.started.Load(key)
	if !ok {
		return j
	}
	rec := v.(*runpb.ExecutionReference)
	l := j.pb.GetLatestCreatedExecution()
	if sameExecution(l.GetName(), rec.GetName()) || (l.GetCreateTime() != nil && rec.GetCreateTime() != nil && l.GetCreateTime().AsTime().After(rec.GetCreateTime().AsTime())) {
		r.started.CompareAndDelete(key, v)
		return j
	}
	pb := proto.Clone(j.pb).(*runpb.Job)
	pb.LatestCreatedExecution = proto.Clone(rec).(*runpb.ExecutionReference)
	pb.ExecutionCount++
	return &job{pb: pb, rec: j.rec}
}

// corruptError is a job that carries gantry's label but no readable record.
type corruptError struct {
	job string
	err error
}

func (e *corruptError) Error() string { return "job " + e.job + ": " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// resolve finds the container id names, as Docker does (see
// naming.Lookup). On a closed Runtime it fails at once.
func (r *Runtime) resolve(ctx context.Context, id string) (*job, error) {
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	get := func(jobID string) (*job, meta.Record, bool, error) {
		first, second := r.getJob, r.getInstance
		if r.cfg.Kind == KindInstance {
			first, second = second, first
		}
		j, err := first(ctx, jobID)
		if gcperr.Is(err, codes.NotFound) && r.instances != nil {
			j, err = second(ctx, jobID)
		}
		var corrupt *corruptError
		switch {
		case err == nil:
			return j, j.rec, true, nil
		case errors.Is(err, meta.ErrNotGantry), gcperr.Is(err, codes.NotFound):
			return nil, meta.Record{}, false, nil
		case errors.As(err, &corrupt):
			return nil, meta.Record{}, false, err
		}
		return nil, meta.Record{}, false, gcperr.Wrap(ctx, err, "read job %s", r.jobName(jobID))
	}
	list := func() ([]*job, []meta.Record, error) {
		all, err := r.listAll(ctx)
		recs := make([]meta.Record, len(all))
		for i, j := range all {
			recs[i] = j.rec
		}
		return all, recs, err
	}
	return naming.Lookup(id, jobPrefix, get, list)
}

// listAll returns every gantry job and instance in the region.
func (r *Runtime) listAll(ctx context.Context) ([]*job, error) {
	all, err := r.listJobs(ctx)
	if err != nil || r.instances == nil {
		return all, err
	}
	ins, err := r.listInstances(ctx)
	return append(all, ins...), err
}

// listJobs returns every gantry job in the region.
func (r *Runtime) listJobs(ctx context.Context) ([]*job, error) {
	it := r.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: r.parent, PageSize: 1000}, gcperr.Retry())
	return listManaged(ctx, r, it.Next, "jobs", func(pb *runpb.Job, rec meta.Record) *job {
		return r.withStarted(&job{pb: pb, rec: rec})
	})
}

// resource is what a job and an instance have in common for listing.
type resource interface {
	GetName() string
	GetLabels() map[string]string
	GetAnnotations() map[string]string
}

// listManaged reads a listing to its end and keeps gantry's resources,
// with their records; one whose record does not decode is skipped, with
// a warning.
func listManaged[T resource](ctx context.Context, r *Runtime, next func() (T, error), what string, wrap func(T, meta.Record) *job) ([]*job, error) {
	var out []*job
	for {
		pb, err := next()
		if isDone(err) {
			return out, nil
		}
		if err != nil {
			return nil, gcperr.Wrap(ctx, err, "list %s of %s", what, r.parent)
		}
		if !meta.Managed(pb.GetLabels()) {
			continue
		}
		rec, err := meta.Decode(pb.GetLabels(), pb.GetAnnotations())
		if err != nil {
			r.log.Warn("skipping a gantry resource whose record does not decode", zap.String("name", pb.GetName()), zap.Error(err))
			continue
		}
		out = append(out, wrap(pb, rec))
	}
}

func isDone(err error) bool { return errors.Is(err, iterator.Done) }
