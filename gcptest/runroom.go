package gcptest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// What the Cloud Run rooms whose resources run containers behind a URL
// of their own (services, instances) share: the room's lock and its
// closing, the goroutines close waits for, the transports from the URLs
// to the containers, and the plumbing of their requests over the
// Server's operations (the reconcile delay, instant operations,
// validate_only, etag, allow_missing and update_mask). Each room keeps
// what its resource is and how it runs.

// runRoom is the part of a services or instances room that does not
// depend on what it serves. Its fields are promoted into the room.
type runRoom struct {
	s *Server

	mu     sync.Mutex
	closed bool
	// quit closes when the room closes; wg counts its goroutines.
	quit chan struct{}
	wg   sync.WaitGroup
	// transports reach the containers from the URLs.
	transports *proxyTransports
}

func newRunRoom(s *Server) runRoom {
	return runRoom{s: s, quit: make(chan struct{}), transports: newProxyTransports()}
}

var errServerClosing = status.Error(codes.Unavailable, "gcptest: the server is closing")

// closeRoom closes the room once: closeLocked, called with r.mu held,
// closes the URLs and returns what shuts down what runs; those run
// after the lock is released, then closeRoom waits for the room's
// goroutines.
func (r *runRoom) closeRoom(closeLocked func() []func()) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.quit)
	shutdowns := closeLocked()
	r.mu.Unlock()
	for _, shutdown := range shutdowns {
		shutdown()
	}
	r.wg.Wait()
	r.transports.close()
}

// goLocked runs f on a goroutine close waits for; false when the room
// has closed. The caller holds r.mu.
func (r *runRoom) goLocked(f func()) bool {
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// operate starts an operation in loc whose metadata snapshot reads and,
// after the reconcile delay, applies it with apply, which finishes it.
// With instant operations the call returns once the operation is done.
func (r *runRoom) operate(ctx context.Context, loc location, snapshot func() proto.Message, apply func(op string)) (*longrunningpb.Operation, error) {
	s := r.s
	op := s.ops.start(loc, snapshot)
	done := make(chan struct{})
	r.mu.Lock()
	started := r.goLocked(func() {
		defer close(done)
		if !s.cfg.instantOps {
			t := time.NewTimer(s.cfg.reconcile)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.quit:
				s.ops.finish(op, nil, errServerClosing)
				return
			}
		}
		apply(op)
	})
	r.mu.Unlock()
	if !started {
		s.ops.finish(op, nil, errServerClosing)
		return s.opSnapshot(op)
	}
	if s.cfg.instantOps {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return s.opSnapshot(op)
}

// deleteOperation starts the operation of a deletion in loc: it finishes with
// deleted as its response once shutdown has stopped what ran (at once
// when the room has closed, which stops everything).
func (r *runRoom) deleteOperation(loc location, deleted proto.Message, shutdown func()) (*longrunningpb.Operation, error) {
	s := r.s
	op := s.ops.start(loc, func() proto.Message { return deleted })
	finish := func() {
		shutdown()
		s.ops.finish(op, deleted, nil)
	}
	if s.cfg.instantOps {
		finish()
		return s.opSnapshot(op)
	}
	r.mu.Lock()
	started := r.goLocked(finish)
	r.mu.Unlock()
	if !started {
		s.ops.finish(op, deleted, nil)
	}
	return s.opSnapshot(op)
}

// desiredUpdate is the desired state an Update asks for: in whole
// without an update mask, else cur with the fields the mask's paths name
// taken from in. in's etag must match cur's.
func desiredUpdate[T resource](cur, in T, paths []string, name string) (T, error) {
	var zero T
	if err := checkEtag(in.GetEtag(), cur.GetEtag(), name); err != nil {
		return zero, err
	}
	if len(paths) == 0 {
		return in, nil
	}
	for _, p := range paths {
		if err := applyMaskPath(cur.ProtoReflect(), in.ProtoReflect(), p); err != nil {
			return zero, err
		}
	}
	return cur, nil
}

// applyMaskPath copies the field a mask path names (a dotted path of
// field names, in the proto's or in JSON's spelling) from src to dst,
// clearing it in dst when src does not set it.
func applyMaskPath(dst, src protoreflect.Message, path string) error {
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		fields := dst.Descriptor().Fields()
		fd := fields.ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = fields.ByJSONName(seg)
		}
		if fd == nil {
			return invalid("update_mask path %q: %s has no field %q", path, dst.Descriptor().FullName(), seg)
		}
		if i == len(segs)-1 {
			if src.Has(fd) {
				dst.Set(fd, src.Get(fd))
			} else {
				dst.Clear(fd)
			}
			return nil
		}
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return invalid("update_mask path %q: %s is not a message field", path, seg)
		}
		if !src.Has(fd) {
			dst.Clear(fd)
			return nil
		}
		dst, src = dst.Mutable(fd).Message(), src.Get(fd).Message()
	}
	return nil
}

