package gcptest

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The Cloud Run services room: google.cloud.run.v2.Services over the
// Server's operations. A service runs one instance at a time of its
// latest ready revision: one is started when a revision is deployed,
// and again by the first request after it ended. Its containers are
// processes of this host started as a task attempt's are (depends_on,
// startup probes, volumes, images), the ingress container listening on
// a free port of this host given as $PORT. Each service has a URL of
// its own, http://127.0.0.1:N, where a reverse proxy checks the
// invoker's ID token and passes requests, WebSocket upgrades included,
// to the instance (services_proxy.go, proxy.go). A new revision gets a
// new instance, which takes the traffic once it is ready; the old one
// is then shut down. services_instance.go runs an instance
// (containerset.go); what the room shares with the instances room is
// in runroom.go. RULES.md ("Services") lists the rules.

// serviceName is projects/{project}/locations/{location}/services/{service}.
type serviceName struct {
	location
	service string
}

func (n serviceName) String() string { return n.location.String() + "/services/" + n.service }

func parseServiceName(field, name string) (serviceName, error) {
	v, ok := parseName(name, "projects", "locations", "services")
	if !ok || slices.Contains(v, wildcard) {
		return serviceName{}, badName(field, name, "projects/{project}/locations/{location}/services/{service}")
	}
	return serviceName{location{v[0], v[1]}, v[2]}, nil
}

// servicesRoom is google.cloud.run.v2.Services and the services it
// serves.
type servicesRoom struct {
	runpb.UnimplementedServicesServer
	runRoom

	services resources[*service, *runpb.Service]
	// live holds every instance that has not ended, so that close can
	// shut them all down.
	live map[*serviceInstance]bool
}

// service is one service: its stored resource, its URL and the instance
// serving it.
type service struct {
	name  serviceName
	pb    *runpb.Service
	proxy *serviceProxy
	// revisions holds the template of every revision created, by name.
	revisions map[string]*runpb.RevisionTemplate
	// serving is the latest ready revision and inst the instance that
	// serves it, nil when none runs; pending is an instance of a new
	// revision that is not ready yet.
	serving *revision
	inst    *serviceInstance
	pending *serviceInstance
	deleted bool
	// failure is why the latest created revision cannot serve, when it
	// cannot.
	failure string
	// instances counts the instances started, which names them.
	instances int
}

// revision is a revision of a service: its name (the last segment) and
// template.
type revision struct {
	name string
	tmpl *runpb.RevisionTemplate
}

func registerServices(s *Server, g *grpc.Server) *servicesRoom {
	r := &servicesRoom{runRoom: newRunRoom(s), services: newResources[*service, *runpb.Service]("service"), live: map[*serviceInstance]bool{}}
	runpb.RegisterServicesServer(g, r)
	return r
}

// close shuts every service down: its URL stops answering and its
// instances get SIGTERM, then SIGKILL after the grace period. It runs
// before the Server's context ends, which would kill them at once.
func (r *servicesRoom) close() {
	r.closeRoom(func() []func() {
		for _, sv := range r.services.byName {
			sv.proxy.close()
		}
		var shutdowns []func()
		for in := range r.live {
			shutdowns = append(shutdowns, in.shutdown)
		}
		return shutdowns
	})
}

// revisionName is the name Cloud Run gives the n-th revision of a
// service: the service, the number on five digits, three random
// characters.
func revisionName(service string, n int) string {
	return fmt.Sprintf("%s-%05d-%s", service, n, randomSuffix(3))
}

// reconciling marks a service's change as in progress: Ready and the
// RoutesReady and ConfigurationsReady conditions reconciling.
func reconcilingService(svc *runpb.Service, at time.Time) {
	svc.Reconciling = true
	svc.TerminalCondition = condition("Ready", runpb.Condition_CONDITION_RECONCILING, "", at)
	svc.Conditions = []*runpb.Condition{
		condition("RoutesReady", runpb.Condition_CONDITION_RECONCILING, "", at),
		condition("ConfigurationsReady", runpb.Condition_CONDITION_RECONCILING, "", at),
	}
}

