package gcptest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// store holds every resource the emulator serves, keyed by full resource
// name, under one lock. Handlers hand out clones; only code holding mu
// reads or writes the stored messages.
type store struct {
	mu         sync.Mutex
	jobs       map[string]*runpb.Job
	executions map[string]*runpb.Execution
	tasks      map[string]*runpb.Task
	// runs holds the control of each execution that is still running,
	// by execution name.
	runs map[string]*executionRun
}

func newStore() *store {
	return &store{
		jobs:       map[string]*runpb.Job{},
		executions: map[string]*runpb.Execution{},
		tasks:      map[string]*runpb.Task{},
		runs:       map[string]*executionRun{},
	}
}

// removeExecutionLocked forgets an execution and its tasks. The caller
// holds mu.
func (st *store) removeExecutionLocked(name string) {
	delete(st.executions, name)
	for tn := range st.tasks {
		if strings.HasPrefix(tn, name+"/tasks/") {
			delete(st.tasks, tn)
		}
	}
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

// defaultPageSize is used when a List request has no page_size;
// maxPageSize caps larger ones.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// listKey is what a Cloud Run List request's page token is bound to:
// every parameter but the page size and token. show_deleted lists nothing
// more here, as a deleted resource is forgotten at once (it expires as it
// is deleted), but a token is still only good for the value it was
// issued with.
func listKey(parent string, showDeleted bool) string {
	return parent + "|show_deleted=" + strconv.FormatBool(showDeleted)
}

// pageBounds turns page_size and page_token into a slice of n sorted
// items, and returns the next page's token ("" on the last page). The
// token carries the offset and the key of the parameters it was issued
// for, so a token given with other parameters is an INVALID_ARGUMENT, as
// "all other parameters must match".
func pageBounds(n int, pageSize int32, token, key string) (lo, hi int, next string, err error) {
	if pageSize < 0 {
		return 0, 0, "", status.Errorf(codes.InvalidArgument, "page_size %d is negative", pageSize)
	}
	size := int(pageSize)
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	if token != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(token)
		off, p, ok := strings.Cut(string(raw), ":")
		o, aerr := strconv.Atoi(off)
		if derr != nil || !ok || aerr != nil || o < 0 || p != key {
			return 0, 0, "", status.Errorf(codes.InvalidArgument, "page_token %q was not issued by this list for the same parameters (%s)", token, key)
		}
		lo = min(o, n)
	}
	hi = min(lo+size, n)
	if hi < n {
		next = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%s", hi, key))
	}
	return lo, hi, next, nil
}
