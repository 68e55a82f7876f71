package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Frame types. The numbering is part of the wire protocol (see the package
// documentation); never renumber.
const (
	frameHello       byte = 0x01 // agent → controller, session 0
	frameAuth        byte = 0x02 // controller → agent, session 0
	frameAuthOK      byte = 0x03 // agent → controller, session 0
	frameOpen        byte = 0x10 // controller → agent
	frameStarted     byte = 0x11 // agent → controller
	frameStdin       byte = 0x12 // controller → agent, data
	frameStdout      byte = 0x13 // agent → controller, data
	frameStderr      byte = 0x14 // agent → controller, data
	frameStdinClose  byte = 0x15 // controller → agent
	frameCredit      byte = 0x16 // both directions
	frameResize      byte = 0x17 // controller → agent
	frameSignal      byte = 0x18 // controller → agent
	frameExit        byte = 0x19 // agent → controller
	frameError       byte = 0x1a // agent → controller
	frameClose       byte = 0x1b // controller → agent
	frameStdoutClose byte = 0x1c // agent → controller
)

// Stream numbers used in CREDIT frames.
const (
	streamStdin  byte = 0
	streamStdout byte = 1
	streamStderr byte = 2
)

const (
	// headerLen is the fixed frame header: type (1 byte), session ID (4
	// bytes) and payload length (4 bytes), big-endian.
	headerLen = 9
	// MaxDataPayload is the largest payload of a STDIN, STDOUT or STDERR
	// frame.
	MaxDataPayload = 256 << 10
	// maxControlPayload bounds every other frame's payload.
	maxControlPayload = 64 << 10
	// maxMessage is the WebSocket read limit: no frame is larger.
	maxMessage = headerLen + MaxDataPayload
	// MinWindow and MaxWindow bound the flow-control window a receiver may
	// announce for one stream of one session.
	MinWindow = 4 << 10
	// MaxWindow is the largest window a receiver may announce.
	MaxWindow = 16 << 20
	// defaultWindow is the window this implementation announces.
	defaultWindow = 2 << 20
	// maxErrorText bounds the reason in an ERROR frame.
	maxErrorText = 4 << 10
	// maxArgs bounds the number of argv and env entries in OPEN.
	maxArgs = 4096
)

// errProtocol marks a peer that broke the protocol; the connection is closed.
var errProtocol = errors.New("agent protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// header is a decoded frame header.
type header struct {
	typ     byte
	session uint32
	length  uint32
}

func putHeader(b []byte, typ byte, session uint32, length int) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:5], session)
	binary.BigEndian.PutUint32(b[5:headerLen], uint32(length))
}

func isData(typ byte) bool {
	return typ == frameStdin || typ == frameStdout || typ == frameStderr
}