// CreateService validates and stores a service; its operation finishes
// when the service's first revision is ready to serve, or fails when it
// cannot start.
func (r *servicesRoom) CreateService(ctx context.Context, req *runpb.CreateServiceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	id := req.GetServiceId()
	if id == "" {
		id = "service-" + randomSuffix(8)
	}
	name := serviceName{loc, id}
	svc, err := prepareService(req.GetService(), name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	svc.Uid = newUID()
	svc.Generation = 1
	svc.CreateTime, svc.UpdateTime = ts(now), ts(now)
	svc.Creator, svc.LastModifier = Principal, Principal
	svc.Etag = etag(svc.Name, svc.Generation, now)
	rev := &revision{name: svc.Template.GetRevision(), tmpl: clone(svc.Template)}
	if rev.name == "" {
		rev.name = revisionName(id, 1)
	}
	svc.LatestCreatedRevision = name.String() + "/revisions/" + rev.name
	reconcilingService(svc, now)
	if req.GetValidateOnly() {
		return s.doneOperation(loc, svc, nil), nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errServerClosing
	}
	if _, ok := r.services.byName[svc.Name]; ok {
		r.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "service %s already exists", svc.Name)
	}
	proxy, err := r.newProxy(svc.Name)
	if err != nil {
		r.mu.Unlock()
		return nil, status.Errorf(codes.Unavailable, "gcptest: no port for the service's URL: %v", err)
	}
	sv := &service{name: name, pb: svc, proxy: proxy, revisions: map[string]*runpb.RevisionTemplate{rev.name: rev.tmpl}}
	r.services.byName[svc.Name] = sv
	r.mu.Unlock()
	return r.reconcile(ctx, sv, svc.Generation, rev)
}

// reconcile starts the operation of a change to a service and, after
// the reconcile delay, deploys rev (nil when the change makes no new
// revision). With instant operations it returns once the operation is
// done.
func (r *servicesRoom) reconcile(ctx context.Context, sv *service, gen int64, rev *revision) (*longrunningpb.Operation, error) {
	return r.operate(ctx, sv.name.location, r.services.snapshot(&r.runRoom, sv.name.String()), func(op string) { r.deploy(sv, gen, rev, op) })
}

// deploy brings a service to its generation gen: it starts an instance
// of rev, waits until it is ready and then routes the traffic to it,
// shutting the old instance down; or it records why rev cannot serve,
// leaving the old revision serving. Without a new revision the change
// is reconciled as it is.
func (r *servicesRoom) deploy(sv *service, gen int64, rev *revision, op string) {
	s := r.s
	aborted := status.Errorf(codes.Aborted, "service %s was changed or deleted before it was reconciled", sv.name)
	if rev == nil {
		r.mu.Lock()
		if sv.deleted || sv.pb.Generation != gen {
			r.mu.Unlock()
			s.ops.finish(op, nil, aborted)
			return
		}
		sv.pb.Reconciling = false
		if sv.failure != "" {
			r.failedLocked(sv, sv.failure)
		} else if sv.serving != nil {
			sv.pb.ObservedGeneration = gen
			r.readyLocked(sv)
		}
		resp := clone(sv.pb)
		r.mu.Unlock()
		s.ops.finish(op, resp, nil)
		return
	}
	r.mu.Lock()
	if sv.deleted || sv.pb.Generation != gen {
		r.mu.Unlock()
		s.ops.finish(op, nil, aborted)
		return
	}
	inst := r.startInstanceLocked(sv, rev)
	sv.pending = inst
	r.mu.Unlock()
	select {
	case <-inst.ready:
	case <-r.quit:
		inst.shutdown()
	}

	r.mu.Lock()
	if sv.pending == inst {
		sv.pending = nil
	}
	if sv.deleted || sv.pb.Generation != gen || r.closed {
		r.mu.Unlock()
		inst.shutdown()
		s.ops.finish(op, nil, aborted)
		return
	}
	if inst.err != nil {
		msg := inst.err.Error()
		sv.failure = msg
		sv.pb.Reconciling = false
		r.failedLocked(sv, msg)
		r.mu.Unlock()
		s.ops.finish(op, nil, status.Error(codes.FailedPrecondition, msg))
		return
	}
	old := sv.inst
	sv.serving, sv.inst, sv.failure = rev, inst, ""
	sv.pb.ObservedGeneration = gen
	sv.pb.Reconciling = false
	sv.pb.LatestReadyRevision = sv.name.String() + "/revisions/" + rev.name
	sv.pb.Uri = sv.proxy.url
	sv.pb.Urls = []string{sv.proxy.url}
	r.readyLocked(sv)
	resp := clone(sv.pb)
	r.mu.Unlock()
	// The new revision takes the traffic; the old instance is shut
	// down as Cloud Run retires a revision.
	old.shutdown()
	s.ops.finish(op, resp, nil)
}

