package logsvc

import (
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry/gcptest/internal/logfilter"
)

// record is one stored entry with its sort key. Entries are immutable once
// stored, so they are handed out without copying.
type record struct {
	sec      int64
	nsec     int32
	insertID string
	seq      uint64
	parent   string
	logKey   string // logfilter.LogNameKey of the log name
	entry    *loggingpb.LogEntry
	dead     bool // dropped or deleted; guarded by Service.mu
}

// cursor is a position in the (timestamp, insertId, seq) order, the order
// ListLogEntries returns entries in.
type cursor struct {
	sec      int64
	nsec     int32
	insertID string
	seq      uint64
}

func (r *record) key() cursor { return cursor{r.sec, r.nsec, r.insertID, r.seq} }

func (a cursor) compare(b cursor) int {
	switch {
	case a.sec != b.sec:
		return cmp64(a.sec, b.sec)
	case a.nsec != b.nsec:
		return cmp64(int64(a.nsec), int64(b.nsec))
	case a.insertID != b.insertID:
		return strings.Compare(a.insertID, b.insertID)
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

func cmp64(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}

// postings is a list of records kept in key order. Entries mostly arrive
// in timestamp order, so an insert is usually an append.
type postings []*record

func (p *postings) insert(r *record) {
	l := *p
	if n := len(l); n == 0 || l[n-1].key().compare(r.key()) <= 0 {
		*p = append(l, r)
		return
	}
	k := r.key()
	i := sort.Search(len(l), func(i int) bool { return l[i].key().compare(k) > 0 })
	l = append(l, nil)
	copy(l[i+1:], l[i:])
	l[i] = r
	*p = l
}

// after returns the index of the first record whose key is greater than c.
func (p postings) after(c cursor) int {
	return sort.Search(len(p), func(i int) bool { return p[i].key().compare(c) > 0 })
}

// before returns the index of the last record whose key is less than c, or -1.
func (p postings) before(c cursor) int {
	return sort.Search(len(p), func(i int) bool { return p[i].key().compare(c) >= 0 }) - 1
}

// indexKey names one posting list. field is "resource.type", "logName",
// "parent", "resource.labels" or "labels" (the last two with key set).
type indexKey struct {
	field string
	key   string
	value string
}

// unindexedResourceLabels are resource labels nearly every entry of a
// project shares; their posting lists would be as long as the store and
// never narrow a query.
var unindexedResourceLabels = map[string]bool{"project_id": true, "location": true}

// indexedLabels are the entry labels Cloud Run sets that filters select on.
var indexedLabels = map[string]bool{"run.googleapis.com/execution_name": true}

// indexKeys returns the posting lists a record belongs to.
func indexKeys(r *record, buf []indexKey) []indexKey {
	e := r.entry
	buf = append(buf,
		indexKey{field: "parent", value: r.parent},
		indexKey{field: "logName", value: r.logKey},
		indexKey{field: "resource.type", value: logfilter.Fold(e.GetResource().GetType())},
	)
	for k, v := range e.GetResource().GetLabels() {
		if !unindexedResourceLabels[k] {
			buf = append(buf, indexKey{field: "resource.labels", key: k, value: logfilter.Fold(v)})
		}
	}
	for k, v := range e.GetLabels() {
		if indexedLabels[k] {
			buf = append(buf, indexKey{field: "labels", key: k, value: logfilter.Fold(v)})
		}
	}
	return buf
}

// constraintKey maps a filter constraint to a posting list, if the field
// is indexed for every entry (so that a missing list means no entry).
func constraintKey(c logfilter.Constraint) (indexKey, bool) {
	switch {
	case c.Field == "resource.type" || c.Field == "logName":
		return indexKey{field: c.Field, value: c.Value}, true
	case strings.HasPrefix(c.Field, "resource.labels."):
		k := strings.TrimPrefix(c.Field, "resource.labels.")
		return indexKey{field: "resource.labels", key: k, value: c.Value}, !unindexedResourceLabels[k]
	case strings.HasPrefix(c.Field, "labels."):
		k := strings.TrimPrefix(c.Field, "labels.")
		return indexKey{field: "labels", key: k, value: c.Value}, indexedLabels[k]
	}
	return indexKey{}, false
}

// insertLocked stores records; s.mu must be held for writing.
func (s *Service) insertLocked(recs []*record) {
	var keys []indexKey
	for _, r := range recs {
		s.seq++
		r.seq = s.seq
		if r.insertID == "" {
			r.insertID = s.idPrefix + strconv.FormatUint(r.seq, 36)
			r.entry.InsertId = r.insertID
		}
		s.all.insert(r)
		keys = indexKeys(r, keys[:0])
		for _, k := range keys {
			p := s.index[k]
			if p == nil {
				p = new(postings)
				s.index[k] = p
			}
			p.insert(r)
		}
		s.fifo = append(s.fifo, r)
		s.live++
		logs := s.logs[r.parent]
		if logs == nil {
			logs = make(map[string]int)
			s.logs[r.parent] = logs
		}
		logs[r.entry.GetLogName()]++
	}
	for s.max > 0 && s.live > s.max {
		r := s.fifo[s.head]
		s.fifo[s.head] = nil
		s.head++
		if !r.dead {
			s.killLocked(r)
		}
	}
	if s.head > len(s.fifo)/2 && s.head > 1024 {
		s.fifo = append([]*record(nil), s.fifo[s.head:]...)
		s.head = 0
	}
	s.maybeCompactLocked()
}

// killLocked marks a record dropped. Posting lists skip dead records until
// the next compaction.
func (s *Service) killLocked(r *record) {
	r.dead = true
	s.live--
	s.dead++
	logs := s.logs[r.parent]
	name := r.entry.GetLogName()
	if logs[name]--; logs[name] <= 0 {
		delete(logs, name)
	}
}

// maybeCompactLocked rebuilds the posting lists without dead records once
// they are a third of what the lists hold, so the cost is amortised over
// the drops.
func (s *Service) maybeCompactLocked() {
	if s.dead < 1024 || s.dead < s.live/2 {
		return
	}
	s.all = compact(s.all)
	for k, p := range s.index {
		*p = compact(*p)
		if len(*p) == 0 {
			delete(s.index, k)
		}
	}
	live := s.fifo[:0]
	for _, r := range s.fifo[s.head:] {
		if !r.dead {
			live = append(live, r)
		}
	}
	clear(s.fifo[len(live):])
	s.fifo, s.head = live, 0
	s.dead = 0
}

func compact(p postings) postings {
	out := p[:0]
	for _, r := range p {
		if !r.dead {
			out = append(out, r)
		}
	}
	clear(p[len(out):])
	return out
}
