package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// wsFrame encodes one WebSocket frame; mask, when non-nil, is the masking
// key (the payload is left as given: the gatherer does not look at it).
func wsFrame(opcode byte, mask []byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	m := byte(0)
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n > 0xffff:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|byte(n))
	}
	b = append(b, mask...)
	return append(b, payload...)
}

// writeLog records every write it receives.
type writeLog struct {
	writes [][]byte
	fail   error
}

func (w *writeLog) Read([]byte) (int, error) { return 0, io.EOF }
func (w *writeLog) Close() error             { return nil }
func (w *writeLog) Write(p []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func TestFrameGathererWritesWholeFrames(t *testing.T) {
	key := []byte{1, 2, 3, 4}
	payload := func(n int) []byte { return bytes.Repeat([]byte{0xa5}, n) }
	frames := [][]byte{
		wsFrame(0x2, key, payload(maxMessage)),     // 64-bit length, masked
		wsFrame(0x9, key, nil),                     // empty ping
		wsFrame(0x2, key, payload(125)),            // longest 7-bit length
		wsFrame(0x2, key, payload(126)),            // shortest 16-bit length
		wsFrame(0xa, nil, payload(4)),              // unmasked pong
		wsFrame(0x2, key, payload(0xffff)),         // longest 16-bit length
		wsFrame(0x2, key, payload(0x10000)),        // shortest 64-bit length
		wsFrame(0x8, key, []byte{0x03, 0xe8, 'x'}), // close
	}
	want := slices.Clone(frames)
	// One frame larger than the buffer goes out in buffer-sized pieces.
	big := wsFrame(0x2, key, payload(gatherLimit+1000))
	frames = append(frames, big)
	want = append(want, big[:gatherLimit], big[gatherLimit:])
	stream := slices.Concat(frames...)

	// The WebSocket library writes in 4 KiB pieces; any split must give the
	// same writes.
	for _, chunk := range []int{3, 13, 4096, len(stream)} {
		log := &writeLog{}
		g := newFrameGatherer(log)
		for p := stream; len(p) > 0; {
			k := min(chunk, len(p))
			n, err := g.Write(p[:k])
			if err != nil || n != k {
				t.Fatalf("chunk %d: Write = %d, %v; want %d, nil", chunk, n, err, k)
			}
			p = p[k:]
		}
		if len(log.writes) != len(want) {
			t.Fatalf("chunk %d: %d writes, want %d", chunk, len(log.writes), len(want))
		}
		for i := range want {
			if !bytes.Equal(log.writes[i], want[i]) {
				t.Fatalf("chunk %d: write %d is %d bytes, want %d bytes of frame data", chunk, i, len(log.writes[i]), len(want[i]))
			}
		}
	}
}

func TestFrameGathererWriteErrorSticks(t *testing.T) {
	broken := errors.New("broken pipe")
	log := &writeLog{fail: broken}
	g := newFrameGatherer(log)
	frame := wsFrame(0x2, []byte{1, 2, 3, 4}, []byte("hello"))
	if _, err := g.Write(frame); !errors.Is(err, broken) {
		t.Fatalf("Write of a whole frame = %v, want %v", err, broken)
	}
	log.fail = nil
	if _, err := g.Write(frame); !errors.Is(err, broken) {
		t.Fatalf("Write after a failure = %v, want %v", err, broken)
	}
	if len(log.writes) != 0 {
		t.Fatalf("%d writes reached the connection after a failure", len(log.writes))
	}
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestGatheringClientOneWritePerMessage checks the point of the gatherer
// against the real WebSocket library: a client's largest data message
// reaches the connection in one write, and arrives intact.
func TestGatheringClientOneWritePerMessage(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(maxMessage)
		for {
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			got <- msg
		}
	}))
	defer srv.Close()

	var writes atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &writes}, nil
	}}
	defer tr.CloseIdleConnections()
	ctx := context.Background()
	hc, gt := gatheringClient(&http.Client{Transport: tr})
	c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	g := gt.upgraded()
	if g == nil {
		t.Fatal("the handshake did not go through the gathering transport")
	}

	msg := patternBlockAt(7)
	for len(msg) < maxMessage {
		msg = append(msg, patternBlockAt(int64(len(msg)))...)
	}
	msg = msg[:maxMessage]
	orig := bytes.Clone(msg)
	for _, w := range []struct {
		name  string
		write func() error
	}{
		{"through the library", func() error { return c.Write(ctx, websocket.MessageBinary, msg) }},
		{"directly", func() error { return g.writeBinary(msg) }},
	} {
		before := writes.Load()
		if err := w.write(); err != nil {
			t.Fatal(err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("%s: a %d-byte message took %d writes, want 1", w.name, len(msg), n)
		}
		if !bytes.Equal(<-got, orig) {
			t.Errorf("%s: the message arrived changed", w.name)
		}
		if !bytes.Equal(msg, orig) {
			t.Fatalf("%s: writing changed the caller's message", w.name)
		}
	}
}

