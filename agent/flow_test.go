package agent

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestInboxGrowsKeepingOrder: an inbox starts small and grows up to its
// window as data outruns its consumer, wrapped or not, and hands out
// every byte in order, including while the consumer holds a segment
// across a growth.
func TestInboxGrowsKeepingOrder(t *testing.T) {
	const window = 256 << 10
	b := newInbox(window)
	r := rand.New(rand.NewPCG(3, 4))
	var sent, got bytes.Buffer
	var next byte
	payload := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = next
			next++
		}
		return p
	}
	outstanding := 0
	for round := 0; round < 1000; round++ {
		if size := 1 + r.IntN(20<<10); outstanding+size <= window {
			p := payload(size)
			if err := b.receive(bytes.NewReader(p), size); err != nil {
				t.Fatal(err)
			}
			sent.Write(p)
			outstanding += size
		}
		if r.IntN(3) == 0 && outstanding > 0 {
			seg, err := b.peek()
			if err != nil {
				t.Fatal(err)
			}
			take := 1 + r.IntN(len(seg))
			keep := append([]byte(nil), seg[:take]...)
			// Data that arrives while the segment is held may grow the
			// ring under it.
			if size := 1 + r.IntN(16<<10); outstanding+size <= window {
				p := payload(size)
				if err := b.receive(bytes.NewReader(p), size); err != nil {
					t.Fatal(err)
				}
				sent.Write(p)
				outstanding += size
			}
			if !bytes.Equal(seg[:take], keep) {
				t.Fatalf("round %d: a held segment changed under its consumer", round)
			}
			got.Write(seg[:take])
			b.release(take)
			outstanding -= take
		}
		if len(b.buf) > window {
			t.Fatalf("ring of %d bytes, window %d", len(b.buf), window)
		}
	}
	b.closeWrite()
	for {
		seg, err := b.peek()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(seg)
		b.release(len(seg))
	}
	if !bytes.Equal(got.Bytes(), sent.Bytes()) {
		t.Fatalf("got %d bytes, sent %d, equal: false", got.Len(), sent.Len())
	}
	if err := b.receive(bytes.NewReader([]byte{1}), 1); err == nil {
		t.Fatal("data after the end of the stream was taken")
	}
}

// TestInboxStartsSmall: a stream that carries a few bytes does not cost
// its whole window.
func TestInboxStartsSmall(t *testing.T) {
	b := newInbox(defaultWindow)
	if err := b.receive(bytes.NewReader([]byte("hi")), 2); err != nil {
		t.Fatal(err)
	}
	if len(b.buf) != minInboxBuf {
		t.Fatalf("ring of %d bytes for 2 bytes of data, want %d", len(b.buf), minInboxBuf)
	}
}
