package cloudfunctions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions/internal/runner"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/lro"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/googleapis/gax-go/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// deleteOp adapts DeleteFunctionOperation, whose Poll returns no value.
type deleteOp struct {
	op interface {
		Done() bool
		Poll(context.Context, ...gax.CallOption) error
	}
}

func (d deleteOp) Done() bool { return d.op.Done() }
func (d deleteOp) Poll(ctx context.Context, opts ...gax.CallOption) (struct{}, error) {
	return struct{}{}, d.op.Poll(ctx, opts...)
}

// Create validates spec, uploads gantry's runner and creates the
// function, waiting until it is deployed: the container is created, with
// no run yet. Nothing is called for a spec that is invalid or that a
// function cannot honour.
func (r *Runtime) Create(ctx context.Context, spec gantry.Spec) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "create", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	rt, err := runtimeOf(spec.Image)
	if err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = naming.NewName()
	}
	rec := meta.Record{ID: naming.NewID(spec.Name), Name: spec.Name, Created: time.Now().UTC(), Spec: spec}
	// The mapping is checked before any call, with a placeholder source.
	if _, err := r.functionFor(rec, rt, &functionspb.StorageSource{}); err != nil {
		return nil, err
	}
	if err := r.checkRuntime(ctx, rt); err != nil {
		return nil, err
	}
	fnID := functionIDForName(spec.Name)
	// A name in use fails before the upload; a create that races for it
	// meets ALREADY_EXISTS in its operation all the same.
	if f, err := r.getFunction(ctx, fnID); err == nil || !gcperr.Is(err, codes.NotFound) {
		if err == nil {
			return nil, fmt.Errorf("%w: the name %q is in use by container %s", gantry.ErrConflict, spec.Name, naming.ShortID(f.rec.ID))
		}
		return nil, gcperr.Wrap(ctx, err, "read function %s", r.functionName(fnID))
	}
	src, err := r.upload(ctx)
	if err != nil {
		return nil, err
	}
	pb, err := r.functionFor(rec, rt, src)
	if err != nil {
		return nil, err
	}
	created, err := r.createFunction(ctx, &functionspb.CreateFunctionRequest{Parent: r.parent, Function: pb, FunctionId: fnID}, rec)
	if err != nil {
		return nil, err
	}
	r.log.Debug("created", zap.String("id", rec.ID), zap.String("name", rec.Name), zap.String("function", created.GetName()))
	return r.describe(&fn{pb: created, rec: rec}, runner.Status{}, false), nil
}

