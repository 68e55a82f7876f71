// Package logsvc is the gcptest emulator's Cloud Logging v2 service: an
// in-memory, indexed store of log entries behind the real
// google.logging.v2.LoggingServiceV2 gRPC API (WriteLogEntries,
// ListLogEntries, TailLogEntries, ListLogs, DeleteLog), so that the
// official clients (logging/apiv2, logging, logadmin) work against it
// unchanged. The Cloud Run emulator writes container output with Ingest,
// as Cloud Run itself writes to Cloud Logging without going through the
// public API.
//
//	svc := logsvc.New(logsvc.WithMaxEntries(1_000_000))
//	svc.Register(grpcServer)
//	defer svc.Close()
//	svc.Ingest(entry) // entry.LogName and entry.Resource set
//
// The behaviour follows the API reference (entries.write, entries.list,
// entries.tail, logs.list, logs.delete and LogEntry); each rule is noted
// where it is applied. Filters are parsed by package logfilter.
package logsvc

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry/gcptest/internal/logfilter"
	"github.com/gantryhq/gantry/gcptest/internal/quota"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service implements loggingpb.LoggingServiceV2Server in memory. It is
// safe for concurrent use.
type Service struct {
	loggingpb.UnimplementedLoggingServiceV2Server

	max      int
	now      func() time.Time
	idPrefix string
	scan     int
	logKeys  sync.Map // log name -> logfilter.LogNameKey
	nLogKeys atomic.Int64

	mu     sync.RWMutex
	seq    uint64
	all    postings
	index  map[indexKey]*postings
	fifo   []*record
	head   int
	live   int
	dead   int
	logs   map[string]map[string]int // parent -> log name -> live entries
	subs   map[*subscriber]struct{}
	closed bool

	// projectIDs maps project numbers to IDs, projectNumbers IDs to
	// numbers (WithProjectNumbers). Read-only after New.
	projectIDs     map[string]string
	projectNumbers map[string]string

	delay *ingestDelay // nil: entries are visible at once

	limiter      *quota.Limiter // counts tailed entries; nil counts nothing
	tailRate     int            // entries a minute per project; 0 is no limit
	sessionLimit int            // open tail sessions per project; 0 is no limit
	sessions     map[string]int // guarded by mu: open tail sessions per parent
	tail         TailStats      // guarded by mu
}

// Option configures a Service.
type Option func(*Service)

// WithMaxEntries bounds the store to n entries: when more are written, the
// oldest written are dropped. n <= 0 means no bound (the default).
func WithMaxEntries(n int) Option { return func(s *Service) { s.max = n } }

// WithClock sets the clock used for receiveTimestamp, default timestamps
// and the TailLogEntries buffer window. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithProjectNumbers gives the numbers of projects (number -> ID): a log
// name or resource name may then name a project by number, and the
// Service stores and answers with the ID.
func WithProjectNumbers(ids map[string]string) Option {
	return func(s *Service) {
		for n, id := range ids {
			s.projectIDs[n] = id
			s.projectNumbers[id] = n
		}
	}
}

// WithTailSessionLimit allows at most n TailLogEntries sessions open at
// once per project ("Number of open live-tailing sessions: 10 per Google
// Cloud project"); another one fails with RESOURCE_EXHAUSTED. A session
// counts against every project its resource names read. n <= 0 is no
// limit.
func WithTailSessionLimit(n int) Option { return func(s *Service) { s.sessionLimit = max(n, 0) } }

// WithTailRateLimit makes TailLogEntries return at most n entries a minute
// per project, counted on l ("Number of live-tailing entries returned:
// 60,000 per minute"); a stream reports the entries past it in
// suppression_info with reason RATE_LIMIT instead of sending them. With
// n <= 0, l still counts the entries returned.
func WithTailRateLimit(n int, l *quota.Limiter) Option {
	return func(s *Service) { s.tailRate, s.limiter = max(n, 0), l }
}

// defaultScanBudget is how many stored entries one ListLogEntries call
// examines before it returns what it has with a page token, as the real
// API returns partial (even empty) pages on long searches. It keeps every
// call short whatever the filter.
const defaultScanBudget = 200_000

