package gcptest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// maxWait bounds one WaitOperation call when the request gives no timeout
// (or a longer one): the call then returns the operation as it is, and the
// client waits again.
const maxWait = time.Minute

// operation is one long-running operation. Until it is done, metadata is
// recomputed on every read by refresh (when set), so a client polling a
// RunJob operation sees the execution as it is now.
type operation struct {
	op      *longrunningpb.Operation
	refresh func() proto.Message
	created time.Time
	done    chan struct{}
}

// operations is the one operation manager of the Server, and its
// google.longrunning.Operations service.
type operations struct {
	longrunningpb.UnimplementedOperationsServer
	s   *Server
	mu  sync.Mutex
	ops map[string]*operation
}

func newOperations(s *Server) *operations {
	return &operations{s: s, ops: map[string]*operation{}}
}

// start records a new operation under loc, with metadata from refresh,
// and returns its name.
func (m *operations) start(loc location, refresh func() proto.Message) string {
	name := loc.String() + "/operations/" + newUID()
	o := &operation{
		op:      &longrunningpb.Operation{Name: name},
		refresh: refresh,
		created: m.s.now(),
		done:    make(chan struct{}),
	}
	m.mu.Lock()
	m.ops[name] = o
	m.mu.Unlock()
	return name
}

// finish completes the operation with resp, or with err when err is not
// nil. The final metadata is taken from refresh one last time.
func (m *operations) finish(name string, resp proto.Message, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.ops[name]
	if o == nil || o.op.Done {
		return
	}
	m.refreshLocked(o)
	o.op.Done = true
	if err != nil {
		o.op.Result = &longrunningpb.Operation_Error{Error: status.Convert(err).Proto()}
	} else if resp != nil {
		a, aerr := anypb.New(resp)
		if aerr != nil {
			o.op.Result = &longrunningpb.Operation_Error{Error: status.Convert(aerr).Proto()}
		} else {
			o.op.Result = &longrunningpb.Operation_Response{Response: a}
		}
	}
	o.refresh = nil
	close(o.done)
}

func (m *operations) refreshLocked(o *operation) {
	if o.refresh == nil {
		return
	}
	if md := o.refresh(); md != nil {
		if a, err := anypb.New(md); err == nil {
			o.op.Metadata = a
		}
	}
}

// snapshot returns a copy of the operation as a client sees it now.
func (m *operations) snapshot(name string) (*longrunningpb.Operation, <-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.ops[name]
	if o == nil {
		return nil, nil, status.Errorf(codes.NotFound, "operation %q not found", name)
	}
	if !o.op.Done {
		m.refreshLocked(o)
	}
	return clone(o.op), o.done, nil
}

// wait blocks until the operation is done or ctx ends, and returns it.
func (m *operations) wait(ctx context.Context, name string) (*longrunningpb.Operation, error) {
	op, done, err := m.snapshot(name)
	if err != nil || op.Done {
		return op, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-m.s.ctx.Done():
		return nil, status.Error(codes.Unavailable, "gcptest: the server is closing")
	}
	op, _, err = m.snapshot(name)
	return op, err
}

func validOperationName(name string) error {
	v, ok := parseName(name, "projects", "locations", "operations")
	if !ok || slices.Contains(v, wildcard) {
		return status.Errorf(codes.InvalidArgument, "name %q is not an operation name: want projects/{project}/locations/{location}/operations/{operation}", name)
	}
	return nil
}

// GetOperation returns the operation's latest state.
func (m *operations) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	if err := validOperationName(req.GetName()); err != nil {
		return nil, err
	}
	op, _, err := m.snapshot(req.GetName())
	return op, err
}

// WaitOperation returns when the operation is done or the request's
// timeout (at most maxWait) passes, whichever is first.
func (m *operations) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	if err := validOperationName(req.GetName()); err != nil {
		return nil, err
	}
	d := maxWait
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "timeout %v is not a valid duration", t)
		}
		d = min(d, t.AsDuration())
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	op, err := m.wait(wctx, req.GetName())
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		op, _, err = m.snapshot(req.GetName())
	}
	return op, err
}

// ListOperations lists the operations of a location, oldest first. The
// filter accepts "done=true", "done=false" or nothing.
func (m *operations) ListOperations(_ context.Context, req *longrunningpb.ListOperationsRequest) (*longrunningpb.ListOperationsResponse, error) {
	loc, err := parseLocation("name", req.GetName())
	if err != nil {
		return nil, err
	}
	var wantDone *bool
	switch f := strings.ReplaceAll(req.GetFilter(), " ", ""); f {
	case "":
	case "done=true", "done=false":
		v := f == "done=true"
		wantDone = &v
	default:
		return nil, status.Errorf(codes.InvalidArgument, "filter %q is not supported: use done=true or done=false", req.GetFilter())
	}
	prefix := loc.String() + "/operations/"
	m.mu.Lock()
	var list []*operation
	for name, o := range m.ops {
		if strings.HasPrefix(name, prefix) && (wantDone == nil || o.op.Done == *wantDone) {
			list = append(list, o)
		}
	}
	slices.SortFunc(list, func(a, b *operation) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.op.Name, b.op.Name)
	})
	lo, hi, next, err := pageBounds(len(list), req.GetPageSize(), req.GetPageToken(), req.GetName()+"|"+req.GetFilter())
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	resp := &longrunningpb.ListOperationsResponse{NextPageToken: next}
	for _, o := range list[lo:hi] {
		if !o.op.Done {
			m.refreshLocked(o)
		}
		resp.Operations = append(resp.Operations, clone(o.op))
	}
	m.mu.Unlock()
	return resp, nil
}

// DeleteOperation forgets the operation; the work it tracks goes on.
func (m *operations) DeleteOperation(_ context.Context, req *longrunningpb.DeleteOperationRequest) (*emptypb.Empty, error) {
	if err := validOperationName(req.GetName()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ops[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "operation %q not found", req.GetName())
	}
	delete(m.ops, req.GetName())
	return &emptypb.Empty{}, nil
}