// upload puts the runner's source where CreateFunction can take it: a
// signed URL from GenerateUploadUrl, then a PUT of the zip.
func (r *Runtime) upload(ctx context.Context) (*functionspb.StorageSource, error) {
	u, err := r.fns.GenerateUploadUrl(ctx, &functionspb.GenerateUploadUrlRequest{Parent: r.parent, Environment: functionspb.Environment_GEN_2}, gcperr.Retry())
	if err != nil {
		return nil, gcperr.Wrap(ctx, err, "generate an upload URL in %s", r.parent)
	}
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.GetUploadUrl(), bytes.NewReader(runner.Zip()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/zip")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return u.GetStorageSource(), nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
			if resp.StatusCode < 500 {
				return nil, fmt.Errorf("upload the runner's source: %w: %v", gantry.ErrPermissionDenied, err)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt >= gcperr.MaxAttempts {
			return nil, fmt.Errorf("upload the runner's source: %w: %v", gantry.ErrUnavailable, err)
		}
		if err := gax.Sleep(ctx, bo.Pause()); err != nil {
			return nil, err
		}
	}
}

// createFunction creates the function and waits for its deployment,
// retrying UNAVAILABLE. ALREADY_EXISTS (from the call or, as Google
// documents, from the operation) reads the function: if it carries this
// container's ID label, an earlier attempt created it; otherwise the name
// is taken. A deployment that fails deletes what it left.
func (r *Runtime) createFunction(ctx context.Context, req *functionspb.CreateFunctionRequest, rec meta.Record) (*functionspb.Function, error) {
	bo := gcperr.Backoff()
	name := r.functionName(req.FunctionId)
	for attempt := 1; ; attempt++ {
		op, err := r.fns.CreateFunction(ctx, req)
		if err == nil {
			var f *functionspb.Function
			if f, err = lro.Wait(ctx, op, r.cfg.PollInterval); err == nil {
				return f, nil
			}
		}
		switch gcperr.Code(err) {
		case codes.AlreadyExists:
			cur, gerr := r.getFunction(ctx, req.FunctionId)
			if gerr == nil && meta.SameContainer(cur.pb.GetLabels(), rec.ID) {
				return r.awaitDeployed(ctx, cur.pb)
			}
			owner := "another container"
			if gerr == nil {
				owner = "container " + naming.ShortID(cur.rec.ID)
			}
			return nil, gcperr.Wrap(ctx, err, "the name %q is in use by %s", rec.Name, owner)
		case codes.Unavailable:
			if attempt < gcperr.MaxAttempts {
				if serr := gax.Sleep(ctx, bo.Pause()); serr != nil {
					return nil, serr
				}
				continue
			}
		}
		if ctx.Err() == nil {
			r.discard(name, rec.ID)
		}
		return nil, gcperr.Wrap(ctx, err, "create function %s", req.FunctionId)
	}
}

// awaitDeployed returns a function found after a retried create once it
// is deployed.
func (r *Runtime) awaitDeployed(ctx context.Context, f *functionspb.Function) (*functionspb.Function, error) {
	for f.GetState() == functionspb.Function_DEPLOYING {
		if err := gax.Sleep(ctx, r.cfg.PollInterval); err != nil {
			return nil, err
		}
		var err error
		if f, err = r.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: f.GetName()}, gcperr.Retry()); err != nil {
			return nil, gcperr.Wrap(ctx, err, "read function %s", f.GetName())
		}
	}
	if f.GetState() != functionspb.Function_ACTIVE {
		return nil, fmt.Errorf("%w: function %s is %s: %s", gantry.ErrUnavailable, f.GetName(), f.GetState(), stateMessage(f))
	}
	return f, nil
}

// discard deletes, in the background of a failed Create, the function it
// left (FAILED after a failed build), if it is this container's.
func (r *Runtime) discard(name, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cur, err := r.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: name}, gcperr.Retry())
	if err != nil || !meta.SameContainer(cur.GetLabels(), id) {
		return
	}
	if op, err := r.fns.DeleteFunction(ctx, &functionspb.DeleteFunctionRequest{Name: name}); err == nil {
		lro.Wait(ctx, deleteOp{op}, r.cfg.PollInterval)
	}
}

func stateMessage(f *functionspb.Function) string {
	for _, m := range f.GetStateMessages() {
		if m.GetMessage() != "" {
			return m.GetMessage()
		}
	}
	return "no message"
}

// serving fails unless the function can be invoked.
func serving(f *fn) error {
	if f.pb.GetState() != functionspb.Function_ACTIVE || f.url() == "" {
		return fmt.Errorf("%w: function %s is %s, not serving: %s", gantry.ErrConflict, f.pb.GetName(), f.pb.GetState(), stateMessage(f.pb))
	}
	return nil
}

// latest reads the function's latest run; ok is false when it has none.
// A function that has stopped serving meanwhile reads as removed.
func (r *Runtime) latest(ctx context.Context, f *fn) (runner.Status, bool, error) {
	st, ok, err := r.invoke.status(ctx, f.url(), "")
	if errors.Is(err, errNotServing) {
		return st, false, r.gone(ctx, f, err)
	}
	if err != nil {
		return st, false, fmt.Errorf("status of %s: %w", f.pb.GetName(), err)
	}
	return st, ok, nil
}

