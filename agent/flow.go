package agent

import (
	"errors"
	"io"
	"sync"
)

// inbox is the receiving end of one stream of one session: a ring buffer
// exactly as large as the window the receiver announced. The connection's
// read loop copies payloads straight into it and never blocks, because the
// sender may not have more than window bytes outstanding; a consumer
// goroutine drains it and returns credit. Memory per stream is therefore
// the window, however slow the consumer.
type inbox struct {
	window int

	mu       sync.Mutex
	buf      []byte // allocated on first data
	start, n int
	eof      bool
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
	if b.buf == nil {
		b.buf = make([]byte, b.window)
	}
	// The free region may wrap; the consumer only touches the filled
	// region, so the copy runs without the lock.
	end := (b.start + b.n) % b.window
	first := min(size, b.window-end)
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
func (b *inbox) peek() ([]byte, error) {
	for {
		b.mu.Lock()
		switch {
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return nil, err
		case b.n > 0:
			k := min(b.n, b.window-b.start)
			p := b.buf[b.start : b.start+k]
			b.mu.Unlock()
			return p, nil
		case b.eof:
			b.mu.Unlock()
			return nil, io.EOF
		}
		b.mu.Unlock()
		<-b.ready
	}
}

// release frees n bytes returned by peek and reports how much credit to
// grant the sender now: credit is batched into quarter windows so that a
// fast stream costs few CREDIT frames.
func (b *inbox) release(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.start = (b.start + n) % b.window
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
// of it. It gives up with errGaveUp once stop is closed (nil: never).
func (c *credit) take(max int, stop <-chan struct{}) (int, error) {
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
