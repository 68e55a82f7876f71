package gcptest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/monitoredres"
	ltype "google.golang.org/genproto/googleapis/logging/type"

	"github.com/gantryhq/gantry"
)

// serviceInstance is one instance of a revision of a service: its
// containers, run as a task attempt's are, until it is shut down or a
// container exits.
type serviceInstance struct {
	service *service
	rev     *revision
	// ports are the ports of this host its sidecars' startup probes
	// use, held while it runs; set under the room's lock.
	ports []int
	// upstream is where the ingress container listens and whether the
	// instance got ready (err says why not, in Cloud Run's words).
	upstream
	stop     chan struct{}
	stopOnce sync.Once
	// done closes once every container has exited and been removed.
	done chan struct{}
}

func newServiceInstance(sv *service, rev *revision) *serviceInstance {
	return &serviceInstance{service: sv, rev: rev, upstream: upstream{ready: make(chan struct{})}, stop: make(chan struct{}), done: make(chan struct{})}
}

// shutdown stops the instance as Cloud Run does (SIGTERM, then SIGKILL
// after the grace period) and waits until it has stopped. A nil
// instance is a no-op.
func (in *serviceInstance) shutdown() {
	if in == nil {
		return
	}
	in.stopOnce.Do(func() { close(in.stop) })
	<-in.done
}

// revisionError is why a revision's instance does not serve, in
// Cloud Run's words (which begin with a capital and end with a period).
type revisionError struct{ msg string }

func (e *revisionError) Error() string { return e.msg }

func notReady(format string, args ...any) error {
	return &revisionError{fmt.Sprintf(format, args...)}
}

// errRoomClosing is why an instance does not start once the room has
// closed.
var errRoomClosing = errors.New("the server is closing")

// startInstanceLocked starts an instance of rev for sv. The caller holds
// r.mu.
func (r *servicesRoom) startInstanceLocked(sv *service, rev *revision) *serviceInstance {
	in := newServiceInstance(sv, rev)
	sv.instances++
	n := sv.instances
	r.live[in] = true
	if !r.goLocked(func() {
		defer func() {
			r.mu.Lock()
			delete(r.live, in)
			r.mu.Unlock()
		}()
		r.runInstance(sv.name, rev, in, n)
	}) {
		delete(r.live, in)
		in.markReady(errRoomClosing)
		close(in.done)
	}
	return in
}

