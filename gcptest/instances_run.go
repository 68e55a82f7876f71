package gcptest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	ltype "google.golang.org/genproto/googleapis/logging/type"

	"github.com/gantryhq/gantry"
)

// instanceRun is what runs for an instance from a start until a stop or
// the end its restart policy leaves: attempts of its containers, one
// after the other, each started as a service's instance is.
type instanceRun struct {
	// spec is the instance's desired state the run started with (or
	// the same containers with newer settings); gen its generation.
	// spec is replaced whole under the room's lock.
	spec *runpb.Instance
	gen  int64
	// stop closes to shut the run down; done closes once every
	// container of it has exited and been removed.
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	// first is the first attempt, whose readiness finishes the
	// operation that started the run.
	first *instanceAttempt
	// att is the attempt that runs now (nil between attempts) and
	// changed closes, and is replaced, whenever att changes or the run
	// ends. Both are guarded by the room's lock.
	att     *instanceAttempt
	changed chan struct{}
}

// shutdown stops the run as Cloud Run stops an instance (SIGTERM to
// every container, then SIGKILL after the grace period) and waits until
// it has ended. A nil run is a no-op.
func (run *instanceRun) shutdown() {
	if run == nil {
		return
	}
	run.stopOnce.Do(func() { close(run.stop) })
	<-run.done
}

// stopping reports whether the run was asked to stop.
func (run *instanceRun) stopping() bool {
	select {
	case <-run.stop:
		return true
	default:
		return false
	}
}

// signalLocked wakes whoever waits for the run to change. The caller
// holds the room's lock.
func (run *instanceRun) signalLocked() {
	close(run.changed)
	run.changed = make(chan struct{})
}

// instanceAttempt is one start of an instance's containers.
type instanceAttempt struct {
	// upstream is where the ingress container listens and whether the
	// containers got ready.
	upstream
	// ending closes when the attempt is being stopped (by a stop of its
	// run, or after a liveness probe failed): its URL waits for the
	// next one instead.
	ending chan struct{}
}

func newInstanceAttempt() *instanceAttempt {
	return &instanceAttempt{upstream: upstream{ready: make(chan struct{})}, ending: make(chan struct{})}
}

// errRunStopped is why an attempt did not get ready: its run was
// stopped first.
var errRunStopped = errors.New("the instance was stopped before it was running")

// instanceError is why an instance's containers did not get to run, in
// Cloud Run's words.
type instanceError struct{ msg string }

func (e *instanceError) Error() string { return e.msg }

// startRunLocked starts a run of in's desired state. The caller holds
// r.mu.
func (r *instancesRoom) startRunLocked(in *instance) *instanceRun {
	run := &instanceRun{
		spec:    clone(in.pb),
		gen:     in.pb.Generation,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		first:   newInstanceAttempt(),
		changed: make(chan struct{}),
	}
	in.run = run
	r.live[run] = true
	r.setRunningLocked(in, runpb.Condition_CONDITION_RECONCILING, runpb.Condition_INSTANCE_REASON_UNSPECIFIED, "")
	if !r.goLocked(func() {
		defer func() {
			r.mu.Lock()
			delete(r.live, run)
			r.mu.Unlock()
		}()
		r.supervise(in, run)
	}) {
		delete(r.live, run)
		in.run = nil
		run.first.markReady(errRoomClosing)
		close(run.done)
	}
	return run
}

// liveLocked reports whether run is still the instance's and not asked
// to stop: only then may it record the instance's state. The caller
// holds r.mu.
func (r *instancesRoom) liveLocked(in *instance, run *instanceRun) bool {
	return in.run == run && !run.stopping()
}

// backoffReset is how long an attempt must run, from when it was
// ready, for the restart backoff to start again from its first delay.
const backoffReset = 10 * time.Minute

// restartDelay is the backoff before the k-th restart in a row (from 0).
func (r *instancesRoom) restartDelay(k int) time.Duration {
	d, most := r.s.cfg.instanceRestart, r.s.cfg.instanceRestartMax
	if d == 0 {
		d, most = DefaultInstanceRestartDelay, DefaultInstanceRestartMaxDelay
	}
	for ; k > 0 && d < most; k-- {
		d *= 2
	}
	return min(d, most)
}

