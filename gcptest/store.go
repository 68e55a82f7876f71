package gcptest

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
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
	// unrecorded counts, per job uid, the executions RunJob started that
	// the job has not recorded yet (RuleExecutionReconcile).
	unrecorded map[string]int
}

func newStore() *store {
	return &store{
		jobs:       map[string]*runpb.Job{},
		executions: map[string]*runpb.Execution{},
		tasks:      map[string]*runpb.Task{},
		runs:       map[string]*executionRun{},
		unrecorded: map[string]int{},
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

// reconcilingLocked reports whether the system still acts on a job: a
// change of its desired state not yet reconciled, or an execution it has
// not recorded. The caller holds mu.
func (st *store) reconcilingLocked(j *runpb.Job) bool {
	return j.ObservedGeneration != j.Generation || st.unrecorded[j.Uid] > 0
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

// listPage returns one page of a Cloud Run list and the next page's token.
// By default items come in defaultOrder, paged by offset
// (pageBounds). With unordered lists, each new listing draws a seed and
// orders the items by a hash of their names keyed with it; its page tokens
// carry the seed and the last name returned, so the pages of one listing
// hold every item that exists throughout it exactly once, in an order
// that differs from one listing to the next.
func listPage[T any](s *Server, items []T, name func(T) string, defaultOrder func(a, b T) int, pageSize int32, token, key string) ([]T, string, error) {
	if !s.cfg.strict.unorderedLists {
		slices.SortFunc(items, defaultOrder)
		lo, hi, next, err := pageBounds(len(items), pageSize, token, key)
		if err != nil {
			return nil, "", err
		}
		return items[lo:hi], next, nil
	}
	if pageSize < 0 {
		return nil, "", status.Errorf(codes.InvalidArgument, "page_size %d is negative", pageSize)
	}
	size := int(pageSize)
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	seed, after := s.random(), ""
	if token != "" {
		var ok bool
		if seed, after, ok = decodeShuffleToken(token, key); !ok {
			return nil, "", status.Errorf(codes.InvalidArgument, "page_token %q was not issued by this list for the same parameters (%s)", token, key)
		}
	}
	type keyed struct {
		h    uint64
		name string
		item T
	}
	shuffled := make([]keyed, 0, len(items))
	for _, it := range items {
		n := name(it)
		shuffled = append(shuffled, keyed{shuffleKey(seed, n), n, it})
	}
	less := func(a, b keyed) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(shuffled, less)
	lo := 0
	if after != "" {
		last := keyed{h: shuffleKey(seed, after), name: after}
		var found bool
		if lo, found = slices.BinarySearchFunc(shuffled, last, less); found {
			lo++
		}
	}
	hi := min(lo+size, len(shuffled))
	page := make([]T, 0, hi-lo)
	for _, k := range shuffled[lo:hi] {
		page = append(page, k.item)
	}
	next := ""
	if hi < len(shuffled) {
		next = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "u%x:%s\x00%s", seed, shuffled[hi-1].name, key))
	}
	return page, next, nil
}

// shuffleKey is a name's place in the order a seed gives.
func shuffleKey(seed uint64, name string) uint64 {
	h := fnv.New64a()
	binary.Write(h, binary.BigEndian, seed)
	h.Write([]byte(name))
	return h.Sum64()
}

// decodeShuffleToken reads a token listPage issued for key.
func decodeShuffleToken(token, key string) (seed uint64, after string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, "", false
	}
	body, k, found := strings.Cut(string(raw), "\x00")
	hex, last, sep := strings.Cut(strings.TrimPrefix(body, "u"), ":")
	if !found || k != key || !strings.HasPrefix(body, "u") || !sep || last == "" {
		return 0, "", false
	}
	seed, err = strconv.ParseUint(hex, 16, 64)
	return seed, last, err == nil
}