// runInstance runs an instance until it is shut down or a container
// exits: it picks the port of this host the ingress container listens
// on, prepares the containers as Cloud Run would (images, volumes,
// secrets, environment), waits for the ports its sidecars' probes use
// and runs them.
func (r *servicesRoom) runInstance(name serviceName, rev *revision, in *serviceInstance, n int) {
	s := r.s
	defer close(in.done)
	instanceID := newInstanceID()
	logs := serviceLogTarget(name, rev.name, instanceID)
	port, err := freeHostPort()
	if err != nil {
		in.markReady(notReady("Revision '%s' is not ready and cannot serve traffic. No port of this host is free for $PORT: %v", rev.name, err))
		return
	}
	in.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	plan, _, err := s.planContainerSet(s.ctx, containerSet{
		project:    name.project,
		containers: rev.tmpl.GetContainers(),
		volumes:    rev.tmpl.GetVolumes(),
		dir:        rev.name,
		n:          n,
		port:       port,
		workload:   fmt.Sprintf("%s-i%d", rev.name, n),
		unnamed:    name.service,
		env:        []string{"K_SERVICE=" + name.service, "K_REVISION=" + rev.name, "K_CONFIGURATION=" + name.service},
		labels:     map[string]string{"gcptest.service": name.String(), "gcptest.revision": rev.name},
		logs:       serviceLogTarget(name, rev.name, instanceID),
	})
	if err != nil {
		var imgErr *imageError
		if errors.As(err, &imgErr) {
			in.markReady(notReady("Revision '%s' is not ready and cannot serve traffic. %s", rev.name, imgErr.msg))
		} else {
			in.markReady(notReady("Revision '%s' is not ready and cannot serve traffic. The container could not be started: %v", rev.name, err))
		}
		s.logSystem(logs, ltype.LogSeverity_ERROR, "The container could not be started: "+err.Error())
		return
	}
	defer plan.cleanup()
	// An instance shares this host's network: it waits until no task
	// attempt or other instance holds the ports its sidecars' probes use.
	// The instance it replaces stops first if it holds one of them, as
	// this one could never start beside it.
	r.mu.Lock()
	in.ports = plan.ports
	var old *serviceInstance
	if cur := in.service.inst; cur != nil && cur != in && slices.ContainsFunc(cur.ports, func(p int) bool { return slices.Contains(plan.ports, p) }) {
		old = cur
	}
	r.mu.Unlock()
	old.shutdown()
	if !s.ports.acquire(s.ctx, in.stop, plan.ports) {
		in.markReady(notReady("Revision '%s' was stopped before it was ready.", rev.name))
		return
	}
	defer s.ports.release(plan.ports)
	ingress := ingressIndex(rev.tmpl.GetContainers())
	in.h2c = rev.tmpl.GetContainers()[ingress].GetPorts()[0].GetName() == "h2c"
	liveness := newLivenessWatch(s.ctx)
	defer liveness.stop()
	onReady := func() {
		in.markReady(nil)
		liveness.start(rev.tmpl.GetContainers(), plan, port, func(failure string) {
			s.logSystem(logs, ltype.LogSeverity_ERROR, failure)
		})
	}
	stop := liveness.stopOn(in.stop, nil)
	out := s.runContainers(s.ctx, plan.containers, 0, stop, func(time.Time) {}, runHooks{onReady: onReady, exitEnds: true})
	liveness.stop()
	select {
	case <-in.ready:
	default:
		// It never got ready: Cloud Run's deploy error, and what failed
		// in the revision's logs.
		if out.stopped {
			in.markReady(notReady("Revision '%s' was stopped before it was ready.", rev.name))
			return
		}
		why := out.failure
		switch {
		case out.err != nil:
			why = "The container could not be started: " + out.err.Error()
		case why != "":
		case out.signal != 0:
			why = fmt.Sprintf("The container was terminated by signal %d (%s).", out.signal, gantry.SignalName(out.signal))
		default:
			why = fmt.Sprintf("Container called exit(%d).", out.exitCode)
		}
		if c := rev.tmpl.GetContainers()[ingress]; strings.HasPrefix(why, "STARTUP ") && isDefaultStartupProbe(c.GetStartupProbe()) {
			why = "Default " + why
		}
		s.logSystem(logs, ltype.LogSeverity_ERROR, why)
		in.markReady(notReady("Revision '%s' is not ready and cannot serve traffic. The user-provided container failed to start and listen on the port defined provided by the PORT=%d environment variable within the allocated timeout. This can happen when the container port is misconfigured or if the timeout is too short. The health check timeout can be extended. Logs for this revision might contain more information.\n\nLogs URL: %s\nFor more troubleshooting guidance, see https://cloud.google.com/run/docs/troubleshooting#container-failed-to-start",
			rev.name, port, serviceLogURI(name, rev.name)))
		return
	}
	if !out.stopped {
		why := out.failure
		if out.err != nil {
			why = out.err.Error()
		}
		s.logSystem(logs, ltype.LogSeverity_WARNING, "The instance stopped: "+why)
	}
}

// serviceLogTarget is how Cloud Run logs a service's instance: resource
// type cloud_run_revision with project_id, location, service_name,
// revision_name and configuration_name; the instance in the entry's
// labels.
func serviceLogTarget(n serviceName, revision, instance string) logTarget {
	return logTarget{
		project: n.project,
		resource: &monitoredres.MonitoredResource{
			Type: "cloud_run_revision",
			Labels: map[string]string{
				"project_id":         n.project,
				"location":           n.location.location,
				"service_name":       n.service,
				"revision_name":      revision,
				"configuration_name": n.service,
			},
		},
		labels: map[string]string{"instanceId": instance},
	}
}