// readyLocked records that the service serves its latest ready
// revision: Ready, RoutesReady and ConfigurationsReady succeeded, all
// the traffic to that revision. The caller holds r.mu.
func (r *servicesRoom) readyLocked(sv *service) {
	now := r.s.now()
	sv.pb.TerminalCondition = condition("Ready", runpb.Condition_CONDITION_SUCCEEDED, "", now)
	sv.pb.Conditions = []*runpb.Condition{
		condition("RoutesReady", runpb.Condition_CONDITION_SUCCEEDED, "", now),
		condition("ConfigurationsReady", runpb.Condition_CONDITION_SUCCEEDED, "", now),
	}
	sv.pb.TrafficStatuses = []*runpb.TrafficTargetStatus{{
		Type:     runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST,
		Revision: sv.serving.name,
		Percent:  100,
	}}
}

// failedLocked records that the latest created revision cannot serve,
// for the reason msg: Ready, RoutesReady and ConfigurationsReady failed.
// The revision serving before, if any, still serves. The caller holds
// r.mu.
func (r *servicesRoom) failedLocked(sv *service, msg string) {
	now := r.s.now()
	sv.pb.TerminalCondition = condition("Ready", runpb.Condition_CONDITION_FAILED, msg, now)
	sv.pb.Conditions = []*runpb.Condition{
		condition("RoutesReady", runpb.Condition_CONDITION_FAILED, msg, now),
		condition("ConfigurationsReady", runpb.Condition_CONDITION_FAILED, msg, now),
	}
}

// GetService returns a service.
func (r *servicesRoom) GetService(_ context.Context, req *runpb.GetServiceRequest) (*runpb.Service, error) {
	name, err := parseServiceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return r.services.get(&r.runRoom, name)
}

// ListServices lists the services of a location in name order, or in
// no particular order with unordered lists.
func (r *servicesRoom) ListServices(_ context.Context, req *runpb.ListServicesRequest) (*runpb.ListServicesResponse, error) {
	page, next, err := r.services.list(&r.runRoom, req)
	if err != nil {
		return nil, err
	}
	return &runpb.ListServicesResponse{Services: page, NextPageToken: next}, nil
}

