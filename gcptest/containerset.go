package gcptest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/run/apiv2/runpb"
	ltype "google.golang.org/genproto/googleapis/logging/type"

	"github.com/gantryhq/gantry"
)

// A set of containers run as one instance behind PORT, as a service's
// revision and a Cloud Run instance run theirs (services_instance.go,
// instances_run.go): each container planned as a task attempt's is
// (image, volumes, secrets, environment), the ingress container given
// PORT, a free port of this host, since every instance shares this
// host's network, and the startup and liveness probes on that
// container's port probing the port of this host instead. The rooms say
// when a set starts and stops and what its end means.

// containerSet is what differs between the sets of containers the rooms
// run.
type containerSet struct {
	project string
	// containers and volumes are the set's; the containers have been
	// validated (validateServiceContainers, validateInstanceContainers).
	containers []*runpb.Container
	volumes    []*runpb.Volume
	// dir and n name the set's directory of volumes.
	dir string
	n   int
	// port is the port of this host the ingress container listens on.
	port int
	// workload names the containers (each's name added when there are
	// several); unnamed is the name of the one container left unnamed.
	workload, unnamed string
	// env follows each container's environment, before PORT; labels are
	// each container's, which also get gcptest.container.
	env    []string
	labels map[string]string
	// logs is where the containers' output goes, each's name added as a
	// label when there are several.
	logs logTarget
}

// planContainerSet prepares a start of a set of containers, as
// planAttempt does a task attempt. It returns the containers' statuses
// too: their names and images' digests.
func (s *Server) planContainerSet(ctx context.Context, set containerSet) (_ *attemptPlan, _ []*runpb.ContainerStatus, err error) {
	plan := &attemptPlan{}
	defer func() {
		if err != nil {
			plan.cleanup()
		}
	}()
	volumes := map[string]*runpb.Volume{}
	for _, v := range set.volumes {
		volumes[v.Name] = v
	}
	cs := set.containers
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
		mounts, err := s.volumeMounts(plan, set.dir, set.n, c, volumes)
		if err != nil {
			return nil, nil, err
		}
		w, err := s.containerBase(set.project, c, img, mounts)
		if err != nil {
			return nil, nil, err
		}
		w.Env = append(w.Env, set.env...)
		if i == ingress {
			w.Env = append(w.Env, "PORT="+strconv.Itoa(set.port))
		}
		w.Name = set.workload
		if multi {
			w.Name += "-" + c.Name
		}
		w.Labels = map[string]string{}
		for k, v := range set.labels {
			w.Labels[k] = v
		}
		if c.Name != "" {
			w.Labels["gcptest.container"] = c.Name
		}
		logs := set.logs
		if multi {
			logs.labels = map[string]string{containerNameLabel: c.Name}
			for k, v := range set.logs.labels {
				logs.labels[k] = v
			}
		}
		ac := &attemptContainer{name: c.Name, w: workload{spec: w, logs: logs}, probe: startupProbe(c)}
		if ac.name == "" {
			ac.name = set.unnamed
		}
		if i == ingress && ac.probe != nil && len(c.GetPorts()) > 0 && ac.probe.port == int(c.GetPorts()[0].GetContainerPort()) {
			ac.probe.port = set.port
		}
		for _, d := range c.DependsOn {
			ac.deps = append(ac.deps, byName[d])
		}
		if ac.probe != nil && ac.probe.port != set.port && !slices.Contains(plan.ports, ac.probe.port) {
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

// upstream is what a URL passes requests to: a set of containers.
type upstream struct {
	// addr is where the ingress container listens (127.0.0.1:$PORT);
	// h2c says it speaks HTTP/2 without TLS (a port named h2c). Both
	// are set before ready closes.
	addr string
	h2c  bool
	// ready closes once every container has started and passed its
	// startup probe, or once they cannot get there (err says why).
	ready     chan struct{}
	readyOnce sync.Once
	err       error
}

// markReady closes ready, with err as the reason the containers are not
// serving when err is not nil; only the first call counts.
func (u *upstream) markReady(err error) {
	u.readyOnce.Do(func() {
		u.err = err
		close(u.ready)
	})
}

// livenessWatch runs the liveness probes of a set's containers from
// when they are ready until it is stopped; the first probe to fail
// closes failed, with its message in failure.
type livenessWatch struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	failed  chan struct{}
	failure string
}

func newLivenessWatch(ctx context.Context) *livenessWatch {
	l := &livenessWatch{failed: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	return l
}

// start probes the containers cs of plan that have a liveness probe;
// onFailure, when not nil, is told of every failure.
func (l *livenessWatch) start(cs []*runpb.Container, plan *attemptPlan, port int, onFailure func(string)) {
	ingress := ingressIndex(cs)
	for i, c := range cs {
		if c.GetLivenessProbe() == nil {
			continue
		}
		lp := livenessProbe(c, i == ingress && len(c.GetPorts()) > 0, port)
		ac := plan.containers[i]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if failure := lp.watch(l.ctx, ac.name, ac.p.exited); failure != "" {
				if onFailure != nil {
					onFailure(failure)
				}
				l.once.Do(func() {
					l.failure = failure
					close(l.failed)
				})
			}
		}()
	}
}

// stopOn returns what stops the set's containers: a channel that closes
// when stop closes or a probe fails (a container whose liveness probe
// fails is restarted: here the set ends), after ending is called when
// not nil; neither once the watch is stopped.
func (l *livenessWatch) stopOn(stop <-chan struct{}, ending func()) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-l.failed:
		case <-l.ctx.Done():
			return
		}
		if ending != nil {
			ending()
		}
		close(out)
	}()
	return out
}

// stop ends the probes and waits for them.
func (l *livenessWatch) stop() {
	l.cancel()
	l.wg.Wait()
}

// freeHostPort returns a TCP port of this host that nothing listens on
// now.
func freeHostPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newInstanceID returns an instance ID of the form Cloud Run's have: a
// long string of hex digits.
func newInstanceID() string {
	b := make([]byte, 48)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// logSystem writes a line of Cloud Run's own about a workload to the
// log run.googleapis.com/varlog/system, as Cloud Run reports failed
// probes and instances.
func (s *Server) logSystem(t logTarget, severity ltype.LogSeverity, line string) {
	le := t.logEntry(gantry.LogEntry{Stream: gantry.Stdout, Time: s.now(), Line: line}, false)
	le.LogName = "projects/" + t.project + "/logs/run.googleapis.com%2Fvarlog%2Fsystem"
	le.Severity = severity
	s.logs.svc.Ingest(le)
}