// openRequest is the payload of an OPEN frame, JSON encoded.
type openRequest struct {
	// Kind is "exec", "attach", "forward", "start", "status" or
	// "signal". The agent answers a kind it does not know with ERROR
	// (not supported).
	Kind string `json:"kind"`
	// Cmd, Env, Dir, User and TTY describe an exec; they are empty for
	// the other kinds.
	Cmd  []string `json:"cmd,omitempty"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	User string   `json:"user,omitempty"`
	TTY  bool     `json:"tty,omitempty"`
	// Rows and Cols set the initial terminal size of a TTY.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Stdin says whether the controller will send standard input; a
	// forward always takes input.
	Stdin bool `json:"stdin,omitempty"`
	// Port is the TCP port a forward connects to on 127.0.0.1 in the
	// container; 0 for the other kinds. The agent, not the decoder,
	// checks its range, answering ERROR (invalid argument).
	Port int `json:"port,omitempty"`
	// Signal is the Linux signal number (1..64) a "signal" session sends
	// the main command; 0 for the other kinds.
	Signal int `json:"signal,omitempty"`
	// Window is the controller's receive window for each output stream.
	Window uint32 `json:"window"`
}

func (o *openRequest) validate() error {
	execFields := len(o.Cmd) != 0 || len(o.Env) != 0 || o.Dir != "" || o.User != "" || o.TTY
	switch o.Kind {
	case "exec":
		if len(o.Cmd) == 0 || o.Cmd[0] == "" {
			return protoErr("OPEN exec without a command")
		}
	case "attach":
		if execFields {
			return protoErr("OPEN attach with exec fields")
		}
	case "forward":
		if execFields || o.Rows != 0 || o.Cols != 0 {
			return protoErr("OPEN forward with exec fields")
		}
	case "start", "status", "signal":
		if execFields || o.Rows != 0 || o.Cols != 0 || o.Stdin || o.Port != 0 {
			return protoErr("OPEN %s with fields of another kind", o.Kind)
		}
	}
	if (o.Kind == "signal") != (o.Signal != 0) || o.Signal < 0 || o.Signal > 64 {
		return protoErr("OPEN %s with signal %d", o.Kind, o.Signal)
	}
	if o.Port != 0 && (o.Kind == "exec" || o.Kind == "attach") {
		return protoErr("OPEN %s with a port", o.Kind)
	}
	if len(o.Cmd) > maxArgs || len(o.Env) > maxArgs {
		return protoErr("OPEN with too many arguments")
	}
	if o.Window < MinWindow || o.Window > MaxWindow {
		return protoErr("OPEN window %d outside [%d, %d]", o.Window, MinWindow, MaxWindow)
	}
	return nil
}

// errorKind classifies an ERROR frame so the client can map it onto the
// gantry error sentinels.
type errorKind byte

const (
	errKindOther            errorKind = 0
	errKindInvalidArgument  errorKind = 1
	errKindNotFound         errorKind = 2
	errKindPermissionDenied errorKind = 3
	errKindConflict         errorKind = 4
	errKindExhausted        errorKind = 5
	errKindNotSupported     errorKind = 6
	maxErrKind                        = errKindNotSupported
)

// frame is a decoded control frame. Data frames are never materialised as
// a frame: their payload streams straight into the session's buffer.
type frame struct {
	header
	// hello
	version byte
	mode    byte
	nonce   []byte
	id      string
	// hello (reverse mode), auth (forward mode): the endpoint the dialing
	// side dialled
	endpoint string
	// auth, authOK
	mac []byte
	// open
	open *openRequest
	// started, credit
	stream byte
	amount uint32
	// resize
	rows, cols uint16
	// signal
	signal byte
	// exit
	code    int32
	killSig byte
	// error
	kind errorKind
	text string
}

// dataSink receives the payload of a data frame (1 ≤ h.length ≤
// MaxDataPayload); it must consume exactly h.length bytes from r.
type dataSink func(h header, r io.Reader) error

// readFrame decodes one WebSocket message. Control frames are returned
// decoded; a data frame's payload is handed to sink and readFrame returns
// a frame carrying only its header. buf is scratch space; a control frame
// whose payload would not fit in it is refused from its header alone, so
// the caller bounds what a peer can make it read (maxControlPayload on an
// authenticated connection, maxHandshakePayload before). Decoded fields
// may alias buf.
func readFrame(r io.Reader, buf []byte, sink dataSink) (frame, error) {
	var f frame
	var hb [headerLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return f, protoErr("frame shorter than its header")
		}
		return f, err
	}
	f.typ = hb[0]
	f.session = binary.BigEndian.Uint32(hb[1:5])
	f.length = binary.BigEndian.Uint32(hb[5:])
	if isData(f.typ) {
		if f.session == 0 {
			return f, protoErr("data frame on session 0")
		}
		if f.length < 1 || f.length > MaxDataPayload {
			return f, protoErr("data frame payload of %d bytes", f.length)
		}
		if err := sink(f.header, r); err != nil {
			return f, err
		}
		return f, expectEOF(r)
	}
	if f.length > maxControlPayload || int(f.length) > len(buf) {
		return f, protoErr("control frame payload of %d bytes", f.length)
	}
	p := buf[:f.length]
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return f, protoErr("frame shorter than its length")
		}
		return f, err
	}
	if err := expectEOF(r); err != nil {
		return f, err
	}
	return f, decodeControl(&f, p)
}

func checkEndpointField(ep string) error {
	if len(ep) > maxEndpointLen || !utf8.ValidString(ep) {
		return protoErr("endpoint of %d bytes, or not UTF-8", len(ep))
	}
	return nil
}

func expectEOF(r io.Reader) error {
	var one [1]byte
	for {
		m, err := r.Read(one[:])
		if m > 0 {
			return protoErr("frame longer than allowed")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func decodeControl(f *frame, p []byte) error {
	needSession := func(want bool) error {
		if (f.session != 0) != want {
			if want {
				return protoErr("frame 0x%02x needs a session", f.typ)
			}
			return protoErr("frame 0x%02x must use session 0", f.typ)
		}
		return nil
	}
	exact := func(n int) error {
		if len(p) != n {
			return protoErr("frame 0x%02x payload of %d bytes, want %d", f.typ, len(p), n)
		}
		return nil
	}
	switch f.typ {
	case frameHello:
		if err := needSession(false); err != nil {
			return err
		}
		const fixed = 2 + nonceLen + 2
		if len(p) < fixed {
			return protoErr("HELLO payload of %d bytes", len(p))
		}
		f.version, f.mode = p[0], p[1]
		f.nonce = p[2 : 2+nonceLen]
		idLen := int(binary.BigEndian.Uint16(p[2+nonceLen:]))
		if idLen > maxIDLen || idLen > len(p)-fixed {
			return protoErr("HELLO id of %d bytes", idLen)
		}
		f.id = string(p[fixed : fixed+idLen])
		f.endpoint = string(p[fixed+idLen:])
		if !utf8.ValidString(f.id) {
			return protoErr("HELLO id is not UTF-8")
		}
		if f.mode != modeForward && f.mode != modeReverse {
			return protoErr("HELLO mode %d", f.mode)
		}
		return checkEndpointField(f.endpoint)
	case frameAuth:
		if err := needSession(false); err != nil {
			return err
		}
		if len(p) < nonceLen+macLen {
			return protoErr("AUTH payload of %d bytes", len(p))
		}
		f.nonce, f.mac = p[:nonceLen], p[nonceLen:nonceLen+macLen]
		f.endpoint = string(p[nonceLen+macLen:])
		return checkEndpointField(f.endpoint)
	case frameAuthOK:
		if err := needSession(false); err != nil {
			return err
		}
		if err := exact(macLen); err != nil {
			return err
		}
		f.mac = p
		return nil
	}
	if err := needSession(true); err != nil {
		return err
	}
	switch f.typ {
	case frameOpen:
		var o openRequest
		if err := json.Unmarshal(p, &o); err != nil {
			return protoErr("OPEN payload: %v", err)
		}
		if err := o.validate(); err != nil {
			return err
		}
		f.open = &o
	case frameStarted:
		if err := exact(4); err != nil {
			return err
		}
		f.stream = streamStdin
		f.amount = binary.BigEndian.Uint32(p)
		if f.amount < MinWindow || f.amount > MaxWindow {
			return protoErr("STARTED window %d", f.amount)
		}
	case frameStdinClose, frameClose, frameStdoutClose:
		return exact(0)
	case frameCredit:
		if err := exact(5); err != nil {
			return err
		}
		f.stream = p[0]
		f.amount = binary.BigEndian.Uint32(p[1:])
		if f.stream > streamStderr || f.amount == 0 || f.amount > MaxWindow {
			return protoErr("CREDIT of %d for stream %d", f.amount, f.stream)
		}
	case frameResize:
		if err := exact(4); err != nil {
			return err
		}
		f.rows = binary.BigEndian.Uint16(p)
		f.cols = binary.BigEndian.Uint16(p[2:])
		if f.rows == 0 || f.cols == 0 {
			return protoErr("RESIZE to %dx%d", f.rows, f.cols)
		}
	case frameSignal:
		if err := exact(1); err != nil {
			return err
		}
		f.signal = p[0]
		if f.signal < 1 || f.signal > 64 {
			return protoErr("SIGNAL %d", f.signal)
		}
	case frameExit:
		if err := exact(5); err != nil {
			return err
		}
		f.code = int32(binary.BigEndian.Uint32(p))
		f.killSig = p[4]
		if f.code < 0 || f.code > 255 || f.killSig > 64 {
			return protoErr("EXIT code %d signal %d", f.code, f.killSig)
		}
	case frameError:
		if len(p) < 1 || len(p) > 1+maxErrorText {
			return protoErr("ERROR payload of %d bytes", len(p))
		}
		f.kind = errorKind(p[0])
		if f.kind > maxErrKind {
			return protoErr("ERROR kind %d", f.kind)
		}
		f.text = string(p[1:])
		if !utf8.ValidString(f.text) {
			return protoErr("ERROR text is not UTF-8")
		}
	default:
		return protoErr("unknown frame type 0x%02x", f.typ)
	}
	return nil
}

// encodeControl builds the message for a control frame.
func encodeControl(f *frame) ([]byte, error) {
	b := make([]byte, headerLen, headerLen+64)
	switch f.typ {
	case frameHello:
		b = append(b, f.version, f.mode)
		b = append(b, f.nonce...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(f.id)))
		b = append(b, f.id...)
		b = append(b, f.endpoint...)
	case frameAuth:
		b = append(b, f.nonce...)
		b = append(b, f.mac...)
		b = append(b, f.endpoint...)
	case frameAuthOK:
		b = append(b, f.mac...)
	case frameOpen:
		j, err := json.Marshal(f.open)
		if err != nil {
			return nil, err
		}
		if len(j) > maxControlPayload {
			return nil, fmt.Errorf("exec request of %d bytes exceeds the %d-byte limit", len(j), maxControlPayload)
		}
		b = append(b, j...)
	case frameStarted:
		b = binary.BigEndian.AppendUint32(b, f.amount)
	case frameStdinClose, frameClose, frameStdoutClose:
	case frameCredit:
		b = append(b, f.stream)
		b = binary.BigEndian.AppendUint32(b, f.amount)
	case frameResize:
		b = binary.BigEndian.AppendUint16(b, f.rows)
		b = binary.BigEndian.AppendUint16(b, f.cols)
	case frameSignal:
		b = append(b, f.signal)
	case frameExit:
		b = binary.BigEndian.AppendUint32(b, uint32(f.code))
		b = append(b, f.killSig)
	case frameError:
		text := strings.ToValidUTF8(f.text, "\uFFFD")
		if len(text) > maxErrorText {
			text = truncateUTF8(text, maxErrorText)
		}
		b = append(b, byte(f.kind))
		b = append(b, text...)
	default:
		return nil, fmt.Errorf("agent: cannot encode frame type 0x%02x", f.typ)
	}
	putHeader(b, f.typ, f.session, len(b)-headerLen)
	return b, nil
}

func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
