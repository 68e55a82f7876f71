package gcptest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
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
	// addr is where the ingress container listens (127.0.0.1:$PORT);
	// h2c says it speaks HTTP/2 without TLS. Both are set before ready
	// closes.
	addr string
	h2c  bool
	// ready closes once every container has started and passed its
	// startup probe, or once they cannot get there (err says why).
	ready     chan struct{}
	readyOnce sync.Once
	err       error
	// ending closes when the attempt is being stopped (by a stop of its
	// run, or after a liveness probe failed): its URL waits for the
	// next one instead.
	ending chan struct{}
}

func newInstanceAttempt() *instanceAttempt {
	return &instanceAttempt{ready: make(chan struct{}), ending: make(chan struct{})}
}

// markReady closes ready, with err as the reason the containers are not
// running when err is not nil; only the first call counts.
func (a *instanceAttempt) markReady(err error) {
	a.readyOnce.Do(func() {
		a.err = err
		close(a.ready)
	})
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
// service's instance runs (services_instance.go): it picks the port of
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
	plan, statuses, err := s.planInstanceRun(s.ctx, in.name, spec, port, n, end.logs)
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

	livenessCtx, stopLiveness := context.WithCancel(s.ctx)
	defer stopLiveness()
	var (
		livenessWG  sync.WaitGroup
		restart     = make(chan struct{})
		restartOnce sync.Once
		liveFailure string
		readyAt     time.Time
	)
	onReady := func() {
		readyAt = time.Now()
		r.mu.Lock()
		if r.liveLocked(in, run) {
			r.setConditionLocked(in, condition(condResourcesAvailable, runpb.Condition_CONDITION_SUCCEEDED, "", s.now()))
			r.setRunningLocked(in, runpb.Condition_CONDITION_SUCCEEDED, runpb.Condition_INSTANCE_REASON_UNSPECIFIED, "")
		}
		r.mu.Unlock()
		att.markReady(nil)
		for i, c := range cs {
			if c.GetLivenessProbe() == nil {
				continue
			}
			lp := livenessProbe(c, i == ingress && len(c.GetPorts()) > 0, port)
			ac := plan.containers[i]
			livenessWG.Add(1)
			go func() {
				defer livenessWG.Done()
				if failure := lp.watch(livenessCtx, ac.name, ac.p.exited); failure != "" {
					restartOnce.Do(func() {
						liveFailure = failure
						close(restart)
					})
				}
			}()
		}
	}
	// A container whose liveness probe fails is restarted: here the
	// attempt ends, and the restart policy decides.
	stop := make(chan struct{})
	go func() {
		select {
		case <-run.stop:
		case <-restart:
		case <-livenessCtx.Done():
			return
		}
		close(att.ending)
		close(stop)
	}()
	out := s.runContainers(s.ctx, plan.containers, 0, stop, func(time.Time) {}, runHooks{onReady: onReady, exitEnds: true})
	stopLiveness()
	livenessWG.Wait()
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
	case liveFailure != "":
		end.msg = liveFailure
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

// planInstanceRun prepares one attempt of an instance's containers, as
// planInstance does a revision's: each container's image, its volumes
// (a directory of this host for the attempt), its environment (the
// container's, GCE_METADATA_HOST, and PORT for the ingress container)
// and its startup probe, which on the ingress container's port probes
// the port of this host it listens on instead. It returns the
// containers' statuses: their names and images' digests.
func (s *Server) planInstanceRun(ctx context.Context, name instanceName, spec *runpb.Instance, port, n int, logs logTarget) (_ *attemptPlan, _ []*runpb.ContainerStatus, err error) {
	plan := &attemptPlan{}
	defer func() {
		if err != nil {
			plan.cleanup()
		}
	}()
	volumes := map[string]*runpb.Volume{}
	for _, v := range spec.GetVolumes() {
		volumes[v.Name] = v
	}
	cs := spec.GetContainers()
	byName := map[string]int{}
	for i, c := range cs {
		byName[c.Name] = i
	}
	ingress := ingressIndex(cs)
	multi := len(cs) > 1
	var statuses []*runpb.ContainerStatus
	for i, c := range cs {
		img, err := s.images.get(ctx, c.Image)
		if err != nil {
			return nil, nil, err
		}
		statuses = append(statuses, &runpb.ContainerStatus{Name: c.Name, ImageDigest: imageDigest(c.Image, img)})
		mounts, err := s.volumeMounts(plan, name.instance, n, c, volumes)
		if err != nil {
			return nil, nil, err
		}
		w, err := s.containerBase(name.project, c, img, mounts)
		if err != nil {
			return nil, nil, err
		}
		if i == ingress {
			w.Env = append(w.Env, "PORT="+strconv.Itoa(port))
		}
		w.Name = fmt.Sprintf("%s-r%d", name.instance, n)
		if multi {
			w.Name += "-" + c.Name
		}
		w.Labels = map[string]string{"gcptest.instance": name.String()}
		if c.Name != "" {
			w.Labels["gcptest.container"] = c.Name
		}
		cl := logs
		if multi {
			cl.labels = map[string]string{containerNameLabel: c.Name}
			for k, v := range logs.labels {
				cl.labels[k] = v
			}
		}
		ac := &attemptContainer{name: c.Name, w: workload{spec: w, logs: cl}, probe: startupProbe(c)}
		if ac.name == "" {
			ac.name = name.instance
		}
		if i == ingress && ac.probe != nil && len(c.GetPorts()) > 0 && ac.probe.port == int(c.GetPorts()[0].GetContainerPort()) {
			ac.probe.port = port
		}
		for _, d := range c.DependsOn {
			ac.deps = append(ac.deps, byName[d])
		}
		if ac.probe != nil && ac.probe.port != port && !slices.Contains(plan.ports, ac.probe.port) {
			plan.ports = append(plan.ports, ac.probe.port)
		}
		plan.containers = append(plan.containers, ac)
	}
	return plan, statuses, nil
}

// imageDigest is the digest a container status reports for ref: that of
// the image pulled from a registry (its files are extracted under a
// directory named by it), the digest ref names, or, for an image that
// is a name only, a digest of the name.
func imageDigest(ref string, img *pulledImage) string {
	if img != nil {
		return "sha256:" + filepath.Base(img.root)
	}
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
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
