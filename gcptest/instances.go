package gcptest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The Cloud Run instances room: google.cloud.run.v2.Instances (a
// Preview API: every Instance sent names launch_stage BETA or ALPHA)
// over the Server's operations. An instance is one group of containers
// that runs until it is stopped, with a URL of its own,
// http://127.0.0.1:N, kept from its creation to its deletion: Create
// starts it, Stop shuts its containers down (SIGTERM, then SIGKILL after
// the grace period), Start runs them again, and its restart_policy says
// what happens when one of them exits. The containers run as a service's
// instance's do (depends_on, startup and liveness probes, volumes,
// images, PORT for the ingress container); instances_run.go runs them
// (containerset.go), instances_proxy.go serves the URL (proxy.go), and
// what the room shares with the services room is in runroom.go.
// RULES.md ("Cloud Run instances") lists the rules.

// The restart backoff's defaults (WithInstanceRestartBackoff).
const (
	DefaultInstanceRestartDelay    = time.Second
	DefaultInstanceRestartMaxDelay = 5 * time.Minute
)

// WithInstanceRestartBackoff sets how long a Cloud Run instance waits
// before its restart_policy restarts it: initial before the first
// restart, doubling at each restart that follows, at most max; a run of
// 10 minutes resets it. The defaults are DefaultInstanceRestartDelay and
// DefaultInstanceRestartMaxDelay. Tests of restart policies use short
// ones.
func WithInstanceRestartBackoff(initial, max time.Duration) Option {
	return func(c *config) {
		if initial <= 0 || max < initial {
			c.errs = append(c.errs, fmt.Errorf("gcptest: WithInstanceRestartBackoff(%s, %s): want 0 < initial <= max", initial, max))
			return
		}
		c.instanceRestart, c.instanceRestartMax = initial, max
	}
}

// instanceName is projects/{project}/locations/{location}/instances/{instance}.
type instanceName struct {
	location
	instance string
}

func (n instanceName) String() string { return n.location.String() + "/instances/" + n.instance }

func parseInstanceName(field, name string) (instanceName, error) {
	v, ok := parseName(name, "projects", "locations", "instances")
	if !ok || slices.Contains(v, wildcard) {
		return instanceName{}, badName(field, name, "projects/{project}/locations/{location}/instances/{instance}")
	}
	return instanceName{location{v[0], v[1]}, v[2]}, nil
}

// instancesRoom is google.cloud.run.v2.Instances and the instances it
// runs.
type instancesRoom struct {
	runpb.UnimplementedInstancesServer
	runRoom

	instances resources[*instance, *runpb.Instance]
	// live holds every run that has not ended, so that close can shut
	// them all down.
	live map[*instanceRun]bool
}

// instance is one instance: its stored resource, its URL and what runs.
// Its fields are guarded by the room's lock.
type instance struct {
	name  instanceName
	pb    *runpb.Instance
	proxy *instanceProxy
	// act orders the changes to what runs (start, stop, update): each
	// operation takes it when its turn comes.
	act     sync.Mutex
	deleted bool
	// run is what runs: the containers, restarted by the restart
	// policy, from a Create, Start or Update until a Stop or the end
	// the policy leaves; nil when nothing runs.
	run *instanceRun
	// runs counts the containers' starts, which names them.
	runs int
	// pending counts the operations accepted and not yet applied.
	pending int
}

func registerInstances(s *Server, g *grpc.Server) *instancesRoom {
	r := &instancesRoom{runRoom: newRunRoom(s), instances: newResources[*instance, *runpb.Instance]("instance"), live: map[*instanceRun]bool{}}
	runpb.RegisterInstancesServer(g, r)
	return r
}

// close shuts every instance down: its URL stops answering and its
// containers get SIGTERM, then SIGKILL after the grace period. It runs
// before the Server's context ends, which would kill them at once.
func (r *instancesRoom) close() {
	r.closeRoom(func() []func() {
		for _, in := range r.instances.byName {
			in.proxy.close()
		}
		var shutdowns []func()
		for run := range r.live {
			shutdowns = append(shutdowns, run.shutdown)
		}
		return shutdowns
	})
}

// The conditions of an instance: Running is its terminal condition
// (true while its containers run and are ready), ContainerReady says its
// images were found, ResourcesAvailable that its containers were
// created.
const (
	condRunning            = "Running"
	condContainerReady     = "ContainerReady"
	condResourcesAvailable = "ResourcesAvailable"
)

func withInstanceReason(c *runpb.Condition, reason runpb.Condition_InstanceReason) *runpb.Condition {
	if reason != runpb.Condition_INSTANCE_REASON_UNSPECIFIED {
		c.Reasons = &runpb.Condition_InstanceReason_{InstanceReason: reason}
	}
	return c
}

// setRunningLocked sets the instance's Running condition. The caller
// holds r.mu.
func (r *instancesRoom) setRunningLocked(in *instance, state runpb.Condition_State, reason runpb.Condition_InstanceReason, msg string) {
	in.pb.TerminalCondition = withInstanceReason(condition(condRunning, state, msg, r.s.now()), reason)
	r.refreshLocked(in)
}

// setConditionLocked sets one of the instance's other conditions. The
// caller holds r.mu.
func (r *instancesRoom) setConditionLocked(in *instance, c *runpb.Condition) {
	in.pb.Conditions = setCondition(in.pb.Conditions, c)
}

// refreshLocked recomputes reconciling: an operation not yet applied,
// or containers starting, restarting or stopping. The caller holds r.mu.
func (r *instancesRoom) refreshLocked(in *instance) {
	in.pb.Reconciling = in.pending > 0 || in.pb.GetTerminalCondition().GetState() == runpb.Condition_CONDITION_RECONCILING
}

// instanceLogURI is the console's Logs URL for an instance.
func instanceLogURI(n instanceName) string {
	filter := fmt.Sprintf("resource.type=\"cloud_run_instance\"\nresource.labels.instance_name=\"%s\"\nresource.labels.location=\"%s\"", n.instance, n.location.location)
	return fmt.Sprintf("https://console.cloud.google.com/logs/viewer?project=%s&advancedFilter=%s", n.project, url.QueryEscape(filter))
}

// errInstanceAborted is why an operation did not apply: the instance
// changed or went away first.
func errInstanceAborted(n instanceName) error {
	return status.Errorf(codes.Aborted, "instance %s was changed, stopped or deleted before the operation applied", n)
}

// operate starts an operation on in and, after the reconcile delay,
// applies it with apply, which finishes it. With instant operations the
// call returns once the operation is done. The operation was counted
// in in.pending, and apply uncounts it.
func (r *instancesRoom) operate(ctx context.Context, in *instance, apply func(op string)) (*longrunningpb.Operation, error) {
	return r.runRoom.operate(ctx, in.name.location, r.instances.snapshot(&r.runRoom, in.name.String()), apply)
}

// appliedLocked uncounts an operation that applies now. The caller
// holds r.mu.
func (r *instancesRoom) appliedLocked(in *instance) {
	in.pending--
	r.refreshLocked(in)
}

// CreateInstance validates and stores an instance and starts it; its
// operation finishes once its containers run and have passed their
// startup probes, or fails when they cannot.
func (r *instancesRoom) CreateInstance(ctx context.Context, req *runpb.CreateInstanceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	if err := checkInstanceRegion(loc); err != nil {
		return nil, err
	}
	id := req.GetInstanceId()
	if id == "" {
		id = "instance-" + randomSuffix(8)
	}
	name := instanceName{loc, id}
	pb, err := prepareInstance(req.GetInstance(), name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	pb.Uid = newUID()
	pb.Generation = 1
	pb.CreateTime, pb.UpdateTime = ts(now), ts(now)
	pb.Creator, pb.LastModifier = Principal, Principal
	pb.Etag = etag(pb.Name, pb.Generation, now)
	pb.LogUri = instanceLogURI(name)
	pb.TerminalCondition = condition(condRunning, runpb.Condition_CONDITION_RECONCILING, "", now)
	pb.Conditions = []*runpb.Condition{
		condition(condContainerReady, runpb.Condition_CONDITION_PENDING, "", now),
		condition(condResourcesAvailable, runpb.Condition_CONDITION_PENDING, "", now),
	}
	pb.Reconciling = true
	if req.GetValidateOnly() {
		return s.doneOperation(loc, pb, nil), nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errServerClosing
	}
	if _, ok := r.instances.byName[pb.Name]; ok {
		r.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "instance %s already exists", pb.Name)
	}
	proxy, err := r.newProxy(pb.Name)
	if err != nil {
		r.mu.Unlock()
		return nil, status.Errorf(codes.Unavailable, "gcptest: no port for the instance's URL: %v", err)
	}
	pb.Urls = []string{proxy.url}
	in := &instance{name: name, pb: pb, proxy: proxy, pending: 1}
	r.instances.byName[pb.Name] = in
	r.mu.Unlock()
	return r.operate(ctx, in, func(op string) { r.start(in, op) })
}

// start runs in's containers unless they run already, and finishes op
// once they are ready (or cannot get there).
func (r *instancesRoom) start(in *instance, op string) {
	in.act.Lock()
	r.mu.Lock()
	r.appliedLocked(in)
	if in.deleted || r.closed {
		r.mu.Unlock()
		in.act.Unlock()
		r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		return
	}
	if in.run != nil {
		resp := clone(in.pb)
		r.mu.Unlock()
		in.act.Unlock()
		r.s.ops.finish(op, resp, nil)
		return
	}
	run := r.startRunLocked(in)
	r.mu.Unlock()
	in.act.Unlock()
	r.finishWhenRunning(in, run, op)
}

// finishWhenRunning finishes op once run's first containers are ready,
// with the instance as its response, or with why they are not.
func (r *instancesRoom) finishWhenRunning(in *instance, run *instanceRun, op string) {
	select {
	case <-run.first.ready:
	case <-r.quit:
		r.s.ops.finish(op, nil, errServerClosing)
		return
	}
	if err := run.first.err; err != nil {
		if errors.Is(err, errRunStopped) {
			r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		} else {
			r.s.ops.finish(op, nil, status.Error(codes.FailedPrecondition, err.Error()))
		}
		return
	}
	r.mu.Lock()
	if in.pb.ObservedGeneration < run.gen {
		in.pb.ObservedGeneration = run.gen
	}
	resp := clone(in.pb)
	r.mu.Unlock()
	r.s.ops.finish(op, resp, nil)
}

// GetInstance returns an instance.
func (r *instancesRoom) GetInstance(_ context.Context, req *runpb.GetInstanceRequest) (*runpb.Instance, error) {
	name, err := parseInstanceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return r.instances.get(&r.runRoom, name)
}

// ListInstances lists the instances of a location in name order, or in
// no particular order with unordered lists.
func (r *instancesRoom) ListInstances(_ context.Context, req *runpb.ListInstancesRequest) (*runpb.ListInstancesResponse, error) {
	page, next, err := r.instances.list(&r.runRoom, req)
	if err != nil {
		return nil, err
	}
	return &runpb.ListInstancesResponse{Instances: page, NextPageToken: next}, nil
}

// UpdateInstance replaces the instance's desired state, or the fields
// the update mask names, or creates it with allow_missing. A change of
// what runs restarts a running instance's containers with it; a stopped
// instance stays stopped and runs it when started.
func (r *instancesRoom) UpdateInstance(ctx context.Context, req *runpb.UpdateInstanceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	inReq := req.GetInstance()
	if inReq == nil {
		return nil, invalid("instance is required")
	}
	name, err := parseInstanceName("instance.name", inReq.GetName())
	if err != nil {
		return nil, err
	}
	cur, pb, err := prepareUpdate(&r.runRoom, r.instances, name, inReq, req.GetAllowMissing(), req.GetUpdateMask().GetPaths(), prepareInstance)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return r.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: name.location.String(), InstanceId: name.instance, Instance: inReq, ValidateOnly: req.GetValidateOnly()})
	}
	now := s.now()
	r.mu.Lock()
	if err := r.instances.unchangedLocked(cur, name, inReq.GetEtag()); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	old := cur.pb
	pb.Uid, pb.CreateTime, pb.Creator = old.Uid, old.CreateTime, old.Creator
	pb.Generation = old.Generation + 1
	pb.ObservedGeneration = old.ObservedGeneration
	pb.Urls, pb.LogUri = old.Urls, old.LogUri
	pb.TerminalCondition, pb.Conditions, pb.ContainerStatuses = old.TerminalCondition, old.Conditions, old.ContainerStatuses
	pb.UpdateTime, pb.LastModifier = ts(now), Principal
	pb.Etag = etag(pb.Name, pb.Generation, now)
	restart := runChanged(old, pb)
	if req.GetValidateOnly() {
		pb.Reconciling = true
		r.mu.Unlock()
		return s.doneOperation(name.location, pb, nil), nil
	}
	cur.pb = pb
	cur.pending++
	r.refreshLocked(cur)
	gen := pb.Generation
	r.mu.Unlock()
	return r.operate(ctx, cur, func(op string) { r.update(cur, op, gen, restart) })
}

