package logsvc

import (
	"strings"

	"github.com/gantryhq/gantry/gcptest/internal/quota"
)

// TailStats counts TailLogEntries sessions and what they did not send.
type TailStats struct {
	// Open is the number of sessions open now, Peak the most open at
	// once, Refused the sessions refused by the session limit.
	Open, Peak, Refused int
	// RateLimited and NotConsumed count entries reported in
	// suppression_info with reasons RATE_LIMIT and NOT_CONSUMED.
	RateLimited, NotConsumed int
}

// TailStats returns the counts of TailLogEntries sessions so far.
func (s *Service) TailStats() TailStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tail
}

// sessionParents are the parents a session counts against: every project
// of its resource names.
func sessionParents(q *query) []string {
	var ps []string
	for p := range q.parents {
		if strings.HasPrefix(p, "projects/") {
			ps = append(ps, p)
		}
	}
	return ps
}

// openSessionLocked counts a new session against each project it reads,
// or refuses it with the quota error when one of them has no session
// left. s.mu is held.
func (s *Service) openSessionLocked(q *query) error {
	ps := sessionParents(q)
	if s.sessionLimit > 0 {
		for _, p := range ps {
			if s.sessions[p] >= s.sessionLimit {
				s.tail.Refused++
				return quota.TailSessions.Exceeded(s.consumer(p), "", s.sessionLimit, 0)
			}
		}
	}
	for _, p := range ps {
		s.sessions[p]++
	}
	s.tail.Open++
	s.tail.Peak = max(s.tail.Peak, s.tail.Open)
	return nil
}

// closeSessionLocked releases what openSessionLocked counted. s.mu is
// held.
func (s *Service) closeSessionLocked(q *query) {
	for _, p := range sessionParents(q) {
		if s.sessions[p]--; s.sessions[p] <= 0 {
			delete(s.sessions, p)
		}
	}
	s.tail.Open--
}

// rateLimit keeps, of records about to be tailed (in timestamp order),
// those each project's per-minute budget allows, and returns how many it
// dropped.
func (s *Service) rateLimit(recs []*record) ([]*record, int) {
	if s.limiter == nil || len(recs) == 0 {
		return recs, 0
	}
	perParent := map[string]int{}
	for _, r := range recs {
		perParent[r.parent]++
	}
	allowed := make(map[string]int, len(perParent))
	for p, n := range perParent {
		allowed[p], _ = s.limiter.TakeUpTo(quota.TailEntries, s.tailRate, strings.TrimPrefix(p, "projects/"), "", n)
	}
	kept := recs[:0]
	for _, r := range recs {
		if allowed[r.parent] > 0 {
			allowed[r.parent]--
			kept = append(kept, r)
		}
	}
	dropped := len(recs) - len(kept)
	clear(recs[len(kept):])
	return kept, dropped
}

func (s *Service) countSuppressed(rateLimited, notConsumed int) {
	if rateLimited == 0 && notConsumed == 0 {
		return
	}
	s.mu.Lock()
	s.tail.RateLimited += rateLimited
	s.tail.NotConsumed += notConsumed
	s.mu.Unlock()
}
