package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
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

// The endpoints the handshakes in these tests dial and serve.
const (
	testAgentEndpoint = "ws://agent.test/"
	testHubEndpoint   = "ws://hub.test/"
)

// servesTest serves both test endpoints.
var servesTest = binding{serves: servesListed([]string{testAgentEndpoint, testHubEndpoint})}

func seedFrames() [][]byte {
	var seeds [][]byte
	for _, f := range []frame{
		{header: header{typ: frameHello}, version: 1, mode: modeReverse, nonce: make([]byte, nonceLen), id: "c1", endpoint: testHubEndpoint},
		{header: header{typ: frameAuth}, nonce: make([]byte, nonceLen), mac: make([]byte, macLen), endpoint: testAgentEndpoint},
		{header: header{typ: frameAuthOK}, mac: make([]byte, macLen)},
		{header: header{typ: frameOpen, session: 1}, open: &openRequest{Kind: "exec", Cmd: []string{"sh"}, TTY: true, Rows: 2, Cols: 3, Window: MinWindow}},
		{header: header{typ: frameStarted, session: 1}, amount: MinWindow},
		{header: header{typ: frameCredit, session: 1}, stream: streamStdout, amount: 10},
		{header: header{typ: frameResize, session: 1}, rows: 1, cols: 1},
		{header: header{typ: frameSignal, session: 1}, signal: 15},
		{header: header{typ: frameExit, session: 1}, code: 143, killSig: 15},
		{header: header{typ: frameError, session: 1}, kind: errKindNotFound, text: "no"},
		{header: header{typ: frameClose, session: 1}},
		{header: header{typ: frameOpen, session: 2}, open: &openRequest{Kind: "forward", Port: 5432, Window: MinWindow}},
		{header: header{typ: frameStdoutClose, session: 2}},
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
		err := agentHandshake(context.Background(), mt, testSecret, modeForward, "", servesTest)
		if err == nil {
			t.Fatal("agent accepted a peer that does not know the secret")
		}
		if len(mt.out) != 1 || mt.out[0][0] != frameHello {
			t.Fatalf("agent sent %d messages to an unauthenticated peer", len(mt.out))
		}
		ct := &memTransport{in: [][]byte{hello, authOK}}
		if _, err := controllerHandshake(context.Background(), ct, func(string) []byte { return testSecret }, modeReverse, servesTest); err == nil {
			t.Fatal("controller accepted an agent that does not know the secret")
		} else if !errors.Is(err, errAuth) && !errors.Is(err, errProtocol) && !errors.Is(err, errNotServed) && !errors.Is(err, io.EOF) && !isVersionErr(err) {
			t.Fatalf("unexpected handshake error: %v", err)
		}
	})
}

func isVersionErr(err error) bool {
	return bytes.Contains([]byte(err.Error()), []byte("protocol version"))
}