// errRemoved means the container's function is gone (or is now another
// container's).
var errRemoved = fmt.Errorf("%w: the container was removed", gantry.ErrNotFound)

// gone explains why f's URL did not reach its runner: errRemoved when
// the function is gone or going, else cause.
func (r *Runtime) gone(ctx context.Context, f *fn, cause error) error {
	cur, err := r.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: f.pb.GetName()}, gcperr.Retry())
	switch {
	case gcperr.Is(err, codes.NotFound):
		return errRemoved
	case err != nil:
		return gcperr.Wrap(ctx, err, "read function %s", f.pb.GetName())
	case !meta.SameContainer(cur.GetLabels(), f.rec.ID), cur.GetState() == functionspb.Function_DELETING:
		return errRemoved
	}
	return fmt.Errorf("%w: function %s: %v", gantry.ErrUnavailable, f.pb.GetName(), cause)
}

// Start runs the container's command on its function: a run request
// held open in the background (a function's instance has CPU while it
// serves a request), and Start returns once the runner has started the
// command. A running container is left alone.
func (r *Runtime) Start(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "start", id)
	f, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if err := serving(f); err != nil {
		return err
	}
	st, ok, err := r.latest(ctx, f)
	if err != nil {
		return err
	}
	if ok && st.Running {
		return nil
	}
	req := runRequest(runID(st, ok), f.rec.Spec)
	refused := make(chan error, 1)
	r.held.Add(1)
	go r.hold(f, req, refused)
	pause := 5 * time.Millisecond
	for {
		select {
		case err := <-refused:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, r.cfg.PollInterval)
		if _, ok, err := r.invoke.status(ctx, f.url(), req.ID); ok || (err != nil && !errors.Is(err, errNotServing)) {
			return err
		}
	}
}

// hold sends the run request and keeps a request open until the run
// ends, asking again with a wait request when the platform cuts one, so
// the instance keeps its CPU; Close ends it (the run goes on). A refusal
// by the runner goes to refused.
func (r *Runtime) hold(f *fn, req runner.Request, refused chan<- error) {
	defer r.held.Done()
	a, err := r.invoke.call(r.bg, http.MethodPost, f.url(), runner.PathRun, req)
	switch {
	case err != nil:
		refused <- fmt.Errorf("run on %s: %w", f.pb.GetName(), err)
		return
	case a.code == http.StatusConflict:
		// Another Start won the race: the container is running.
		refused <- nil
		return
	case a.code != http.StatusOK:
		refused <- fmt.Errorf("%w: run on %s: %s", gantry.ErrUnavailable, f.pb.GetName(), a)
		return
	}
}

// checkSignal parses a signal and returns its number as the runner takes
// it.
func checkSignal(sig string) (string, error) {
	n, err := gantry.ParseSignal(sig)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(n), nil
}

// Stop sends the stop signal to the running command, SIGKILL after the
// timeout (the runner keeps it, so a Stop whose caller goes away still
// ends the run), and waits for the run to end.
func (r *Runtime) Stop(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "stop", id)
	if opts.Timeout != nil && (*opts.Timeout > gantry.MaxDuration || *opts.Timeout < -gantry.MaxDuration) {
		return fmt.Errorf("%w: timeout %s is longer than a year", gantry.ErrInvalidArgument, *opts.Timeout)
	}
	if opts.Signal != "" {
		if _, err := checkSignal(opts.Signal); err != nil {
			return err
		}
	}
	f, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if serving(f) != nil {
		return nil
	}
	st, ok, err := r.latest(ctx, f)
	if err != nil || !ok || !st.Running {
		return err
	}
	return r.stopRun(ctx, f, st.ID, opts)
}