// resource is a Cloud Run resource: a full name and an etag.
type resource interface {
	proto.Message
	GetName() string
	GetEtag() string
}

// stored is what a room keeps of one of its resources.
type stored[T resource] interface {
	comparable
	// state is the resource as stored; isDeleted says it was deleted.
	state() T
	isDeleted() bool
}

// resources are a room's resources of one kind ("service",
// "instance": their collection is "services", "instances") by full
// name, guarded by the room's lock.
type resources[V stored[T], T resource] struct {
	kind   string
	byName map[string]V
}

func newResources[V stored[T], T resource](kind string) resources[V, T] {
	return resources[V, T]{kind: kind, byName: map[string]V{}}
}

// errNotFound is the answer for a resource that is not stored.
func (rs resources[V, T]) errNotFound(name fmt.Stringer) error {
	return status.Errorf(codes.NotFound, "%s %s not found", rs.kind, name)
}

// lookupLocked returns the named resource after checking etag (when
// given) against it, or NOT_FOUND or ABORTED. The caller holds the
// room's lock.
func (rs resources[V, T]) lookupLocked(name fmt.Stringer, tag string) (V, error) {
	var zero V
	v, ok := rs.byName[name.String()]
	if !ok {
		return zero, rs.errNotFound(name)
	}
	if err := checkEtag(tag, v.state().GetEtag(), name.String()); err != nil {
		return zero, err
	}
	return v, nil
}

// get returns a copy of the named resource, or NOT_FOUND.
func (rs resources[V, T]) get(r *runRoom, name fmt.Stringer) (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := rs.byName[name.String()]; ok {
		return clone(v.state()), nil
	}
	var zero T
	return zero, rs.errNotFound(name)
}

// snapshot returns a function that reads a copy of the named resource,
// or nil once it is gone: the metadata of its operations.
func (rs resources[V, T]) snapshot(r *runRoom, name string) func() proto.Message {
	return func() proto.Message {
		r.mu.Lock()
		defer r.mu.Unlock()
		if v, ok := rs.byName[name]; ok {
			return clone(v.state())
		}
		return nil
	}
}

// prepareUpdate reads what an Update of the named resource asks for:
// the stored resource cur and its new state pb, in whole or, with an
// update mask, cur's state with the fields the mask's paths name taken
// from in, validated by prepare; in's etag must match cur's. When none
// is stored it returns a zero cur with allowMissing (the Update creates
// it), else NOT_FOUND.
func prepareUpdate[V stored[T], T resource, N fmt.Stringer](r *runRoom, rs resources[V, T], name N, in T, allowMissing bool, paths []string, prepare func(T, N) (T, error)) (cur V, pb T, err error) {
	var zero V
	r.mu.Lock()
	cur, ok := rs.byName[name.String()]
	var desired T
	if ok {
		desired = clone(cur.state())
	}
	r.mu.Unlock()
	if !ok {
		if !allowMissing {
			return zero, pb, rs.errNotFound(name)
		}
		return zero, pb, nil
	}
	if desired, err = desiredUpdate(desired, in, paths, name.String()); err != nil {
		return zero, pb, err
	}
	if pb, err = prepare(desired, name); err != nil {
		return zero, pb, err
	}
	return cur, pb, nil
}

// unchangedLocked checks that cur, read by prepareUpdate, is still the
// named resource and that etag (when given) matches it: ABORTED when
// it changed. The caller holds the room's lock.
func (rs resources[V, T]) unchangedLocked(cur V, name fmt.Stringer, tag string) error {
	if rs.byName[name.String()] != cur || cur.isDeleted() {
		return status.Errorf(codes.Aborted, "%s %s changed while it was updated: read it again and retry", rs.kind, name)
	}
	return checkEtag(tag, cur.state().GetEtag(), name.String())
}

// listRequest is a List request of a location's resources.
type listRequest interface {
	GetParent() string
	GetPageSize() int32
	GetPageToken() string
	GetShowDeleted() bool
}

// list answers a List request: a page of copies of the resources of
// the location req names, in name order or in no particular order with
// unordered lists.
func (rs resources[V, T]) list(r *runRoom, req listRequest) ([]T, string, error) {
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, "", err
	}
	prefix := loc.String() + "/" + rs.kind + "s/"
	r.mu.Lock()
	var items []T
	for n, v := range rs.byName {
		if strings.HasPrefix(n, prefix) {
			items = append(items, clone(v.state()))
		}
	}
	r.mu.Unlock()
	return listPage(r.s, items, func(it T) string { return it.GetName() },
		func(a, b T) int { return strings.Compare(a.GetName(), b.GetName()) },
		req.GetPageSize(), req.GetPageToken(), listKey(req.GetParent(), req.GetShowDeleted()))
}
