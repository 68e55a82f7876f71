package agent

import (
	"errors"
	"io"
	"sync"
)

// inbox is the receiving end of one stream of one session: a ring buffer
// that grows as needed up to the window the receiver announced. The connection's
// read loop copies payloads straight into it and never blocks, because the
// sender may not have more than window bytes outstanding; a consumer
// goroutine drains it and returns credit. Memory per stream is therefore
// the window, however slow the consumer.
type inbox struct {
	window int

	mu       sync.Mutex
	buf      []byte // allocated on first data, grown up to the window
	start, n int
	eof      bool
	eofErr   error // what the consumer gets at the end instead of io.EOF
	err      error
	ready    chan struct{}
	consumed int // drained but not yet credited
}

func newInbox(window int) *inbox {
	return &inbox{window: window, ready: make(chan struct{}, 1)}
}

func (b *inbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// receive reads exactly size bytes of payload from r into the ring. It is
// called only by the connection's read loop.
func (b *inbox) receive(r io.Reader, size int) error {
	b.mu.Lock()
	if b.eof {
		b.mu.Unlock()
		return protoErr("data after end of stream")
	}
	if b.n+size > b.window {
		b.mu.Unlock()
		return protoErr("peer sent %d bytes beyond its credit", b.n+size-b.window)
	}
	if b.n+size > len(b.buf) {
		b.grow(b.n + size)
	}
	// The free region may wrap; the consumer only touches the filled
	// region, so the copy runs without the lock.
	end := (b.start + b.n) % len(b.buf)
	first := min(size, len(b.buf)-end)
	seg1 := b.buf[end : end+first]
	seg2 := b.buf[:size-first]
	discard := b.err != nil
	b.mu.Unlock()

	if _, err := io.ReadFull(r, seg1); err != nil {
		return shortPayload(err)
	}
	if _, err := io.ReadFull(r, seg2); err != nil {
		return shortPayload(err)
	}
	if discard {
		return nil
	}
	b.mu.Lock()
	b.n += size
	b.mu.Unlock()
	b.signal()
	return nil
}

// minInboxBuf is the ring an inbox starts with on its first data.
const minInboxBuf = 64 << 10

// grow makes the ring hold at least need bytes, doubling it up to the
// window, so that a stream that carries little costs little memory. The
// filled region moves to the start of the new ring; a segment the
// consumer holds from peek stays valid in the old one, which is only
// read from now on.
func (b *inbox) grow(need int) {
	size := max(minInboxBuf, 2*len(b.buf))
	for size < need {
		size *= 2
	}
	buf := make([]byte, min(size, b.window))
	k := min(b.n, len(b.buf)-b.start)
	copy(buf, b.buf[b.start:b.start+k])
	copy(buf[k:], b.buf[:b.n-k])
	b.buf, b.start = buf, 0
}

func shortPayload(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return protoErr("frame shorter than its length")
	}
	return err
}

// closeWrite marks the end of the stream: the consumer sees io.EOF once
// it has drained everything.
func (b *inbox) closeWrite() {
	b.mu.Lock()
	b.eof = true
	b.mu.Unlock()
	b.signal()
}

// closeWithError ends the stream with err rather than io.EOF: the
// consumer still gets everything that arrived first. A stream that has
// already ended keeps its end.
func (b *inbox) closeWithError(err error) {
	b.mu.Lock()
	if !b.eof {
		b.eof, b.eofErr = true, err
	}
	b.mu.Unlock()
	b.signal()
}

// abort makes the consumer stop at once with err; buffered data is
// dropped, which is only done when the session itself is over.
func (b *inbox) abort(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.signal()
}

// peek waits for data and returns the longest contiguous filled segment.
// The slice stays valid until release.
func (b *inbox) peek() ([]byte, error) { return b.peekUntil(nil, nil) }

// peekUntil is peek that gives up with errGaveUp once stop or stop2 is
// closed (nil: never).
func (b *inbox) peekUntil(stop, stop2 <-chan struct{}) ([]byte, error) {
	for {
		b.mu.Lock()
		switch {
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return nil, err
		case b.n > 0:
			k := min(b.n, len(b.buf)-b.start)
			p := b.buf[b.start : b.start+k]
			b.mu.Unlock()
			return p, nil
		case b.eof:
			err := b.eofErr
			b.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return nil, err
		}
		b.mu.Unlock()
		select {
		case <-b.ready:
		case <-stop:
			return nil, errGaveUp
		case <-stop2:
			return nil, errGaveUp
		}
	}
}

// release frees n bytes returned by peek and reports how much credit to
// grant the sender now: credit is batched into quarter windows so that a
// fast stream costs few CREDIT frames.
func (b *inbox) release(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.start = (b.start + n) % len(b.buf)
	b.n -= n
	b.consumed += n
	if b.consumed >= b.window/4 || (b.n == 0 && b.eof) {
		g := b.consumed
		b.consumed = 0
		return g
	}
	return 0
}

// credit is the sending end of one stream: how many bytes the receiver
// has room for.
type credit struct {
	window int

	mu    sync.Mutex
	avail int
	err   error
	wake  chan struct{}
}

func newCredit(window int) *credit {
	return &credit{window: window, avail: window, wake: make(chan struct{}, 1)}
}

// open sets the window of a credit made with newCredit(0), once the
// receiver has announced it; until then take waits.
func (c *credit) open(window int) {
	c.mu.Lock()
	c.window, c.avail = window, window
	c.mu.Unlock()
	c.poke()
}

// take waits until some credit is available and takes up to max bytes
// of it. It gives up with errGaveUp once stop or stop2 is closed (nil:
// never).
func (c *credit) take(max int, stop, stop2 <-chan struct{}) (int, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return 0, err
		}
		if c.avail > 0 {
			n := min(c.avail, max)
			c.avail -= n
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-stop:
			return 0, errGaveUp
		case <-stop2:
			return 0, errGaveUp
		}
	}
}

// errGaveUp is take's error when it stops waiting for credit.
var errGaveUp = errors.New("gave up waiting for credit")

// putBack returns credit that take handed out but the sender did not use.
func (c *credit) putBack(n int) {
	c.mu.Lock()
	c.avail += n
	c.mu.Unlock()
	c.poke()
}

// grant adds credit from a CREDIT frame. More than the window outstanding
// is a protocol violation.
func (c *credit) grant(n int) error {
	c.mu.Lock()
	if c.avail+n > c.window {
		c.mu.Unlock()
		return protoErr("CREDIT beyond the window")
	}
	c.avail += n
	c.mu.Unlock()
	c.poke()
	return nil
}

func (c *credit) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.poke()
}

func (c *credit) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
