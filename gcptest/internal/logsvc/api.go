package logsvc

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry/gcptest/internal/logfilter"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits from ListLogEntriesRequest.page_size: "Default is 50. If the
// value is negative or exceeds 1000, the request is rejected."
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// WriteLogEntries implements entries.write. From WriteLogEntriesRequest:
// log_name, resource and labels are defaults for entries that lack them
// (an entry's own label wins over a default with the same key); entries is
// required; an invalid entry fails the request with INVALID_ARGUMENT and
// WriteLogEntriesPartialErrors details keyed by entry index, and no entry
// is written unless partial_success is set, in which case the valid ones
// are; dry_run validates without storing.
func (s *Service) WriteLogEntries(ctx context.Context, req *loggingpb.WriteLogEntriesRequest) (*loggingpb.WriteLogEntriesResponse, error) {
	if len(req.GetEntries()) == 0 {
		return nil, invalid("entries: at least one log entry is required")
	}
	if req.GetLogName() != "" {
		if _, _, err := s.parseLogName(req.GetLogName()); err != nil {
			return nil, invalid("log_name: %v", err)
		}
	}
	now := timestamppb.New(s.now())
	recs := make([]*record, 0, len(req.GetEntries()))
	failed := map[int32]*rpcstatus.Status{}
	var first string
	for i, e := range req.GetEntries() {
		if e.GetLogName() == "" {
			e.LogName = req.GetLogName()
		}
		if e.GetResource() == nil {
			e.Resource = req.GetResource()
		}
		if len(req.GetLabels()) > 0 {
			if e.Labels == nil {
				e.Labels = make(map[string]string, len(req.GetLabels()))
			}
			for k, v := range req.GetLabels() {
				if _, ok := e.Labels[k]; !ok {
					e.Labels[k] = v
				}
			}
		}
		r, err := s.prepare(e, now)
		if err != nil {
			msg := "entries[" + itoa(i) + "]: " + err.Error()
			if first == "" {
				first = msg
			}
			failed[int32(i)] = &rpcstatus.Status{Code: int32(code.Code_INVALID_ARGUMENT), Message: msg}
			continue
		}
		recs = append(recs, r)
	}
	if !req.GetDryRun() && (len(failed) == 0 || req.GetPartialSuccess()) {
		s.store(recs)
	}
	if len(failed) > 0 {
		st, err := status.New(codes.InvalidArgument, first).WithDetails(&loggingpb.WriteLogEntriesPartialErrors{LogEntryErrors: failed})
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, first)
		}
		return nil, st.Err()
	}
	return &loggingpb.WriteLogEntriesResponse{}, nil
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// query is a validated ListLogEntries or TailLogEntries selection.
type query struct {
	parents map[string]bool
	filter  *logfilter.Filter
}

func (s *Service) newQuery(resourceNames []string, filter string) (*query, error) {
	if len(resourceNames) == 0 {
		return nil, invalid("resource_names: at least one resource name is required")
	}
	q := &query{parents: make(map[string]bool, len(resourceNames))}
	for _, n := range resourceNames {
		p, err := s.parseResourceName(n)
		if err != nil {
			return nil, invalid("resource_names: %v", err)
		}
		q.parents[p] = true
	}
	f, err := logfilter.Parse(filter)
	if err != nil {
		return nil, invalid("filter: %v", err)
	}
	q.filter = f
	return q, nil
}

func (q *query) match(r *record) bool {
	return !r.dead && q.parents[r.parent] && q.filter.Match(r.entry)
}

