package cloudlog

import "hash/maphash"

// dedup remembers the last n entries it has seen, so that an entry read
// twice (once by a listing, once by a tail stream or a later listing that
// overlaps it) is returned once. An entry is known by its log name and
// insertId, which Cloud Logging makes unique within a log; gantry never
// compares text, so two identical lines are two entries. Memory is
// bounded: 8 bytes of hash per remembered entry (a 64-bit hash with a
// seed of its own per reader, so a collision among n entries has odds of
// about n²/2⁶⁵), allocated as entries arrive.
type dedup struct {
	seed maphash.Seed
	n    int
	seen map[uint64]struct{}
	ring []uint64
	next int
}

func newDedup(n int) *dedup {
	return &dedup{seed: maphash.MakeSeed(), n: n, seen: map[uint64]struct{}{}}
}

// fresh reports whether the entry of logName and insertID is new, and
// remembers it, forgetting the oldest when full. An entry without an
// insertId cannot be told apart from another and is always fresh.
func (d *dedup) fresh(logName, insertID string) bool {
	if insertID == "" {
		return true
	}
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(logName)
	h.WriteByte(0)
	h.WriteString(insertID)
	key := h.Sum64()
	if _, ok := d.seen[key]; ok {
		return false
	}
	if len(d.ring) < d.n {
		d.ring = append(d.ring, key)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = key
		d.next = (d.next + 1) % d.n
	}
	d.seen[key] = struct{}{}
	return true
}