// New returns an empty Service.
func New(opts ...Option) *Service {
	s := &Service{
		now:            time.Now,
		scan:           defaultScanBudget,
		index:          make(map[indexKey]*postings),
		logs:           make(map[string]map[string]int),
		subs:           make(map[*subscriber]struct{}),
		projectIDs:     make(map[string]string),
		projectNumbers: make(map[string]string),
		sessions:       make(map[string]int),
	}
	for _, o := range opts {
		o(s)
	}
	// Assigned insert IDs are unique per Service and, being fixed width
	// within a run, sort in the order entries were received.
	s.idPrefix = strconv.FormatInt(s.now().UnixNano(), 36) + "-"
	return s
}

// Register registers the service on a gRPC server.
func (s *Service) Register(g *grpc.Server) { loggingpb.RegisterLoggingServiceV2Server(g, s) }

// Close ends every TailLogEntries stream and drops the entries still
// being ingested. Further writes are still accepted (the gRPC server's
// own shutdown ends the API).
func (s *Service) Close() {
	if s.delay != nil {
		s.delay.close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for sub := range s.subs {
		sub.close()
		delete(s.subs, sub)
	}
}

// Len returns the number of stored entries.
func (s *Service) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live
}

// ErrInvalidEntry is wrapped by Ingest's error for an entry without a
// valid log name or monitored resource.
var ErrInvalidEntry = errors.New("invalid log entry")

// Ingest stores entries as Cloud Logging receives them from a Google
// service: each needs LogName (projects/P/logs/URL-encoded-ID) and
// Resource; Timestamp defaults to now, ReceiveTimestamp is set to now, and
// InsertId is assigned when empty. The Service takes ownership of the
// entries: the caller must not modify them afterwards. Either all entries
// are stored or, if one is invalid, none is.
func (s *Service) Ingest(entries ...*loggingpb.LogEntry) error {
	recs := make([]*record, len(entries))
	now := timestamppb.New(s.now())
	for i, e := range entries {
		r, err := s.prepare(e, now)
		if err != nil {
			return fmt.Errorf("logsvc: entry %d: %w: %v", i, ErrInvalidEntry, err)
		}
		recs[i] = r
	}
	s.store(recs)
	return nil
}

// prepare validates an entry whose defaults are applied, fills in the
// server-set fields, and makes its record. The log name is rewritten
// without a leading '/'.
func (s *Service) prepare(e *loggingpb.LogEntry, now *timestamppb.Timestamp) (*record, error) {
	if e == nil {
		return nil, errors.New("nil entry")
	}
	name, parent, err := s.parseLogName(e.GetLogName())
	if err != nil {
		return nil, err
	}
	if e.GetResource() == nil || e.GetResource().GetType() == "" {
		return nil, errors.New("resource is required: set it on the entry or as the request's default resource")
	}
	e.LogName = name
	if e.Timestamp == nil {
		e.Timestamp = now
	} else if err := e.Timestamp.CheckValid(); err != nil {
		return nil, fmt.Errorf("invalid timestamp: %v", err)
	}
	e.ReceiveTimestamp = now
	return &record{
		sec:      e.Timestamp.GetSeconds(),
		nsec:     e.Timestamp.GetNanos(),
		insertID: e.GetInsertId(),
		parent:   parent,
		logKey:   s.logNameKey(name),
		entry:    e,
	}, nil
}

// logNameKey is logfilter.LogNameKey with a cache: a store sees few
// distinct log names, and unescaping one per entry was a large part of
// ingest. The cache stops growing at maxCachedLogKeys names.
func (s *Service) logNameKey(name string) string {
	if k, ok := s.logKeys.Load(name); ok {
		return k.(string)
	}
	k := logfilter.LogNameKey(name)
	if s.nLogKeys.Add(1) <= maxCachedLogKeys {
		s.logKeys.Store(name, k)
	}
	return k
}

const maxCachedLogKeys = 4096

// store makes records visible, after the ingestion delay if there is one.
func (s *Service) store(recs []*record) {
	if len(recs) == 0 {
		return
	}
	if s.delay != nil {
		s.delay.add(recs)
		return
	}
	s.publish(recs)
}

// publish makes records visible to List and Tail now.
func (s *Service) publish(recs []*record) {
	s.mu.Lock()
	s.insertLocked(recs)
	for sub := range s.subs {
		sub.offer(recs)
	}
	s.mu.Unlock()
}