// stopRun stops run runID and waits for it to end.
func (r *Runtime) stopRun(ctx context.Context, f *fn, runID string, opts gantry.StopOptions) error {
	sig := opts.Signal
	if sig == "" {
		sig = f.rec.Spec.StopSignal
	}
	if sig == "" {
		sig = "SIGTERM"
	}
	num, err := checkSignal(sig)
	if err != nil {
		return err
	}
	timeout := stopTimeout(f.rec.Spec, opts.Timeout)
	a, err := r.invoke.call(ctx, http.MethodPost, f.url(), runner.PathStop, runner.Control{ID: runID, Signal: num, TimeoutMillis: ceilMillis(timeout)})
	switch {
	case errors.Is(err, errNotServing):
		return nil
	case err != nil:
		return fmt.Errorf("stop %s: %w", f.pb.GetName(), err)
	case a.code == http.StatusNotFound:
		return nil
	case a.code != http.StatusNoContent:
		return fmt.Errorf("%w: stop %s: %s", gantry.ErrUnavailable, f.pb.GetName(), a)
	}
	_, err = r.waitRun(ctx, f, runID)
	if errors.Is(err, errRemoved) {
		return nil
	}
	return err
}

// Kill sends signal (default SIGKILL) to the running command's main
// process and returns. A container that is not running is ErrConflict.
func (r *Runtime) Kill(ctx context.Context, id string, signal string) (err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "kill", id)
	if signal == "" {
		signal = "SIGKILL"
	}
	num, err := checkSignal(signal)
	if err != nil {
		return err
	}
	f, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	notRunning := fmt.Errorf("%w: the container is not running", gantry.ErrConflict)
	if serving(f) != nil {
		return notRunning
	}
	st, ok, err := r.latest(ctx, f)
	switch {
	case err != nil:
		return err
	case !ok || !st.Running:
		return notRunning
	}
	// A signal is not repeated: the runner may have delivered it.
	a, err := r.invoke.do(ctx, http.MethodPost, f.url(), runner.PathSignal, runner.Control{ID: st.ID, Signal: num})
	switch {
	case err != nil:
		return fmt.Errorf("%w: signal %s: %v", gantry.ErrUnavailable, f.pb.GetName(), err)
	case a.code == http.StatusNoContent:
		return nil
	case a.code == http.StatusConflict || a.code == http.StatusNotFound && a.fromRunner():
		return notRunning
	}
	return fmt.Errorf("%w: signal %s: %s", gantry.ErrUnavailable, f.pb.GetName(), a)
}

// Restart stops the container (see Stop) and starts it again; ID and
// name are kept.
func (r *Runtime) Restart(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "restart", id)
	if err := r.Stop(ctx, id, opts); err != nil {
		return err
	}
	return r.Start(ctx, id)
}

// Remove deletes the container's function and waits until it is gone. A
// running container is ErrConflict unless opts.Force, which kills its
// command first (so that its waiters learn its exit status).
func (r *Runtime) Remove(ctx context.Context, id string, opts gantry.RemoveOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "remove", id)
	f, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if serving(f) == nil {
		st, ok, err := r.latest(ctx, f)
		switch {
		case errors.Is(err, errRemoved):
			return fmt.Errorf("%w: no such container: %s", gantry.ErrNotFound, id)
		case err != nil:
			return err
		case ok && st.Running && !opts.Force:
			return fmt.Errorf("%w: the container is running; stop it first or remove with Force", gantry.ErrConflict)
		case ok && st.Running:
			if err := r.stopRun(ctx, f, st.ID, gantry.StopOptions{Signal: "SIGKILL", Timeout: new(time.Duration)}); err != nil {
				return err
			}
		}
	}
	return r.deleteFunction(ctx, f)
}

