package cloudlog

// dedup remembers the last n insert IDs it has seen, so that an entry read
// twice (once by a listing, once by a tail stream that overlaps it) is
// returned once, in bounded memory. Cloud Logging gives every entry an
// insertId unique within its log; gantry never compares text.
type dedup struct {
	seen map[string]struct{}
	ring []string
	next int
}

func newDedup(n int) *dedup {
	return &dedup{seen: make(map[string]struct{}, n), ring: make([]string, n)}
}

// fresh reports whether key is new, and remembers it, forgetting the
// oldest key when full. An empty key is always fresh.
func (d *dedup) fresh(key string) bool {
	if key == "" {
		return true
	}
	if _, ok := d.seen[key]; ok {
		return false
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.seen, old)
	}
	d.ring[d.next] = key
	d.next = (d.next + 1) % len(d.ring)
	d.seen[key] = struct{}{}
	return true
}