// supervise runs the attempts of run until it is stopped or an attempt
// ends in a way the restart policy does not restart: ALWAYS restarts
// after any exit, ON_FAILURE after a failure (a non-zero exit, a signal,
// a failed probe, containers that could not start), NEVER never. A
// restart waits the restart backoff.
func (r *instancesRoom) supervise(in *instance, run *instanceRun) {
	defer close(run.done)
	restarts := 0
	for att := run.first; ; att = newInstanceAttempt() {
		r.mu.Lock()
		if !r.liveLocked(in, run) {
			r.mu.Unlock()
			att.markReady(errRunStopped)
			return
		}
		in.runs++
		n := in.runs
		spec := run.spec
		run.att = att
		run.signalLocked()
		r.mu.Unlock()

		end := r.runAttempt(in, run, spec, att, n)
		if end.stopped || run.stopping() {
			return
		}
		r.mu.Lock()
		policy := run.spec.GetRestartPolicy()
		r.mu.Unlock()
		reason := runpb.Condition_INSTANCE_NON_ZERO_EXIT_CODE
		if end.clean {
			reason = runpb.Condition_INSTANCE_REASON_UNSPECIFIED
		}
		if policy != runpb.Instance_ALWAYS && (policy != runpb.Instance_ON_FAILURE || end.clean) {
			r.mu.Lock()
			if r.liveLocked(in, run) {
				in.run = nil
				run.att = nil
				run.signalLocked()
				r.setRunningLocked(in, runpb.Condition_CONDITION_FAILED, reason, end.msg)
			}
			r.mu.Unlock()
			return
		}
		if end.ran >= backoffReset {
			restarts = 0
		}
		delay := r.restartDelay(restarts)
		restarts++
		r.mu.Lock()
		if r.liveLocked(in, run) {
			run.att = nil
			run.signalLocked()
			r.setRunningLocked(in, runpb.Condition_CONDITION_RECONCILING, reason, fmt.Sprintf("%s The instance restarts in %s.", end.msg, delay))
		}
		r.mu.Unlock()
		r.s.logSystem(end.logs, ltype.LogSeverity_INFO, fmt.Sprintf("The instance restarts in %s (restart policy %s).", delay, policy))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-run.stop:
			t.Stop()
			return
		}
	}
}

// attemptEnd is how an attempt of an instance's containers ended.
type attemptEnd struct {
	// stopped: its run was stopped.
	stopped bool
	// clean: a container exited with code 0 by itself, and nothing
	// failed before.
	clean bool
	// msg says how it ended, in Cloud Run's words.
	msg string
	// ran is how long it ran after it was ready (0 if it never was).
	ran  time.Duration
	logs logTarget
}