// runChanged reports whether two states of an instance run differently:
// anything but its metadata, its URL's settings (ingress, the invoker
// check) and its restart policy, which apply to the running containers
// as they are.
func runChanged(a, b *runpb.Instance) bool {
	strip := func(pb *runpb.Instance) *runpb.Instance {
		c := &runpb.Instance{
			ServiceAccount:      pb.ServiceAccount,
			Containers:          pb.Containers,
			Volumes:             pb.Volumes,
			NodeSelector:        pb.NodeSelector,
			VpcAccess:           pb.VpcAccess,
			EncryptionKey:       pb.EncryptionKey,
			BinaryAuthorization: pb.BinaryAuthorization,
			Sandboxes:           pb.Sandboxes,
		}
		return c
	}
	return !proto.Equal(strip(a), strip(b))
}

// update applies the instance's generation gen: a running instance
// whose containers change is stopped and started again with them.
func (r *instancesRoom) update(in *instance, op string, gen int64, restart bool) {
	in.act.Lock()
	r.mu.Lock()
	r.appliedLocked(in)
	if in.deleted || r.closed || in.pb.Generation != gen {
		r.mu.Unlock()
		in.act.Unlock()
		r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		return
	}
	run := in.run
	if run == nil || !restart {
		if run != nil {
			// What runs is unchanged; the settings apply as they are.
			run.spec = clone(in.pb)
		}
		in.pb.ObservedGeneration = gen
		resp := clone(in.pb)
		r.mu.Unlock()
		in.act.Unlock()
		r.s.ops.finish(op, resp, nil)
		return
	}
	r.setRunningLocked(in, runpb.Condition_CONDITION_RECONCILING, runpb.Condition_INSTANCE_STOPPING, "The instance restarts to apply the update.")
	r.mu.Unlock()
	run.shutdown()
	r.mu.Lock()
	if in.run == run {
		in.run = nil
		run.signalLocked()
	}
	if in.deleted || r.closed || in.pb.Generation != gen {
		r.mu.Unlock()
		in.act.Unlock()
		r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		return
	}
	next := r.startRunLocked(in)
	r.mu.Unlock()
	in.act.Unlock()
	r.finishWhenRunning(in, next, op)
}

