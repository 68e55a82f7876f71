package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// memTransport replays scripted messages and records what is written.
type memTransport struct {
	mu  sync.Mutex
	in  [][]byte
	out [][]byte
}

func (m *memTransport) next(context.Context) (io.Reader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.in) == 0 {
		return nil, io.EOF
	}
	msg := m.in[0]
	m.in = m.in[1:]
	return bytes.NewReader(msg), nil
}

func (m *memTransport) write(_ context.Context, msg []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.out = append(m.out, append([]byte(nil), msg...))
	return nil
}

func (m *memTransport) close(bool) error { return nil }

func seedFrames() [][]byte {
	var seeds [][]byte
	for _, f := range []frame{
		{header: header{typ: frameHello}, version: 1, mode: modeReverse, nonce: make([]byte, nonceLen), id: "c1"},
		{header: header{typ: frameAuth}, nonce: make([]byte, nonceLen), mac: make([]byte, macLen)},
		{header: header{typ: frameAuthOK}, mac: make([]byte, macLen)},
		{header: header{typ: frameOpen, session: 1}, open: &openRequest{Kind: "exec", Cmd: []string{"sh"}, TTY: true, Rows: 2, Cols: 3, Window: MinWindow}},
		{header: header{typ: frameStarted, session: 1}, amount: MinWindow},
		{header: header{typ: frameCredit, session: 1}, stream: streamStdout, amount: 10},
		{header: header{typ: frameResize, session: 1}, rows: 1, cols: 1},
		{header: header{typ: frameSignal, session: 1}, signal: 15},
		{header: header{typ: frameExit, session: 1}, code: 143, killSig: 15},
		{header: header{typ: frameError, session: 1}, kind: errKindNotFound, text: "no"},
		{header: header{typ: frameClose, session: 1}},
	} {
		b, err := encodeControl(&f)
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	data := make([]byte, headerLen+3)
	putHeader(data, frameStdout, 1, 3)
	return append(seeds, data)
}

// FuzzFrameDecoder feeds arbitrary messages to the frame decoder the
// connection uses. It must never panic or read past a frame, and whatever
// it accepts must encode back to an equivalent frame.
func FuzzFrameDecoder(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		buf := make([]byte, maxControlPayload)
		var got []byte
		fr, err := readFrame(bytes.NewReader(msg), buf, func(h header, r io.Reader) error {
			got = make([]byte, h.length)
			_, err := io.ReadFull(r, got)
			return shortPayload(err)
		})
		if err != nil {
			return
		}
		if isData(fr.typ) {
			if !bytes.Equal(got, msg[headerLen:]) {
				t.Fatalf("data payload %q from message %q", got, msg)
			}
			return
		}
		again, err := encodeControl(&fr)
		if err != nil {
			t.Fatalf("accepted frame does not encode: %v", err)
		}
		if fr.typ != frameOpen {
			if !bytes.Equal(again, msg) {
				t.Fatalf("re-encoded %x, decoded from %x", again, msg)
			}
			return
		}
		fr2, err := readFrame(bytes.NewReader(again), make([]byte, maxControlPayload), nil)
		if err != nil {
			t.Fatalf("re-encoded OPEN does not decode: %v", err)
		}
		if diff := cmp.Diff(fr.open, fr2.open); diff != "" {
			t.Fatalf("OPEN changed across encoding:\n%s", diff)
		}
	})
}

// FuzzHandshake plays an unauthenticated peer against both sides of the
// handshake: whatever it sends, neither side may accept it, and the agent
// sends nothing but its HELLO.
func FuzzHandshake(f *testing.F) {
	seeds := seedFrames()
	f.Add(seeds[1], seeds[0], seeds[2])
	f.Fuzz(func(t *testing.T, auth, hello, authOK []byte) {
		mt := &memTransport{in: [][]byte{auth}}
		err := agentHandshake(context.Background(), mt, testSecret, modeForward, "")
		if err == nil {
			t.Fatal("agent accepted a peer that does not know the secret")
		}
		if len(mt.out) != 1 || mt.out[0][0] != frameHello {
			t.Fatalf("agent sent %d messages to an unauthenticated peer", len(mt.out))
		}
		ct := &memTransport{in: [][]byte{hello, authOK}}
		if _, err := controllerHandshake(context.Background(), ct, func(string) []byte { return testSecret }, modeReverse); err == nil {
			t.Fatal("controller accepted an agent that does not know the secret")
		} else if !errors.Is(err, errAuth) && !errors.Is(err, errProtocol) && !errors.Is(err, io.EOF) && !isVersionErr(err) {
			t.Fatalf("unexpected handshake error: %v", err)
		}
	})
}

func isVersionErr(err error) bool {
	return bytes.Contains([]byte(err.Error()), []byte("protocol version"))
}