// deleteFunction deletes the function and waits for its operation.
// DeleteFunction is retried after UNAVAILABLE only while the function is
// still this container's.
func (r *Runtime) deleteFunction(ctx context.Context, f *fn) error {
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		op, err := r.fns.DeleteFunction(ctx, &functionspb.DeleteFunctionRequest{Name: f.pb.GetName()})
		if err == nil {
			_, err = lro.Wait(ctx, deleteOp{op}, r.cfg.PollInterval)
		}
		switch {
		case err == nil, gcperr.Is(err, codes.NotFound):
			return nil
		case (gcperr.Is(err, codes.Unavailable) || gcperr.Is(err, codes.FailedPrecondition)) && attempt < gcperr.MaxAttempts:
			// FAILED_PRECONDITION: another delete is under way; wait for
			// the function to go.
			cur, gerr := r.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: f.pb.GetName()}, gcperr.Retry())
			switch {
			case gcperr.Is(gerr, codes.NotFound):
				return nil
			case gerr != nil:
				return gcperr.Wrap(ctx, err, "delete function %s: whether it was deleted is unknown (it could not be read after the attempt failed: %s)", f.pb.GetName(), gcperr.OneLine(gerr.Error()))
			case !meta.SameContainer(cur.GetLabels(), f.rec.ID):
				return nil
			}
			if serr := gax.Sleep(ctx, max(bo.Pause(), r.cfg.PollInterval)); serr != nil {
				return serr
			}
			continue
		}
		return gcperr.Wrap(ctx, err, "delete function %s", f.pb.GetName())
	}
}

// describe builds the Container of f whose latest run is st (ok false:
// none).
func (r *Runtime) describe(f *fn, st runner.Status, ok bool) *gantry.Container {
	rec := f.rec
	c := &gantry.Container{
		ID:       rec.ID,
		Name:     rec.Name,
		Image:    rec.Spec.Image,
		Created:  rec.Created,
		Spec:     rec.Spec,
		Labels:   maps.Clone(rec.Spec.Labels),
		Resource: f.pb.GetName(),
		State:    gantry.State{Status: gantry.StatusCreated},
	}
	switch {
	case serving(f) != nil:
		c.State.Status = gantry.StatusDead
		c.State.Error = fmt.Sprintf("function %s: %s", f.pb.GetState(), stateMessage(f.pb))
	case !ok:
	case st.Running:
		c.State.Status, c.State.Running = gantry.StatusRunning, true
		c.State.StartedAt = st.Started
		c.State.FinishedAt = previousFinish(st.ID)
	default:
		c.State.Status = gantry.StatusExited
		c.State.StartedAt, c.State.FinishedAt = st.Started, st.Finished
		c.State.ExitCode, c.State.Signal, c.State.Error = st.ExitCode, st.Signal, st.Error
	}
	return c
}

// container describes f with its latest run.
func (r *Runtime) container(ctx context.Context, f *fn) (*gantry.Container, error) {
	if serving(f) != nil {
		return r.describe(f, runner.Status{}, false), nil
	}
	st, ok, err := r.latest(ctx, f)
	if errors.Is(err, errRemoved) {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return r.describe(f, st, ok), nil
}

// Inspect returns the container's current description: GetFunction, and
// the runner's status of its latest run.
func (r *Runtime) Inspect(ctx context.Context, id string) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "inspect", id)
	f, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.container(ctx, f)
}

// listParallel bounds the status reads List makes at once.
const listParallel = 16

// List returns the containers of the region that match opts, newest
// first: one ListFunctions, and a status read of each function's runner
// (an invocation, not an API call), made in parallel.
func (r *Runtime) List(ctx context.Context, opts gantry.ListOptions) (_ []*gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "list", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	all, err := r.listFunctions(ctx)
	if err != nil {
		return nil, err
	}
	cs := make([]*gantry.Container, len(all))
	errs := make([]error, len(all))
	sem := make(chan struct{}, listParallel)
	var wg sync.WaitGroup
	for i, f := range all {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cs[i], errs[i] = r.container(ctx, f)
		})
	}
	wg.Wait()
	var candidates []*gantry.Container
	for i, c := range cs {
		switch {
		case errors.Is(errs[i], errRemoved):
		case errs[i] != nil:
			return nil, errs[i]
		default:
			candidates = append(candidates, c)
		}
	}
	return gantry.SelectContainers(opts, candidates, nil)
}