// StartInstance starts a stopped instance (one that completed or failed
// too): its containers run again behind the same name and URL. Its
// operation finishes once they are ready. An instance that runs already
// is left as it is.
func (r *instancesRoom) StartInstance(ctx context.Context, req *runpb.StartInstanceRequest) (*longrunningpb.Operation, error) {
	return r.startOrStop(ctx, req.GetName(), req.GetEtag(), req.GetValidateOnly(), r.start)
}

// touchLocked records a change of the instance's desired state that
// makes no new generation (a start or a stop): a new update time and
// etag. The caller holds r.mu.
func (r *instancesRoom) touchLocked(in *instance) {
	now := r.s.now()
	in.pb.UpdateTime, in.pb.LastModifier = ts(now), Principal
	in.pb.Etag = etag(in.pb.Name, in.pb.Generation, now)
}

// StopInstance stops an instance: every container gets SIGTERM, then
// SIGKILL after the grace period, and the operation finishes once they
// are gone, with the instance stopped (Running false, reason
// INSTANCE_STOPPED). Name, URL and configuration stay.
func (r *instancesRoom) StopInstance(ctx context.Context, req *runpb.StopInstanceRequest) (*longrunningpb.Operation, error) {
	return r.startOrStop(ctx, req.GetName(), req.GetEtag(), req.GetValidateOnly(), r.stop)
}