// runAttempt runs one attempt of the instance's containers, as a
// service's instance runs (containerset.go): it picks the port of
// this host the ingress container listens on, prepares the containers
// (images, volumes, secrets, environment), waits for the ports its
// sidecars' probes use, and runs them in depends_on order until one of
// them exits, a liveness probe fails, or the run is stopped.
func (r *instancesRoom) runAttempt(in *instance, run *instanceRun, spec *runpb.Instance, att *instanceAttempt, n int) (end attemptEnd) {
	s := r.s
	end.logs = instanceLogTarget(in.name, newInstanceID())
	failed := func(msg string) attemptEnd {
		end.msg = msg
		att.markReady(&instanceError{msg})
		return end
	}
	setCondition := func(c *runpb.Condition) {
		r.mu.Lock()
		if r.liveLocked(in, run) {
			r.setConditionLocked(in, c)
		}
		r.mu.Unlock()
	}
	port, err := freeHostPort()
	if err != nil {
		return failed("No port of this host is free for $PORT: " + err.Error())
	}
	att.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	plan, statuses, err := s.planContainerSet(s.ctx, containerSet{
		project:    in.name.project,
		containers: spec.GetContainers(),
		volumes:    spec.GetVolumes(),
		dir:        in.name.instance,
		n:          n,
		port:       port,
		workload:   fmt.Sprintf("%s-r%d", in.name.instance, n),
		unnamed:    in.name.instance,
		labels:     map[string]string{"gcptest.instance": in.name.String()},
		logs:       end.logs,
	})
	if err != nil {
		msg := "The container could not be started: " + err.Error()
		c := condition(condResourcesAvailable, runpb.Condition_CONDITION_FAILED, msg, s.now())
		if imgErr := (*imageError)(nil); errors.As(err, &imgErr) {
			msg = imgErr.msg
			c = condition(condContainerReady, runpb.Condition_CONDITION_FAILED, msg, s.now())
			c.Reasons = &runpb.Condition_Reason{Reason: runpb.Condition_CONTAINER_MISSING}
		}
		setCondition(c)
		s.logSystem(end.logs, ltype.LogSeverity_ERROR, msg)
		return failed(msg)
	}
	defer plan.cleanup()
	r.mu.Lock()
	if r.liveLocked(in, run) {
		in.pb.ContainerStatuses = statuses
		r.setConditionLocked(in, condition(condContainerReady, runpb.Condition_CONDITION_SUCCEEDED, "", s.now()))
	}
	r.mu.Unlock()
	// The instance shares this host's network: it waits until no task
	// attempt or other instance holds the ports its sidecars' probes use.
	if !s.ports.acquire(s.ctx, run.stop, plan.ports) {
		att.markReady(errRunStopped)
		end.stopped = true
		return end
	}
	defer s.ports.release(plan.ports)
	cs := spec.GetContainers()
	ingress := ingressIndex(cs)
	att.h2c = len(cs[ingress].GetPorts()) > 0 && cs[ingress].GetPorts()[0].GetName() == "h2c"

	liveness := newLivenessWatch(s.ctx)
	defer liveness.stop()
	var readyAt time.Time
	onReady := func() {
		readyAt = time.Now()
		r.mu.Lock()
		if r.liveLocked(in, run) {
			r.setConditionLocked(in, condition(condResourcesAvailable, runpb.Condition_CONDITION_SUCCEEDED, "", s.now()))
			r.setRunningLocked(in, runpb.Condition_CONDITION_SUCCEEDED, runpb.Condition_INSTANCE_REASON_UNSPECIFIED, "")
		}
		r.mu.Unlock()
		att.markReady(nil)
		liveness.start(cs, plan, port, nil)
	}
	stop := liveness.stopOn(run.stop, func() { close(att.ending) })
	out := s.runContainers(s.ctx, plan.containers, 0, stop, func(time.Time) {}, runHooks{onReady: onReady, exitEnds: true})
	liveness.stop()
	if !readyAt.IsZero() {
		end.ran = time.Since(readyAt)
	}
	if run.stopping() {
		att.markReady(errRunStopped)
		end.stopped = true
		return end
	}
	container := "The container"
	if out.container != "" {
		container = fmt.Sprintf("The container %q", out.container)
	}
	system := ""
	var imgErr *imageError
	switch {
	case liveness.failure != "":
		end.msg = liveness.failure
	case errors.As(out.err, &imgErr):
		end.msg = imgErr.msg
	case out.err != nil:
		end.msg = container + " could not be started: " + out.err.Error()
	case out.failure != "" && !strings.HasSuffix(out.failure, " exited."):
		end.msg = out.failure
	case out.signal != 0:
		end.msg = fmt.Sprintf("%s was terminated by signal %d (%s).", container, out.signal, gantry.SignalName(out.signal))
	case out.exitCode != 0:
		end.msg = fmt.Sprintf("%s exited with an error (exit code %d).", container, out.exitCode)
		system = fmt.Sprintf("Container called exit(%d).", out.exitCode)
	default:
		end.clean = true
		end.msg = container + " exited (exit code 0)."
		system = "Container called exit(0)."
	}
	if system == "" {
		system = end.msg
	}
	severity := ltype.LogSeverity_ERROR
	if end.clean {
		severity = ltype.LogSeverity_INFO
	}
	s.logSystem(end.logs, severity, system)
	return failed(end.msg)
}

// instanceLogTarget is how an instance's output is logged: resource type
// cloud_run_instance with project_id, location and instance_name; the
// start of its containers (a hex ID) in the entry's label instanceId.
func instanceLogTarget(n instanceName, id string) logTarget {
	return logTarget{
		project: n.project,
		resource: &monitoredres.MonitoredResource{
			Type: "cloud_run_instance",
			Labels: map[string]string{
				"project_id":    n.project,
				"location":      n.location.location,
				"instance_name": n.instance,
			},
		},
		labels: map[string]string{"instanceId": id},
	}
}