// UpdateService replaces the service's desired state, or the fields the
// update mask names, or creates it with allow_missing. A change of the
// revision template (or force_new_revision) makes a new revision, which
// takes the traffic once it is ready.
func (r *servicesRoom) UpdateService(ctx context.Context, req *runpb.UpdateServiceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	in := req.GetService()
	if in == nil {
		return nil, invalid("service is required")
	}
	name, err := parseServiceName("service.name", in.GetName())
	if err != nil {
		return nil, err
	}
	cur, svc, err := prepareUpdate(&r.runRoom, r.services, name, in, req.GetAllowMissing(), req.GetUpdateMask().GetPaths(), prepareService)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return r.CreateService(ctx, &runpb.CreateServiceRequest{Parent: name.location.String(), ServiceId: name.service, Service: in, ValidateOnly: req.GetValidateOnly()})
	}
	now := s.now()
	r.mu.Lock()
	if err := r.services.unchangedLocked(cur, name, in.GetEtag()); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	old := cur.pb
	var rev *revision
	if req.GetForceNewRevision() || !proto.Equal(svc.Template, old.Template) {
		rev = &revision{name: svc.Template.GetRevision(), tmpl: clone(svc.Template)}
		if rev.name == "" {
			rev.name = revisionName(name.service, len(cur.revisions)+1)
		} else if _, ok := cur.revisions[rev.name]; ok {
			r.mu.Unlock()
			return nil, status.Errorf(codes.AlreadyExists, "Revision named '%s' with different configuration already exists.", rev.name)
		}
	}
	svc.Uid, svc.CreateTime, svc.Creator = old.Uid, old.CreateTime, old.Creator
	svc.Generation = old.Generation + 1
	svc.ObservedGeneration = old.ObservedGeneration
	svc.LatestReadyRevision, svc.LatestCreatedRevision = old.LatestReadyRevision, old.LatestCreatedRevision
	svc.Uri, svc.Urls, svc.TrafficStatuses = old.Uri, old.Urls, old.TrafficStatuses
	svc.UpdateTime, svc.LastModifier = ts(now), Principal
	svc.Etag = etag(svc.Name, svc.Generation, now)
	if rev != nil {
		svc.LatestCreatedRevision = name.String() + "/revisions/" + rev.name
	}
	reconcilingService(svc, now)
	if req.GetValidateOnly() {
		r.mu.Unlock()
		return s.doneOperation(name.location, svc, nil), nil
	}
	if rev != nil {
		cur.revisions[rev.name] = rev.tmpl
	}
	cur.pb = svc
	r.mu.Unlock()
	return r.reconcile(ctx, cur, svc.Generation, rev)
}

// DeleteService deletes a service: it is gone at once, its URL stops
// answering, and the operation finishes once its instances have shut
// down (SIGTERM, then SIGKILL after the grace period), with the deleted
// service as its response.
func (r *servicesRoom) DeleteService(_ context.Context, req *runpb.DeleteServiceRequest) (*longrunningpb.Operation, error) {
	s := r.s
	name, err := parseServiceName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	sv, err := r.services.lookupLocked(name, req.GetEtag())
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	deleted := clone(sv.pb)
	now := s.now()
	deleted.DeleteTime, deleted.ExpireTime = ts(now), ts(now)
	if req.GetValidateOnly() {
		r.mu.Unlock()
		return s.doneOperation(name.location, deleted, nil), nil
	}
	delete(r.services.byName, name.String())
	sv.deleted = true
	sv.proxy.close()
	var insts []*serviceInstance
	for in := range r.live {
		if in.service == sv {
			insts = append(insts, in)
		}
	}
	r.mu.Unlock()
	return r.deleteOperation(name.location, deleted, func() {
		for _, in := range insts {
			in.shutdown()
		}
	})
}

// serviceLogURI is the Logs URL Cloud Run gives in a revision's
// failure message.
func serviceLogURI(n serviceName, rev string) string {
	filter := fmt.Sprintf("resource.type=\"cloud_run_revision\"\nresource.labels.service_name=\"%s\"\nresource.labels.revision_name=\"%s\"", n.service, rev)
	return fmt.Sprintf("https://console.cloud.google.com/logs/viewer?project=%s&resource=cloud_run_revision/service_name/%s/revision_name/%s&advancedFilter=%s",
		n.project, n.service, rev, url.QueryEscape(filter))
}

func (sv *service) state() *runpb.Service { return sv.pb }
func (sv *service) isDeleted() bool       { return sv.deleted }