// startOrStop is the request of a StartInstance or a StopInstance: it
// records the change of the named instance's desired state and applies
// it with apply after the reconcile delay.
func (r *instancesRoom) startOrStop(ctx context.Context, fullName, tag string, validateOnly bool, apply func(in *instance, op string)) (*longrunningpb.Operation, error) {
	name, err := parseInstanceName("name", fullName)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	in, err := r.instances.lookupLocked(name, tag)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if validateOnly {
		resp := clone(in.pb)
		r.mu.Unlock()
		return r.s.doneOperation(name.location, resp, nil), nil
	}
	r.touchLocked(in)
	in.pending++
	r.refreshLocked(in)
	r.mu.Unlock()
	return r.operate(ctx, in, func(op string) { apply(in, op) })
}

// stop shuts what runs down and records the instance as stopped.
func (r *instancesRoom) stop(in *instance, op string) {
	in.act.Lock()
	defer in.act.Unlock()
	r.mu.Lock()
	r.appliedLocked(in)
	if in.deleted || r.closed {
		r.mu.Unlock()
		r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		return
	}
	run := in.run
	if run != nil {
		r.setRunningLocked(in, runpb.Condition_CONDITION_RECONCILING, runpb.Condition_INSTANCE_STOPPING, "The instance is stopping.")
	}
	r.mu.Unlock()
	run.shutdown()
	r.mu.Lock()
	if in.deleted {
		r.mu.Unlock()
		r.s.ops.finish(op, nil, errInstanceAborted(in.name))
		return
	}
	if in.run == run && run != nil {
		in.run = nil
		run.signalLocked()
	}
	r.setRunningLocked(in, runpb.Condition_CONDITION_FAILED, runpb.Condition_INSTANCE_STOPPED, "The instance was stopped.")
	resp := clone(in.pb)
	r.mu.Unlock()
	r.s.ops.finish(op, resp, nil)
}

