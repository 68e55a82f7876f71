package gcptest

import "maps"

// Stats is what the Server counted since it started, for a test that
// reports how a client used the APIs: calls per method, quota use per
// minute and TailLogEntries sessions.
type Stats struct {
	// Calls counts calls per full gRPC method, refused ones included
	// (ResetCalls resets it).
	Calls map[string]int
	// Exhausted counts RESOURCE_EXHAUSTED answers per method, whatever
	// their cause: a quota, the limit on tail sessions or an injected
	// fault (ResetCalls resets it).
	Exhausted map[string]int
	// Quotas has one row per quota metric, project and (for Cloud Run)
	// region a call was counted for, with or without a limit.
	Quotas []QuotaUsage
	// Tail counts TailLogEntries sessions and suppressed entries.
	Tail TailUsage
}

// QuotaUsage is one quota metric's use for one project and region.
type QuotaUsage struct {
	// Service is the API ("run.googleapis.com", "logging.googleapis.com"),
	// Metric the metric's name ("Read requests") and Limit the limit's
	// name ("Read requests per minute per region"), as Google names them.
	Service, Metric, Limit string
	Project                string
	// Location is the region of a regional metric, else empty.
	Location string
	// LimitValue is the limit in force; 0 is none.
	LimitValue int
	// Used and Refused count calls (entries, for the tail entries
	// metric) admitted and refused; PeakPerMinute is the most admitted
	// within any minute.
	Used, Refused, PeakPerMinute int
}

// TailUsage counts TailLogEntries sessions and what they did not send.
type TailUsage struct {
	// Open sessions now, the most open at once, and sessions refused by
	// the session limit.
	Open, Peak, Refused int
	// RateLimited and NotConsumed count entries reported in
	// suppression_info with reasons RATE_LIMIT and NOT_CONSUMED.
	RateLimited, NotConsumed int
}

// Stats returns what the Server has counted so far.
func (s *Server) Stats() Stats {
	s.faults.mu.Lock()
	st := Stats{Calls: maps.Clone(s.faults.calls), Exhausted: maps.Clone(s.faults.exhausted)}
	s.faults.mu.Unlock()
	for _, u := range s.limiter.Usage() {
		st.Quotas = append(st.Quotas, QuotaUsage{
			Service: u.Metric.Service, Metric: u.Metric.Name, Limit: u.Metric.Limit,
			Project: u.Project, Location: u.Location, LimitValue: u.Limit,
			Used: u.Used, Refused: u.Refused, PeakPerMinute: u.PeakPerMinute,
		})
	}
	t := s.logs.svc.TailStats()
	st.Tail = TailUsage{Open: t.Open, Peak: t.Peak, Refused: t.Refused, RateLimited: t.RateLimited, NotConsumed: t.NotConsumed}
	return st
}
