package gcptest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AllMethods, given to InjectFault as the method, applies a fault to every
// method that has no fault of its own.
const AllMethods = "*"

// Fault describes how calls to a method misbehave. Latency delays every
// call. Code (when not codes.OK) fails calls: every call when none of
// EveryNth, NextK and Rate is set, else the calls they select (a call
// fails when any of them selects it). A failed call is still counted by
// Calls and is not passed to the service, so it changes nothing.
type Fault struct {
	// Code is the status code of an injected failure.
	Code codes.Code
	// Message is the failure's message; empty means a generic one naming
	// the method.
	Message string
	// EveryNth fails the Nth, 2Nth, ... call after the fault is injected.
	EveryNth int
	// NextK fails the next K calls after the fault is injected.
	NextK int
	// Rate fails each call with this probability (0 to 1).
	Rate float64
	// Latency is added before every call is handled (or fails). A call
	// whose context ends first returns DEADLINE_EXCEEDED or CANCELLED.
	Latency time.Duration
}

type faultState struct {
	f     Fault
	calls int
}

type faultTable struct {
	mu     sync.Mutex
	faults map[string]*faultState
	calls  map[string]int
	// exhausted counts RESOURCE_EXHAUSTED answers per method, whatever
	// their cause: a quota, the tail session limit or an injected fault.
	exhausted map[string]int
}

func newFaultTable() *faultTable {
	return &faultTable{faults: map[string]*faultState{}, calls: map[string]int{}, exhausted: map[string]int{}}
}

// InjectFault makes calls to method misbehave as f says, replacing any
// fault already set for it. method is the full gRPC method name, such as
// "/google.cloud.run.v2.Jobs/RunJob",
// "/google.longrunning.Operations/GetOperation" or
// "/google.logging.v2.LoggingServiceV2/ListLogEntries", or AllMethods.
func (s *Server) InjectFault(method string, f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults[method] = &faultState{f: f}
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	clear(s.faults.faults)
}

// Calls returns how many calls method (a full gRPC method name) has
// received since the Server started or ResetCalls, failed ones included.
func (s *Server) Calls(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.calls[method]
}

// CallCounts returns the number of calls of every method called so far.
func (s *Server) CallCounts() map[string]int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	m := make(map[string]int, len(s.faults.calls))
	for k, v := range s.faults.calls {
		m[k] = v
	}
	return m
}

// ResetCalls sets every call count, and every count of RESOURCE_EXHAUSTED
// answers, to zero.
func (s *Server) ResetCalls() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	clear(s.faults.calls)
	clear(s.faults.exhausted)
}

// countAnswer counts a RESOURCE_EXHAUSTED answer to method.
func (t *faultTable) countAnswer(method string, err error) {
	if status.Code(err) != codes.ResourceExhausted {
		return
	}
	t.mu.Lock()
	t.exhausted[method]++
	t.mu.Unlock()
}

func (t *faultTable) countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	t.countAnswer(info.FullMethod, err)
	return resp, err
}

func (t *faultTable) countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	t.countAnswer(info.FullMethod, err)
	return err
}

// admit counts a call and applies its fault, if any: it sleeps for the
// latency, then returns the injected error or nil.
func (t *faultTable) admit(ctx context.Context, method string) error {
	t.mu.Lock()
	t.calls[method]++
	st := t.faults[method]
	if st == nil {
		st = t.faults[AllMethods]
	}
	var (
		latency time.Duration
		fail    error
	)
	if st != nil {
		st.calls++
		f := st.f
		latency = f.Latency
		if f.Code != codes.OK && st.selects(st.calls) {
			msg := f.Message
			if msg == "" {
				msg = "gcptest: injected fault on " + method
			}
			fail = status.Error(f.Code, msg)
		}
	}
	t.mu.Unlock()
	if latency > 0 {
		timer := time.NewTimer(latency)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return fail
}

// selects reports whether call number n (from 1) of the fault fails. It
// is called with the table locked.
func (st *faultState) selects(n int) bool {
	f := st.f
	if f.EveryNth <= 0 && f.NextK <= 0 && f.Rate <= 0 {
		return true
	}
	if f.EveryNth > 0 && n%f.EveryNth == 0 {
		return true
	}
	if f.NextK > 0 && n <= f.NextK {
		return true
	}
	return f.Rate > 0 && rand.Float64() < f.Rate
}

func (t *faultTable) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := t.admit(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (t *faultTable) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := t.admit(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