// unmaskFrame decodes a masked frame written by writeBinary.
func unmaskFrame(t *testing.T, f []byte) []byte {
	t.Helper()
	size, ok := frameHeaderSize(f)
	if !ok || f[0] != 0x82 || f[1]&0x80 == 0 || uint64(len(f)-size) != framePayloadLen(f) {
		t.Fatalf("not one final masked binary frame: % x", f[:min(len(f), 16)])
	}
	key := f[size-4 : size]
	p := bytes.Clone(f[size:])
	for i := range p {
		p[i] ^= key[i%4]
	}
	return p
}

func TestFrameGathererWriteBinary(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 1000, 0xffff, 0x10000, maxMessage} {
		log := &writeLog{}
		g := newFrameGatherer(log)
		msg := bytes.Repeat([]byte("gantry!"), n/7+1)[:n]
		if err := g.writeBinary(msg); err != nil {
			t.Fatal(err)
		}
		if len(log.writes) != 1 {
			t.Fatalf("%d bytes: %d writes, want 1", n, len(log.writes))
		}
		if got := unmaskFrame(t, log.writes[0]); !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: payload differs after unmasking", n)
		}
	}
	g := newFrameGatherer(&writeLog{})
	if err := g.writeBinary(make([]byte, maxMessage+1)); err == nil {
		t.Error("writeBinary took a message larger than any frame of the protocol")
	}
}

// TestFrameGathererKeepsFramesApart starts a direct message while a
// library frame is half written: it must go out after that frame, never
// inside it, whichever goroutine runs first.
func TestFrameGathererKeepsFramesApart(t *testing.T) {
	log := &writeLog{}
	g := newFrameGatherer(log)
	lib := wsFrame(0x2, []byte{9, 9, 9, 9}, bytes.Repeat([]byte{1}, 10000))
	if _, err := g.Write(lib[:5000]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- g.writeBinary([]byte("direct")) }()
	if _, err := g.Write(lib[5000:]); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(log.writes) != 2 || !bytes.Equal(log.writes[0], lib) || string(unmaskFrame(t, log.writes[1])) != "direct" {
		t.Fatalf("writes %d, want the library frame whole and then the direct one", len(log.writes))
	}

	// After the library's close frame nothing more may follow.
	if _, err := g.Write(wsFrame(0x8, []byte{1, 2, 3, 4}, []byte{0x03, 0xe8})); err != nil {
		t.Fatal(err)
	}
	if err := g.writeBinary([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writeBinary after a close frame = %v, want net.ErrClosed", err)
	}
}

// TestFrameGathererUnderLoad drives the gatherer on a real connection the
// way a connection in use does: several goroutines write messages at the
// edges of the WebSocket length forms while the library pings, and the
// library's close races the writes. The server must read every message a
// write reported sent, intact, and then a clean close: a corrupted stream
// would end its read with a protocol error instead.
func TestFrameGathererUnderLoad(t *testing.T) {
	type result struct {
		msgs int
		bad  string
		err  error
	}
	res := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(maxMessage)
		var out result
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				out.err = err
				res <- out
				return
			}
			out.msgs++
			switch {
			case typ != websocket.MessageBinary:
				out.bad = "a text message"
			case !slices.Contains([]int{125, 126, 0xffff, 0x10000}, len(msg)):
				out.bad = "a message of an unexpected length"
			case bytes.Count(msg, msg[:1]) != len(msg):
				out.bad = "a message whose bytes were mixed with another's"
			}
		}
	}))
	defer srv.Close()

	ctx := context.Background()
	hc, gt := gatheringClient(nil)
	c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	g := gt.upgraded()
	// Pongs are read by the library's own reader.
	readCtx := c.CloseRead(ctx)

	const writers, rounds = 4, 40
	var sent atomic.Int64
	var wg sync.WaitGroup
	halfway := make(chan struct{})
	var once sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if w == 0 && i == rounds {
					once.Do(func() { close(halfway) })
				}
				size := []int{125, 126, 0xffff, 0x10000}[i%4]
				if g.writeBinary(bytes.Repeat([]byte{byte(w*64 + i%64)}, size)) != nil {
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Go(func() {
		for readCtx.Err() == nil {
			if c.Ping(ctx) != nil {
				return
			}
		}
	})
	<-halfway
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	got := <-res
	if got.bad != "" {
		t.Fatalf("the server read %s", got.bad)
	}
	if status := websocket.CloseStatus(got.err); status != websocket.StatusNormalClosure {
		t.Fatalf("the server's read ended with %v, want a normal close", got.err)
	}
	if int64(got.msgs) != sent.Load() {
		t.Fatalf("the server read %d messages; writes reported %d sent", got.msgs, sent.Load())
	}
}
