// Package quota is the gcptest emulator's rate quotas: it counts API calls
// per quota metric, project and (for regional metrics) location over a
// rolling minute, refuses those past a limit, and builds the
// RESOURCE_EXHAUSTED error Google answers with. Every call is counted, with
// or without a limit, so a test can report how many reads and writes a
// client made per minute.
package quota

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Window is the period a per-minute quota counts over. Google states its
// rate quotas per minute; the emulator counts calls over the last minute at
// every call (a rolling window), so that no burst at a minute's boundary
// gets twice the limit.
const Window = time.Minute

// Metric is one quota metric and its limit's names, as Google's quota
// errors name them.
type Metric struct {
	// Service is the API's service name ("run.googleapis.com").
	Service string
	// Name is the metric's display name ("Read requests").
	Name string
	// ID is the metric's identifier ("run.googleapis.com/read_regional").
	ID string
	// Limit is the limit's display name ("Read requests per minute per
	// region").
	Limit string
	// LimitID is the limit's identifier ("ReadPerMinutePerProjectRegion").
	LimitID string
	// Regional metrics count per project and location, the others per
	// project.
	Regional bool
	// Concurrent metrics count what is open at once (sessions), not
	// calls per minute.
	Concurrent bool
	// Help is the page that documents the quota.
	Help string
}

// unit is how Google's ErrorInfo states a limit's unit and scope.
func (m *Metric) unit() string {
	if m.Concurrent {
		return "1/{project}"
	}
	if m.Regional {
		return "1/min/{project}/{region}"
	}
	return "1/min/{project}"
}

// Exceeded is the error Google answers a call past the limit with:
// RESOURCE_EXHAUSTED, the message Google's quota system writes, and the
// details ErrorInfo (reason RATE_LIMIT_EXCEEDED, with the metric and limit
// in its metadata), QuotaFailure, Help and, when retryAfter is positive,
// RetryInfo. consumer names the project as Google does, by number when the
// number is known.
func (m *Metric) Exceeded(consumer, location string, limit int, retryAfter time.Duration) error {
	msg := fmt.Sprintf("Quota exceeded for quota metric '%s' and limit '%s' of service '%s' for consumer 'project_number:%s'.",
		m.Name, m.Limit, m.Service, consumer)
	quotaLocation := "global"
	var dims map[string]string
	if m.Regional {
		quotaLocation = location
		dims = map[string]string{"region": location}
	}
	details := []protoadapt.MessageV1{
		&errdetails.ErrorInfo{
			Reason: "RATE_LIMIT_EXCEEDED",
			Domain: "googleapis.com",
			Metadata: map[string]string{
				"consumer":          "projects/" + consumer,
				"quota_limit":       m.LimitID,
				"quota_limit_value": fmt.Sprint(limit),
				"quota_location":    quotaLocation,
				"quota_metric":      m.ID,
				"quota_unit":        m.unit(),
				"service":           m.Service,
			},
		},
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject:         "project:" + consumer,
			Description:     msg,
			ApiService:      m.Service,
			QuotaMetric:     m.ID,
			QuotaId:         m.LimitID,
			QuotaDimensions: dims,
			QuotaValue:      int64(limit),
		}}},
		&errdetails.Help{Links: []*errdetails.Help_Link{{Description: "Request a higher quota limit.", Url: m.Help}}},
	}
	if retryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
	}
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(details...)
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}

// Usage is what one metric counted for one project (and location).
type Usage struct {
	Metric   *Metric
	Project  string
	Location string
	// Limit is the limit in force; 0 means none.
	Limit int
	// Used counts admitted units (calls, or entries for a metric that
	// counts entries); Refused counts those refused.
	Used, Refused int
	// PeakPerMinute is the most units admitted within any one Window.
	PeakPerMinute int
}

type key struct {
	metric            *Metric
	project, location string
}

// stamp is n units admitted at t.
type stamp struct {
	t time.Time
	n int
}

type bucket struct {
	limit   int
	recent  []stamp // within the last Window, oldest first
	inWin   int     // units in recent
	used    int
	refused int
	peak    int
}

// Limiter counts units per metric and scope. It is safe for concurrent
// use.
type Limiter struct {
	now     func() time.Time
	mu      sync.Mutex
	buckets map[key]*bucket
}

// New returns a Limiter reading time from now.
func New(now func() time.Time) *Limiter {
	return &Limiter{now: now, buckets: map[key]*bucket{}}
}

// Take admits one unit of m for project and location (ignored for a
// metric that is not regional) when fewer than limit were admitted within
// the last Window; limit <= 0 admits every unit. When it refuses, it
// reports how long until a unit frees up.
func (l *Limiter) Take(m *Metric, limit int, project, location string) (ok bool, retryAfter time.Duration) {
	n, retry := l.TakeUpTo(m, limit, project, location, 1)
	return n == 1, retry
}

// TakeUpTo admits as many of n units as the limit allows and returns that
// number; when it admits fewer than n, it reports how long until a unit
// frees up.
func (l *Limiter) TakeUpTo(m *Metric, limit int, project, location string, n int) (admitted int, retryAfter time.Duration) {
	if !m.Regional {
		location = ""
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key{m, project, location}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{}
		l.buckets[k] = b
	}
	b.limit = limit
	drop := 0
	for drop < len(b.recent) && !b.recent[drop].t.Add(Window).After(now) {
		b.inWin -= b.recent[drop].n
		drop++
	}
	b.recent = slices.Delete(b.recent, 0, drop)
	admitted = n
	if limit > 0 {
		admitted = max(0, min(n, limit-b.inWin))
	}
	if admitted > 0 {
		b.recent = append(b.recent, stamp{now, admitted})
		b.inWin += admitted
		b.used += admitted
		b.peak = max(b.peak, b.inWin)
	}
	if admitted < n {
		b.refused += n - admitted
		retryAfter = Window
		if len(b.recent) > 0 {
			retryAfter = b.recent[0].t.Add(Window).Sub(now)
		}
		retryAfter = retryAfter.Round(time.Millisecond)
		if retryAfter <= 0 {
			retryAfter = time.Millisecond
		}
	}
	return admitted, retryAfter
}

// Usage returns every metric and scope counted so far, sorted by service,
// metric, project and location.
func (l *Limiter) Usage() []Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Usage, 0, len(l.buckets))
	for k, b := range l.buckets {
		out = append(out, Usage{
			Metric: k.metric, Project: k.project, Location: k.location,
			Limit: max(b.limit, 0), Used: b.used, Refused: b.refused, PeakPerMinute: b.peak,
		})
	}
	slices.SortFunc(out, func(a, b Usage) int {
		return strings.Compare(a.Metric.Service+"|"+a.Metric.ID+"|"+a.Project+"|"+a.Location,
			b.Metric.Service+"|"+b.Metric.ID+"|"+b.Project+"|"+b.Location)
	})
	return out
}