// pipeTransport is one end of an in-memory connection, held by the side
// under test; the other end is a test playing its peer.
type pipeTransport struct {
	in        chan []byte // to the side under test; closed when the peer hangs up
	out       chan []byte // from the side under test
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeTransport() *pipeTransport {
	return &pipeTransport{in: make(chan []byte), out: make(chan []byte, 64), closed: make(chan struct{})}
}

func (p *pipeTransport) next(ctx context.Context) (io.Reader, error) {
	select {
	case m, ok := <-p.in:
		if !ok {
			return nil, io.EOF
		}
		return bytes.NewReader(m), nil
	case <-p.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// write hands a message to the peer, dropping it when the peer's queue is
// full: a script that never reads must not stall the side under test,
// which a real peer could do only by not reading its connection.
func (p *pipeTransport) write(_ context.Context, msg []byte) error {
	select {
	case <-p.closed:
		return net.ErrClosed
	default:
	}
	select {
	case p.out <- append([]byte(nil), msg...):
	default:
	}
	return nil
}

func (p *pipeTransport) close(bool) error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// deliver sends one message to the side under test, or reports that it
// has closed the connection.
func (p *pipeTransport) deliver(msg []byte) bool {
	select {
	case p.in <- msg:
		return true
	case <-p.closed:
		return false
	}
}

// await waits for the next message of type typ from the side under test,
// skipping others.
func (p *pipeTransport) await(typ byte) ([]byte, bool) {
	for {
		select {
		case m := <-p.out:
			if len(m) >= headerLen && m[0] == typ {
				return m, true
			}
		case <-p.closed:
			return nil, false
		}
	}
}

// agentScript decodes a fuzz input into what a malicious agent does once
// the controller has opened its sessions: frames to send, in order, and
// cancellations of the controller's own sessions between them.
type scriptStep struct {
	msg    []byte // a message to send, or nil
	cancel int    // with msg nil: the session whose context to cancel
}

// fuzzFrameTypes are the frame types a script picks from: every defined
// type, in either direction, and an undefined one.
var fuzzFrameTypes = []byte{
	frameHello, frameAuth, frameAuthOK, frameOpen, frameStarted, frameStdin, frameStdout,
	frameStderr, frameStdinClose, frameCredit, frameResize, frameSignal, frameExit, frameError, frameClose,
	frameStdoutClose, 0x7f,
}

func agentScript(data []byte) []scriptStep {
	var steps []scriptStep
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	for len(data) > 0 {
		op := take(1)[0]
		switch op % 4 {
		case 0:
			// A frame with a payload from the input, its header's length
			// true to it: the decoder is covered elsewhere, this is about
			// order and meaning.
			hdr := take(3)
			if len(hdr) < 3 {
				return steps
			}
			payload := take(int(hdr[2]))
			msg := make([]byte, headerLen+len(payload))
			putHeader(msg, fuzzFrameTypes[int(hdr[0])%len(fuzzFrameTypes)], uint32(hdr[1]%5), len(payload))
			copy(msg[headerLen:], payload)
			steps = append(steps, scriptStep{msg: msg})
		case 1:
			// Output of a size the input chooses, up to the largest
			// frame, so that windows can be overrun.
			b := take(4)
			if len(b) < 4 {
				return steps
			}
			size := (int(b[1])<<16 | int(b[2])<<8 | int(b[3])) % (MaxDataPayload + 1)
			typ := frameStdout
			if b[0]&0x80 != 0 {
				typ = frameStderr
			}
			msg := make([]byte, headerLen+size)
			putHeader(msg, typ, uint32(b[0]%5), size)
			steps = append(steps, scriptStep{msg: msg})
		case 2:
			// A well-formed control frame with fields from the input.
			b := take(6)
			if len(b) < 6 {
				return steps
			}
			f := frame{header: header{session: uint32(b[1] % 5)}}
			switch b[0] % 5 {
			case 0:
				f.typ, f.amount = frameStarted, MinWindow+binary.BigEndian.Uint32(b[2:])%(MaxWindow-MinWindow+1)
			case 1:
				f.typ, f.stream, f.amount = frameCredit, b[2]%3, 1+binary.BigEndian.Uint32(b[2:])%MaxWindow
			case 2:
				f.typ, f.code, f.killSig = frameExit, int32(b[2]), b[3]%65
			case 3:
				f.typ, f.kind, f.text = frameError, errorKind(b[2])%(maxErrKind+1), "refused"
			case 4:
				f.typ = frameStdoutClose
			}
			msg, err := encodeControl(&f)
			if err != nil {
				panic(err)
			}
			steps = append(steps, scriptStep{msg: msg})
		case 3:
			steps = append(steps, scriptStep{cancel: int(op>>2) % 4})
		}
	}
	return steps
}

// FuzzControllerAgainstAgent plays a malicious agent, authenticated with
// the container's secret as root in the container could be, against a
// controller running an exec with input, an attach with input, a TTY
// exec with resizes and a port forward that writes, half-closes and
// reads: whatever the agent sends, in whatever order, the controller
// must not crash or hang, and every call must return once the agent
// hangs up.
func FuzzControllerAgainstAgent(f *testing.F) {
	started := func(id byte) []byte { return []byte{2, 0, id, 0, 0, 0, 0} }
	exit := func(id byte) []byte { return []byte{2, 2, id, 3, 0, 0, 0} }
	credit := func(id byte) []byte { return []byte{2, 1, id, 0, 0, 1, 0} }
	out := func(id byte) []byte { return []byte{1, id, 0, 0x10, 0} }
	eof := func(id byte) []byte { return []byte{2, 4, id, 0, 0, 0, 0} }
	seq := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(seq(exit(1), exit(2), exit(3)))
	f.Add(seq(started(1), started(2), started(3), out(1), credit(1), out(2), exit(1), exit(2), exit(3)))
	f.Add(seq(started(2), []byte{3}, out(2), out(2), credit(2), credit(2), exit(2)))
	f.Add(seq(out(1), credit(3), started(3), started(3)))
	f.Add(seq([]byte{0, 13, 1, 1, 0}, started(1), []byte{0, 12, 1, 0}))
	f.Add(seq(started(4), out(4), credit(4), eof(4), credit(4), exit(4)))
	f.Add(seq(started(4), eof(1), eof(4), out(4), []byte{15}))
	f.Fuzz(func(t *testing.T, data []byte) {
		steps := agentScript(data)
		p := newPipeTransport()
		handshakeDone := make(chan error, 1)
		go func() {
			_, err := controllerHandshake(context.Background(), p, func(string) []byte { return testSecret }, modeReverse, servesTest)
			handshakeDone <- err
		}()
		nonceA := newNonce()
		hello, _ := encodeControl(&frame{header: header{typ: frameHello}, version: protocolVersion, mode: modeReverse, nonce: nonceA, id: "c1", endpoint: testHubEndpoint})
		p.deliver(hello)
		authMsg, _ := p.await(frameAuth)
		auth, err := readFrame(bytes.NewReader(authMsg), make([]byte, maxHandshakePayload), nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, _ := encodeControl(&frame{header: header{typ: frameAuthOK}, mac: transcriptMAC(testSecret, labelAgent, modeReverse, "c1", testHubEndpoint, nonceA, auth.nonce)})
		p.deliver(ok)
		if err := <-handshakeDone; err != nil {
			t.Fatal(err)
		}

		cl := newClient(p, "c1", nil)
		go cl.run()
		var calls sync.WaitGroup
		var cancels [4]context.CancelFunc
		resize := make(chan gantry.TerminalSize, 1)
		resize <- gantry.TerminalSize{Rows: 10, Cols: 20}
		sessions := []func(ctx context.Context){
			func(ctx context.Context) {
				cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"cat"}, Stdin: strings.NewReader("input"), Stdout: io.Discard, Stderr: io.Discard})
			},
			func(ctx context.Context) {
				cl.Attach(ctx, gantry.AttachOptions{Stdin: io.LimitReader(zeroReader{}, 1<<20), Stdout: io.Discard})
			},
			func(ctx context.Context) {
				cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"sh"}, Tty: true, Resize: resize, Stdout: io.Discard})
			},
			func(ctx context.Context) {
				c, err := cl.DialPort(ctx, 5432)
				if err != nil {
					return
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				var writer sync.WaitGroup
				writer.Go(func() {
					c.Write(make([]byte, 1<<20))
					c.(interface{ CloseWrite() error }).CloseWrite()
				})
				io.Copy(io.Discard, c)
				c.Close()
				writer.Wait()
			},
		}
		for i, run := range sessions {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			calls.Go(func() { run(ctx) })
			// Session IDs follow the order of the OPENs.
			if _, ok := p.await(frameOpen); !ok {
				t.Fatal("the controller closed the connection before opening its sessions")
			}
		}
		for _, s := range steps {
			if s.msg == nil {
				cancels[s.cancel]()
				continue
			}
			if !p.deliver(s.msg) {
				break
			}
		}
		close(p.in)
		calls.Wait()
		<-cl.Done()
		for _, cancel := range cancels {
			cancel()
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// controllerScript decodes a fuzz input into the frames a malicious
// controller, authenticated with the container's secret, sends an agent.
// Its forwards go to echoPort, where an echo server listens,
// closedPort, where nothing does, or a port out of range.
func controllerScript(data []byte, echoPort, closedPort int) [][]byte {
	var msgs [][]byte
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	opens := []openRequest{
		{Kind: "exec", Cmd: []string{"true"}},
		{Kind: "exec", Cmd: []string{"cat"}, Stdin: true},
		{Kind: "exec", Cmd: []string{"cat"}, Stdin: true, TTY: true, Rows: 5, Cols: 7},
		{Kind: "exec", Cmd: []string{"no-such-command"}},
		{Kind: "attach", Stdin: true},
		{Kind: "attach"},
		{Kind: "forward", Port: echoPort},
		{Kind: "forward", Port: closedPort},
		{Kind: "forward", Port: 70000},
		{Kind: "teleport"},
		{Kind: "start"},
		{Kind: "status"},
		// SIGCONT: the main command must keep running.
		{Kind: "signal", Signal: int(syscall.SIGCONT)},
	}
	// Sessions that may have been opened as attach: SIGNAL on them goes
	// to the main command, which ignores every signal it can, so those
	// get no signal that cannot be ignored (SIGKILL, SIGSTOP) and none
	// of the two the C library keeps for itself, which sh cannot trap.
	attached := map[uint32]bool{}
	for len(data) > 0 {
		op := take(1)[0]
		b := take(5)
		if len(b) < 5 {
			return msgs
		}
		session := uint32(b[0] % 5)
		switch op % 3 {
		case 0:
			payload := take(int(b[2]))
			msg := make([]byte, headerLen+len(payload))
			putHeader(msg, fuzzFrameTypes[int(b[1])%len(fuzzFrameTypes)], session, len(payload))
			copy(msg[headerLen:], payload)
			msgs = append(msgs, msg)
		case 1:
			size := (int(b[1])<<16 | int(b[2])<<8 | int(b[3])) % (MaxDataPayload + 1)
			msg := make([]byte, headerLen+size)
			putHeader(msg, frameStdin, session, size)
			msgs = append(msgs, msg)
		case 2:
			f := frame{header: header{session: session}}
			switch b[1] % 7 {
			case 0:
				o := opens[int(b[2])%len(opens)]
				o.Window = MinWindow + uint32(binary.BigEndian.Uint16(b[3:])%64)*MinWindow
				f.typ, f.open = frameOpen, &o
				attached[session] = attached[session] || o.Kind == "attach"
			case 1:
				f.typ, f.stream, f.amount = frameCredit, 1+b[2]%2, 1+uint32(binary.BigEndian.Uint16(b[3:]))
			case 2:
				f.typ, f.rows, f.cols = frameResize, 1+uint16(b[2]), 1+uint16(b[3])
			case 3:
				f.typ, f.signal = frameSignal, 1+b[2]%64
				if attached[session] && !ignorable(f.signal) {
					f.signal = byte(syscall.SIGCONT)
				}
			case 4:
				f.typ = frameStdinClose
			case 5:
				f.typ = frameClose
			case 6:
				f.typ, f.stream, f.amount = frameCredit, b[2]%3, uint32(b[3])<<16|uint32(b[4])
			}
			msg, err := encodeControl(&f)
			if err != nil {
				continue
			}
			msgs = append(msgs, msg)
		}
	}
	return msgs
}

// ignorable reports whether sh can make a process ignore signal n.
func ignorable(n byte) bool {
	return n != byte(syscall.SIGKILL) && n != byte(syscall.SIGSTOP) && n != 32 && n != 33
}

// FuzzAgentAgainstController plays a malicious controller that knows the
// secret against a real agent, whose main command is cat on an open
// stdin, ignoring every signal it can, and whose container has an echo
// server on a port: whatever the controller sends, in whatever order,
// the agent must not crash or hang, must end the connection when the
// controller hangs up, and must not leave a process of the connection's
// sessions running or a connection of its forwards open.
func FuzzAgentAgainstController(f *testing.F) {
	var ignore []string
	for n := byte(1); n <= 64; n++ {
		if ignorable(n) {
			ignore = append(ignore, strconv.Itoa(int(n)))
		}
	}
	a := startAgent(f, Config{ID: "c1", OpenStdin: true,
		Cmd: []string{"sh", "-c", "trap '' " + strings.Join(ignore, " ") + "; exec cat"}})
	srv := startTCPServer(f, echo)
	closed := freePort(f)
	open := func(kind, session byte) []byte { return []byte{2, session, 0, kind, 0, 0} }
	stdin := func(session byte) []byte { return []byte{1, session, 0, 0, 0x10, 0} }
	seq := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(seq(open(0, 1), open(1, 2), stdin(2), []byte{2, 2, 4, 0, 0, 0}))
	f.Add(seq(open(2, 1), stdin(1), []byte{2, 1, 2, 9, 9, 0}, []byte{2, 1, 3, 15, 0, 0}))
	f.Add(seq(open(4, 3), stdin(3), []byte{2, 3, 1, 1, 0x10, 0}, []byte{2, 3, 5, 0, 0, 0}, open(4, 3)))
	f.Add(seq(open(3, 1), open(5, 2), []byte{2, 2, 6, 0, 0, 1}))
	f.Add(seq(open(6, 1), stdin(1), []byte{2, 1, 1, 0, 0x10, 0}, []byte{2, 1, 4, 0, 0, 0}))
	f.Add(seq(open(6, 2), stdin(2), stdin(2), []byte{2, 2, 5, 0, 0, 0}, open(7, 3), open(8, 4), open(9, 1)))
	f.Add(seq(open(6, 1), stdin(1), []byte{2, 1, 3, 15, 0, 0}))
	f.Add(seq(open(10, 1), open(11, 2), open(12, 3), []byte{2, 2, 1, 1, 0x10, 0}, open(11, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := controllerScript(data, srv.port, closed)
		p := newPipeTransport()
		served := make(chan bool, 1)
		go func() { served <- a.serve(context.Background(), p, modeForward, "fuzz", servesTest) }()
		helloMsg, _ := p.await(frameHello)
		hello, err := readFrame(bytes.NewReader(helloMsg), make([]byte, maxHandshakePayload), nil)
		if err != nil {
			t.Fatal(err)
		}
		nonceC := newNonce()
		auth, _ := encodeControl(&frame{header: header{typ: frameAuth}, nonce: nonceC, endpoint: testAgentEndpoint,
			mac: transcriptMAC(testSecret, labelController, modeForward, "", testAgentEndpoint, hello.nonce, nonceC)})
		p.deliver(auth)
		if _, ok := p.await(frameAuthOK); !ok {
			t.Fatal("the agent refused an honest handshake")
		}
		for _, msg := range msgs {
			if !p.deliver(msg) {
				break
			}
		}
		close(p.in)
		if !<-served {
			t.Fatal("serve reports the controller did not authenticate")
		}
		// Every session ended with the connection; their processes have
		// had SIGHUP, and none ignores it; their sockets are closed.
		a.execs.Wait()
		a.forwards.Wait()
		for deadline := time.Now().Add(10 * time.Second); srv.open.Load() != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections of forwards still open at the port", srv.open.Load())
			}
		}
		select {
		case <-a.Exited():
			t.Fatal("the main command exited")
		default:
		}
	})
}
