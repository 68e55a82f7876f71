package agent

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	protocolVersion = 1
	nonceLen        = 32
	macLen          = sha256.Size
	maxIDLen        = 256
	// maxHandshakePayload is the largest handshake payload (a HELLO with
	// the longest id and endpoint); it bounds what an unauthenticated peer
	// can make either side read or allocate.
	maxHandshakePayload = 2 + nonceLen + 2 + maxIDLen + maxEndpointLen
	// MinSecretLen is the shortest secret Start, Dial and NewHub accept.
	MinSecretLen = 16
	// handshakeTimeout bounds the whole handshake; a peer that stalls is
	// dropped.
	handshakeTimeout = 10 * time.Second
)

// Connection modes, part of the authenticated transcript so that a proof
// made for one direction cannot be replayed in the other.
const (
	modeForward byte = 1 // the controller dialed the agent
	modeReverse byte = 2 // the agent dialed the controller
)

// errAuth is returned to the local caller when the peer failed to prove it
// knows the secret. The peer itself is told nothing.
var errAuth = errors.New("agent: peer failed authentication")

// transcriptMAC computes HMAC-SHA256(secret, label || version || mode ||
// len(id) || id || len(endpoint) || endpoint || nonceA || nonceC).
func transcriptMAC(secret []byte, label string, mode byte, id, endpoint string, nonceA, nonceC []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write([]byte{protocolVersion, mode})
	for _, field := range []string{id, endpoint} {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(field)))
		m.Write(l[:])
		m.Write([]byte(field))
	}
	m.Write(nonceA)
	m.Write(nonceC)
	return m.Sum(nil)
}

const (
	labelController = "gantry-agent/1 controller proof"
	labelAgent      = "gantry-agent/1 agent proof"
)

func newNonce() []byte {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("agent: crypto/rand failed: %v", err))
	}
	return b
}

// readHandshakeFrame reads one control frame of the wanted type.
func readHandshakeFrame(ctx context.Context, t transport, want byte) (frame, error) {
	r, err := t.next(ctx)
	if err != nil {
		return frame{}, err
	}
	return decodeHandshakeFrame(r, want)
}

// decodeHandshakeFrame decodes the message r as a control frame of the
// wanted type.
func decodeHandshakeFrame(r io.Reader, want byte) (frame, error) {
	buf := make([]byte, maxHandshakePayload)
	f, err := readFrame(r, buf, func(header, io.Reader) error {
		return protoErr("data frame during the handshake")
	})
	if err != nil {
		return f, err
	}
	if f.typ != want {
		return f, protoErr("frame 0x%02x during the handshake, want 0x%02x", f.typ, want)
	}
	return f, nil
}

// queuedTransport is a connection an agent holds open at a relay for a
// controller that has not arrived yet (Agent.ConnectRelay). On it the
// agent waits for AUTH for as long as the connection lives, with no
// deadline (pings keep the connection alive meanwhile), calls claimed as
// soon as AUTH begins to arrive, and gives the rest of the handshake the
// usual handshakeTimeout from then on.
type queuedTransport interface {
	transport
	claimed()
}

func writeFrame(ctx context.Context, t transport, f *frame) error {
	b, err := encodeControl(f)
	if err != nil {
		return err
	}
	return t.write(ctx, b)
}

// agentHandshake runs the agent's side: it challenges the controller, checks
// its proof, and proves its own knowledge of the secret. id is sent in the
// clear and bound into both proofs, and so is the endpoint: in reverse
// mode the one the agent dialled (ep.dialled), which it names in HELLO; in
// forward mode the one the controller names in AUTH, if ep.serves it.
func agentHandshake(ctx context.Context, t transport, secret []byte, mode byte, id string, ep binding) error {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	nonceA := newNonce()
	hello := frame{header: header{typ: frameHello}, version: protocolVersion, mode: mode, nonce: nonceA, id: id}
	if mode == modeReverse {
		hello.endpoint = ep.dialled
	}
	if err := writeFrame(hctx, t, &hello); err != nil {
		return err
	}
	var r io.Reader
	var err error
	if q, ok := t.(queuedTransport); ok {
		// AUTH is read under wait, which has no deadline until AUTH
		// begins to arrive and the handshake's deadline after.
		wait, stop := context.WithCancel(ctx)
		defer stop()
		if r, err = t.next(wait); err != nil {
			return err
		}
		q.claimed()
		var cancelRest context.CancelFunc
		hctx, cancelRest = context.WithTimeout(ctx, handshakeTimeout)
		defer cancelRest()
		defer context.AfterFunc(hctx, stop)()
	} else if r, err = t.next(hctx); err != nil {
		return err
	}
	auth, err := decodeHandshakeFrame(r, frameAuth)
	if err != nil {
		return err
	}
	endpoint := ep.dialled
	if mode == modeForward {
		endpoint = auth.endpoint
		if err := ep.serves(endpoint); err != nil {
			return err
		}
	} else if auth.endpoint != "" {
		return protoErr("AUTH names an endpoint on a connection the agent dialled")
	}
	want := transcriptMAC(secret, labelController, mode, id, endpoint, nonceA, auth.nonce)
	if !hmac.Equal(want, auth.mac) {
		return errAuth
	}
	ok := frame{header: header{typ: frameAuthOK}, mac: transcriptMAC(secret, labelAgent, mode, id, endpoint, nonceA, auth.nonce)}
	return writeFrame(hctx, t, &ok)
}

// controllerHandshake runs the controller's side. secretFor maps the id the
// agent announced to its secret; for an unknown id it returns nil, and the
// handshake goes on with a random key so that the timing and messages are
// the same as for a wrong secret. The endpoint bound is, in forward mode,
// the one the controller dialled (ep.dialled), which it names in AUTH; in
// reverse mode the one the agent names in HELLO, if ep.serves it. It
// returns the agent's id.
func controllerHandshake(ctx context.Context, t transport, secretFor func(id string) []byte, mode byte, ep binding) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	hello, err := readHandshakeFrame(ctx, t, frameHello)
	if err != nil {
		return "", err
	}
	if hello.version != protocolVersion {
		return "", fmt.Errorf("agent: peer speaks protocol version %d, want %d", hello.version, protocolVersion)
	}
	if hello.mode != mode {
		return "", protoErr("HELLO for mode %d on a mode %d connection", hello.mode, mode)
	}
	endpoint := ep.dialled
	if mode == modeReverse {
		endpoint = hello.endpoint
		if err := ep.serves(endpoint); err != nil {
			return "", err
		}
	} else if hello.endpoint != "" {
		return "", protoErr("HELLO names an endpoint on a connection the controller dialled")
	}
	id := hello.id
	secret := secretFor(id)
	if secret == nil {
		secret = newNonce()
	}
	nonceA := append([]byte(nil), hello.nonce...)
	nonceC := newNonce()
	auth := frame{header: header{typ: frameAuth}, nonce: nonceC, mac: transcriptMAC(secret, labelController, mode, id, endpoint, nonceA, nonceC)}
	if mode == modeForward {
		auth.endpoint = endpoint
	}
	if err := writeFrame(ctx, t, &auth); err != nil {
		return "", err
	}
	ok, err := readHandshakeFrame(ctx, t, frameAuthOK)
	if err != nil {
		return "", err
	}
	if !hmac.Equal(transcriptMAC(secret, labelAgent, mode, id, endpoint, nonceA, nonceC), ok.mac) {
		return "", errAuth
	}
	return id, nil
}