// DeleteInstance deletes an instance: it is gone at once and its URL
// refuses connections; the operation finishes once its containers have
// stopped (SIGTERM, then SIGKILL after the grace period), with the
// deleted instance as its response.
func (r *instancesRoom) DeleteInstance(_ context.Context, req *runpb.DeleteInstanceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	name, err := parseInstanceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	in, err := r.instances.lookupLocked(name, req.GetEtag())
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	deleted := clone(in.pb)
	now := s.now()
	deleted.DeleteTime, deleted.ExpireTime = ts(now), ts(now)
	deleted.TerminalCondition = withInstanceReason(condition(condRunning, runpb.Condition_CONDITION_FAILED, "The instance was deleted.", now), runpb.Condition_INSTANCE_DELETED)
	deleted.Reconciling = false
	if req.GetValidateOnly() {
		r.mu.Unlock()
		return s.doneOperation(name.location, deleted, nil), nil
	}
	delete(r.instances.byName, name.String())
	in.deleted = true
	in.proxy.close()
	run := in.run
	if run != nil {
		in.run = nil
		run.signalLocked()
	}
	r.mu.Unlock()
	return r.deleteOperation(name.location, deleted, run.shutdown)
}

func (in *instance) state() *runpb.Instance { return in.pb }
func (in *instance) isDeleted() bool        { return in.deleted }