// Exec is not possible: see noteExec.
func (r *Runtime) Exec(ctx context.Context, id string, cfg gantry.ExecConfig) (_ gantry.ExecResult, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "exec", id)
	if err := r.state.Err(); err != nil {
		return gantry.ExecResult{}, err
	}
	return gantry.ExecResult{}, fmt.Errorf("%w: %s", gantry.ErrNotSupported, noteExec)
}

// Logs reads the container's output from Cloud Logging, where the
// function's Cloud Run service writes it: every run, in time order.
func (r *Runtime) Logs(ctx context.Context, id string, opts gantry.LogsOptions) (_ gantry.LogReader, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "logs", id)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	var ended time.Time
	if serving(f) == nil {
		st, ok, err := r.latest(ctx, f)
		if err != nil {
			return nil, err
		}
		if ok && !st.Running {
			ended = st.Finished
		}
	}
	fnID := f.id()
	var flt cloudlog.Filter
	flt.Eq("resource.type", "cloud_run_revision").
		Eq("resource.labels.service_name", fnID).
		Eq("resource.labels.location", r.cfg.Region)
	notBefore := timeOf(f.pb)
	if notBefore.IsZero() {
		notBefore = f.rec.Created
	}
	return cloudlog.Open(ctx, cloudlog.Source{
		Client:    r.logs,
		Project:   r.cfg.Project,
		Filter:    &flt,
		StdoutLog: stdoutLog,
		StderrLog: stderrLog,
		NotBefore: notBefore,
		Stopped:   r.stoppedAt(f),
		Ended:     ended,
		Grace:     r.cfg.LogGrace,
		Settle:    r.cfg.PollInterval,
		Describe:  fmt.Sprintf("cloudfunctions: logs %q", id),
		Tail:      r.tail,
		Match: func(e *loggingpb.LogEntry) bool {
			return e.GetResource().GetLabels()["service_name"] == fnID
		},
	}, opts)
}

func timeOf(f *functionspb.Function) time.Time {
	if f.GetCreateTime() == nil {
		return time.Time{}
	}
	return f.GetCreateTime().AsTime()
}

// stoppedAt blocks until the container is not running and returns when
// its last run finished (zero if it never ran): Logs' end of following.
func (r *Runtime) stoppedAt(f *fn) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		if serving(f) != nil {
			return time.Time{}, nil
		}
		st, ok, err := r.latest(ctx, f)
		switch {
		case errors.Is(err, errRemoved):
			return time.Now(), nil
		case err != nil:
			return time.Time{}, err
		case !ok:
			return time.Time{}, nil
		case !st.Running:
			return st.Finished, nil
		}
		if _, err := r.waitRun(ctx, f, st.ID); err != nil {
			if errors.Is(err, errRemoved) {
				return time.Now(), nil
			}
			return time.Time{}, err
		}
		done, ok, err := r.invoke.status(ctx, f.url(), st.ID)
		if err != nil || !ok {
			return time.Now(), nil
		}
		return done.Finished, nil
	}
}

// runID names a new run after prev (ok false: none). Docker keeps the
// previous run's FinishedAt while the container runs again, and the
// runner reports the latest run only, so the ID carries it: random hex,
// then "-" and the previous run's end in Unix nanoseconds, base 36.
func runID(prev runner.Status, ok bool) string {
	id := naming.RandomHex(12)
	if ok && !prev.Finished.IsZero() {
		id += "-" + strconv.FormatInt(prev.Finished.UnixNano(), 36)
	}
	return id
}

// previousFinish reads the previous run's end from a run's ID (zero for
// a first run, or an ID gantry did not make).
func previousFinish(runID string) time.Time {
	_, enc, ok := strings.Cut(runID, "-")
	if !ok {
		return time.Time{}
	}
	ns, err := strconv.ParseInt(enc, 36, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