// ListLogEntries implements entries.list. resource_names is required;
// order_by is "timestamp asc" (default) or "timestamp desc", entries with
// equal timestamps in insertId order; page_size defaults to 50 and must be
// 0..1000. Page tokens are opaque positions in that order, bound to the
// request's resource names, filter and order, so entries written while a
// client pages through do not shift or repeat entries: new entries later
// in the order appear on later pages.
func (s *Service) ListLogEntries(ctx context.Context, req *loggingpb.ListLogEntriesRequest) (*loggingpb.ListLogEntriesResponse, error) {
	q, err := s.newQuery(req.GetResourceNames(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	var desc bool
	switch strings.ToLower(strings.Join(strings.Fields(req.GetOrderBy()), " ")) {
	case "", "timestamp asc":
	case "timestamp desc":
		desc = true
	default:
		return nil, invalid("order_by: %q is not supported; use \"timestamp asc\" or \"timestamp desc\"", req.GetOrderBy())
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > maxPageSize:
		return nil, invalid("page_size: %d is out of range; it must be between 0 and %d", size, maxPageSize)
	case size == 0:
		size = defaultPageSize
	}
	fp := fingerprint(req.GetResourceNames(), req.GetFilter(), desc)
	var start *cursor
	if tok := req.GetPageToken(); tok != "" {
		c, err := decodeToken(tok, fp)
		if err != nil {
			return nil, invalid("page_token: %v", err)
		}
		start = &c
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.candidates(q)
	from, to := q.filter.TimeRange()
	var i int
	switch {
	case desc && start != nil:
		i = list.before(*start)
	case desc && !to.IsZero():
		i = list.before(cursor{sec: to.Unix(), nsec: int32(to.Nanosecond()) + 1})
	case desc:
		i = len(list) - 1
	case start != nil:
		i = list.after(*start)
	case !from.IsZero():
		i = list.after(cursor{sec: from.Unix(), nsec: int32(from.Nanosecond()) - 1, seq: ^uint64(0)})
	}
	step := 1
	if desc {
		step = -1
	}
	resp := &loggingpb.ListLogEntriesResponse{}
	var last *record
	for budget := s.scan; i >= 0 && i < len(list); i += step {
		r := list[i]
		if budget--; budget < 0 {
			break
		}
		if desc && !from.IsZero() && timeOf(r).Before(from) || !desc && !to.IsZero() && timeOf(r).After(to) {
			i = -1
			break
		}
		last = r
		if q.match(r) {
			resp.Entries = append(resp.Entries, r.entry)
			if len(resp.Entries) == size {
				i += step
				break
			}
		}
	}
	if i >= 0 && i < len(list) && last != nil {
		resp.NextPageToken = encodeToken(last.key(), fp)
	}
	return resp, nil
}

// candidates returns the shortest posting list that holds every entry the
// query can match.
func (s *Service) candidates(q *query) postings {
	best := s.all
	consider := func(k indexKey) {
		if p := s.index[k]; p != nil {
			if len(*p) < len(best) {
				best = *p
			}
		} else {
			best = nil
		}
	}
	if len(q.parents) == 1 {
		for p := range q.parents {
			consider(indexKey{field: "parent", value: p})
		}
	}
	for _, c := range q.filter.Constraints() {
		if k, ok := constraintKey(c); ok {
			consider(k)
		}
	}
	return best
}

const tokenVersion = 1

func fingerprint(names []string, filter string, desc bool) uint64 {
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	h.Write([]byte(filter))
	if desc {
		h.Write([]byte{1})
	}
	return h.Sum64()
}

func encodeToken(c cursor, fp uint64) string {
	b := []byte{tokenVersion}
	b = binary.BigEndian.AppendUint64(b, fp)
	b = binary.AppendVarint(b, c.sec)
	b = binary.AppendVarint(b, int64(c.nsec))
	b = binary.AppendUvarint(b, c.seq)
	b = append(b, c.insertID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = errors.New("invalid page token")

func decodeToken(tok string, fp uint64) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 9 || b[0] != tokenVersion {
		return cursor{}, errBadToken
	}
	if binary.BigEndian.Uint64(b[1:9]) != fp {
		return cursor{}, errors.New("page token was issued for a different resource_names, filter or order_by")
	}
	b = b[9:]
	var c cursor
	var n int
	if c.sec, n = binary.Varint(b); n <= 0 {
		return cursor{}, errBadToken
	}
	b = b[n:]
	nsec, n := binary.Varint(b)
	if n <= 0 {
		return cursor{}, errBadToken
	}
	c.nsec = int32(nsec)
	b = b[n:]
	if c.seq, n = binary.Uvarint(b); n <= 0 {
		return cursor{}, errBadToken
	}
	c.insertID = string(b[n:])
	return c, nil
}

// ListLogs implements logs.list: the names (as stored, URL-encoded) of the
// logs that have entries, sorted, in pages of page_size (default and
// maximum 1000 here; negative is rejected). resource_names, or parent when
// it is empty, selects the parents.
func (s *Service) ListLogs(ctx context.Context, req *loggingpb.ListLogsRequest) (*loggingpb.ListLogsResponse, error) {
	names := req.GetResourceNames()
	if len(names) == 0 {
		if req.GetParent() == "" {
			return nil, invalid("parent: a parent resource name is required")
		}
		names = []string{req.GetParent()}
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalid("page_size: %d must not be negative", size)
	case size == 0 || size > maxPageSize:
		size = maxPageSize
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, invalid("page_token: %v", errBadToken)
		}
		after = string(b)
	}
	var all []string
	s.mu.RLock()
	for _, n := range names {
		p, err := s.parseResourceName(n)
		if err != nil {
			s.mu.RUnlock()
			return nil, invalid("resource_names: %v", err)
		}
		for name := range s.logs[p] {
			if name > after {
				all = append(all, name)
			}
		}
	}
	s.mu.RUnlock()
	sort.Strings(all)
	all = dedupe(all)
	resp := &loggingpb.ListLogsResponse{}
	if len(all) > size {
		all = all[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(all[size-1]))
	}
	resp.LogNames = all
	return resp, nil
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// DeleteLog implements logs.delete: every entry of the log is deleted
// (the log reappears when it receives new entries). A log without entries
// is NOT_FOUND.
func (s *Service) DeleteLog(ctx context.Context, req *loggingpb.DeleteLogRequest) (*emptypb.Empty, error) {
	name, _, err := s.parseLogName(req.GetLogName())
	if err != nil {
		return nil, invalid("log_name: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.index[indexKey{field: "logName", value: logfilter.LogNameKey(name)}]
	n := 0
	if p != nil {
		for _, r := range *p {
			if !r.dead && r.entry.GetLogName() == name {
				s.killLocked(r)
				n++
			}
		}
	}
	if n == 0 {
		return nil, status.Errorf(codes.NotFound, "log %q not found", name)
	}
	s.maybeCompactLocked()
	return &emptypb.Empty{}, nil
}

// timeOf returns a record's timestamp.
func timeOf(r *record) time.Time { return time.Unix(r.sec, int64(r.nsec)) }
