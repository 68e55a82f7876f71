// Package agent gives gantry backends docker exec and docker attach into
// containers on platforms that have no exec API, such as Cloud Run, and
// connections to TCP ports inside them, as kubectl port-forward makes. It
// holds both ends of one protocol: the Agent, which runs inside the
// container (the gantry-agent binary wraps the container's real command
// with it), and the Client, which a backend uses to run sessions in that
// container.
//
// Two connection modes exist. In forward mode the agent listens
// (Agent.ServeHTTP) and the backend dials it (Dial); this suits Services,
// Instances and local use. In reverse mode the agent dials out to a URL it
// was given (Agent.Connect), reconnecting with backoff, and the backend
// runs a Hub, an http.Handler that agents dial into; this suits Jobs,
// which take no inbound traffic, when the backend can take connections.
//
// When neither side can take a connection (a Job, and a client on a
// laptop behind NAT), both dial a Relay, an http.Handler run somewhere
// both can reach (cmd/gantry-relay, for example as a Cloud Run service).
// The agent keeps an idle connection open at the relay's /agent URL
// under its container's ID (Agent.ConnectRelay, with RelayAgentURL), in
// reverse mode; a client dials /client with that ID (DialRelay), the
// relay pairs it with the oldest idle connection of the ID and from then
// on copies WebSocket messages between the two, unchanged and unread.
// The handshake on an idle connection waits for its client with no
// deadline (the relay and the agent ping each other meanwhile); once a
// client's AUTH arrives, the agent dials its next idle connection, so
// clients may come one after another or at once, each with its own
// connection, handshake and sessions. The relay holds no secret: client
// and agent authenticate each other end to end through it, as below.
// Who may reach the relay at all is up to the front end before it: on
// Cloud Run, IAM asks both sides for a Google ID token for the relay's
// URL. A client sends one in DialOptions.HTTPHeader; the agent, which
// dials for as long as its container runs, gets fresh headers before
// every dial from ConnectOptions.Header (gantry-agent -relay-token
// metadata fetches the token from the metadata server).
//
// Either way the backend ends up with a *Client (whose DialPort connects
// to a port in the container), and a backend's Exec is a thin call:
//
//	cl, err := agent.Dial(ctx, "wss://svc.example.run.app/agent", secret, nil)
//	if err != nil {
//		return gantry.ExecResult{}, err
//	}
//	defer cl.Close()
//	res, err := cl.Exec(ctx, gantry.ExecConfig{
//		Cmd:    []string{"sh", "-c", "echo hello"},
//		Stdout: os.Stdout,
//	})
//
// # Wire protocol (version 1)
//
// The transport is one WebSocket (RFC 6455) per connection, subprotocol
// "gantry-agent.v1", compression off. Every WebSocket message is a binary
// message holding exactly one frame; text messages are an error. A frame
// is a fixed 9-byte header followed by its payload:
//
//	offset 0  uint8   type
//	offset 1  uint32  session ID, big-endian; 0 for handshake frames
//	offset 5  uint32  payload length, big-endian; must equal the bytes that
//	                  follow in the message
//	offset 9          payload
//
// Data payloads (STDIN, STDOUT, STDERR) hold 1 to 262144 bytes; every other
// payload at most 65536. The controller is the side that runs sessions (the
// backend), whichever side dialed.
//
//	type  name         direction     payload
//	0x01  HELLO        agent → ctl   version u8 (1), mode u8 (1 forward, 2 reverse),
//	                                 nonceA [32], id length u16, id (UTF-8,
//	                                 0..256 bytes; empty in forward mode),
//	                                 endpoint (the rest: in reverse mode the
//	                                 endpoint the agent dialled, else empty)
//	0x02  AUTH         ctl → agent   nonceC [32], macC [32], endpoint (the rest:
//	                                 in forward mode the endpoint the controller
//	                                 dialled, else empty)
//	0x03  AUTH_OK      agent → ctl   macA [32]
//	0x10  OPEN         ctl → agent   JSON object: kind ("exec", "attach",
//	                                 "forward", "start", "status" or "signal"),
//	                                 cmd, env, dir, user, tty, rows, cols
//	                                 (initial terminal size), stdin (bool:
//	                                 input will be sent), port (a forward's TCP
//	                                 port), signal (a "signal" session's number,
//	                                 1..64), window (u32: the controller's
//	                                 receive window for each output stream,
//	                                 4 KiB..16 MiB)
//	0x11  STARTED      agent → ctl   window u32: the agent's receive window for input
//	0x12  STDIN        ctl → agent   bytes (a forward: to the port)
//	0x13  STDOUT       agent → ctl   bytes (a forward: from the port)
//	0x14  STDERR       agent → ctl   bytes (with a TTY all output is STDOUT; a
//	                                 forward has none)
//	0x15  STDIN_CLOSE  ctl → agent   empty: end of input
//	0x16  CREDIT       both          stream u8 (0 stdin, 1 stdout, 2 stderr), bytes u32
//	0x17  RESIZE       ctl → agent   rows u16, cols u16 (both > 0)
//	0x18  SIGNAL       ctl → agent   Linux signal number u8 (1..64)
//	0x19  EXIT         agent → ctl   exit code i32 (0..255; 128+N when signal N
//	                                 killed the process), signal u8 (N, or 0)
//	0x1a  ERROR        agent → ctl   kind u8, reason (UTF-8): the session could not
//	                                 start, or (kind 5, after STARTED) an attach
//	                                 was given up on, or (kind 0, after STARTED) a
//	                                 forward's socket failed. Kinds: 0 other,
//	                                 1 invalid argument, 2 not found, 3 permission
//	                                 denied, 4 conflict, 5 resource exhausted,
//	                                 6 not supported
//	0x1b  CLOSE        ctl → agent   empty: the controller abandons the session
//	0x1c  STDOUT_CLOSE agent → ctl   empty: a forward's port shut its side (EOF)
//
// Handshake. On every connection the agent sends HELLO first; the
// controller answers AUTH, the agent answers AUTH_OK, and only then may
// OPEN be sent. With secret K, mode m, id as sent in HELLO and endpoint E:
//
//	macC = HMAC-SHA256(K, "gantry-agent/1 controller proof" || 0x01 || m ||
//	                      uint16be(len(id)) || id || uint16be(len(E)) || E ||
//	                      nonceA || nonceC)
//	macA = HMAC-SHA256(K, "gantry-agent/1 agent proof" || 0x01 || m ||
//	                      uint16be(len(id)) || id || uint16be(len(E)) || E ||
//	                      nonceA || nonceC)
//
// Each side checks the other's MAC in constant time. An agent that
// receives a wrong macC closes the connection without a word; a controller
// that receives a wrong macA does the same. A controller that does not
// know the id proceeds with a random key, so that it behaves exactly as
// for a wrong secret.
//
// Endpoint. E is the URL the dialing side dialled (the controller in
// forward mode, the agent in reverse mode) in endpoint form: scheme ws or
// wss (http and https count as those), host in lower case, no default
// port, the path ("/" if empty), and no user information, query or
// fragment, which carry credentials or per-request parameters rather than
// the identity of the server. The dialer names E in its first handshake
// frame and computes its MACs over it. The side that accepted the
// connection refuses an E it does not serve (Config.Endpoints for the
// agent, HubOptions.Endpoints for a Hub; when none are configured, the
// loopback address and port the connection arrived on, dialled directly,
// with wss exactly when the connection uses TLS) and computes its MACs
// over the E it accepted. Neither side computes a MAC over an E it has
// not checked: the dialer uses its own, the acceptor only one it serves.
// The kernel, not the peer, says where a connection arrived, which makes
// the loopback default sound; configured endpoints replace it rather
// than add to it, because behind a proxy or a sandbox's port forwarding a
// connection can arrive on a loopback address from far away.
//
// This is what stops a relay. A party that the agent or the controller
// was led to dial (a wrong URL, a DNS takeover, a hostile proxy) could
// otherwise pass each side's messages to the other, as both sides saw
// proofs made for this very exchange, and then speak on the
// authenticated connection itself. Relayed as it is, the E in the
// messages names the relay, which the other side does not serve;
// rewritten to an E it serves, the two sides' MACs are over different
// bytes and do not match. A relay that both sides mean to use (one that
// pairs a controller with a container's agent and copies frames without
// reading them) works when the side that accepts lists the relay's URL,
// the URL the dialer dials, among its endpoints: the agent in forward
// mode, the Hub, or a controller that takes a reverse-mode agent's
// connection from the relay. TLS channel binding would not serve here:
// TLS ends at Google's front end on Cloud Run, and at such a relay.
//
// Through a Relay, the connection is in reverse mode and E is the
// relay's /agent URL, the one the agent dialled (its query, which carries
// the ID, is not part of E). DialRelay, the controller, accepts exactly
// the /agent URL of the relay URL it was given, and the ID it asked for:
// an agent that reached the relay under another name, a relay the client
// names differently (another host name for the same relay), or an agent
// of another container is refused, and so is a party that queued itself
// under the ID without the secret.
//
// Sessions. The controller picks session IDs (non-zero, not in use on the
// connection) and sends OPEN. The agent answers STARTED once the process
// runs (the attach is registered, the forward's connection is made), or
// ERROR if it cannot start; ERROR ends the session. An OPEN of a kind the
// agent does not know is answered with ERROR 6 (not supported), so that a
// controller can try later kinds (agents older than forwards closed the
// connection instead); the fields of one kind given to another (cmd to an
// attach, port to an exec) are a violation. Nothing else for the session
// comes before STARTED: output, STDOUT_CLOSE, CREDIT or EXIT first is a
// violation. After the last output the agent sends EXIT, which ends the
// session (or, for an attach it gives up on or a forward whose socket
// failed, ERROR; see Processes and Forwards). CLOSE ends it from the
// controller's side: the agent sends SIGHUP to the process group, SIGKILL
// 2 s later if it lingers, and sends no EXIT. Frames for a session ID that
// is not live are ignored (they race with the session's end), except
// OPEN, which starts one; a frame the receiver never accepts (one sent in
// the wrong direction, or CREDIT for a stream the receiver itself sends)
// is a violation whatever its session.
//
// Control sessions. Three kinds act on the main command and carry no
// input: "start" starts a main command the agent holds back
// (Config.Gate), "status" reads its state, and "signal" sends it the
// signal given in the OPEN. Each is answered STARTED, then (status only)
// a JSON object on STDOUT with the fields of Status (State, ExitCode,
// Signal, RestartCount, StartedAt and FinishedAt in RFC 3339, Health
// with Status and FailingStreak, or null), then EXIT 0; or, when the
// start or the signal fails, ERROR with the reason (a signal to a main
// command not yet started or already exited is kind 4, conflict). Any
// field of another kind in their OPEN is a violation. Agents older than
// these kinds answer ERROR 6, which is how a controller tells them
// apart: the protocol version stays 1. Client.Signal then falls back to
// an attach session that only signals.
//
// On an attach session, SIGNAL goes to the main command, as docker kill
// reaches an init's child, and RESIZE resizes the main command's terminal
// if it has one (else it is ignored); the rows and cols of an attach OPEN
// set that terminal's size. CLOSE of an attach only detaches.
//
// Forwards. An OPEN of kind "forward" has the agent connect to TCP port
// "port" on 127.0.0.1 in the container (IPv4 loopback only: a server
// that listens on ::1 alone is not reached), with a 5 s timeout. Input is
// implied, whatever "stdin" says; exec fields, rows and cols are a
// violation. A port outside 1..65535 is answered ERROR 1 (invalid
// argument), a refused connection ERROR 2 (not found: "nothing listens
// on port N"), any other failure ERROR 0. Once connected the agent sends
// STARTED, and from then on STDIN carries bytes to the socket and STDOUT
// bytes from it, under flow control as any session's streams: the agent
// credits input as the socket takes it and reads the socket only as far
// as the controller's credit goes, so each side's slow reader holds the
// other back and nothing is dropped. STDIN_CLOSE shuts the socket's
// write side (shutdown(2)) once the input before it is written. When the
// socket's read side reaches EOF the agent sends STDOUT_CLOSE, after
// which the controller may still send input; once the port has shut its
// side and the controller's STDIN_CLOSE has been carried out, in either
// order, the agent sends EXIT with code 0 and signal 0 and closes the
// socket. A failed read from the socket (a reset) is ERROR 0 at once,
// after the output that came before it; a failed write stops crediting
// input, and ERROR 0 follows once the read side has ended too. CLOSE
// ends a forward at once, and the agent closes the socket as the kernel
// closes a TCP socket a program has closed: it still writes the input
// that arrived before CLOSE, shuts the write side, and reads and discards
// the port's output until its EOF, for at most 5 s in all and while the
// connection lasts, the forward counting against the connection's
// sessions until then. The end of the connection, and Agent.Close, close
// every forward's socket at once. SIGNAL and RESIZE on a forward, and
// STDOUT_CLOSE on any other session, are violations: they have no
// meaning there, and only a broken peer sends them.
//
// Flow control. Every stream of every session has a window: the receiver
// announces it (OPEN for output, STARTED for input) and the sender may have
// at most that many bytes sent but not yet credited. The receiver sends
// CREDIT as its consumer drains what arrived. A slow consumer therefore
// stops the sender, which stops reading from the process, whose writes
// then block: nothing is dropped and memory per stream is bounded by the
// window. Sending beyond the credit, or CREDIT beyond the window, is a
// protocol violation.
//
// Errors. A frame that is malformed, oversize, of an unknown type, sent in
// the wrong direction or breaking flow control closes the connection
// (WebSocket close without handshake). Closing a connection ends all its
// sessions as CLOSE does, except that a forward's socket is closed at
// once; the main command is never affected.
//
// # Threat model
//
// Assets: the ability to run commands in the container and read its
// processes' input and output, the per-container secret, and the
// availability of the controller (for a Hub, every container's) and of
// the container itself.
//
// Attackers considered: anyone who can reach the agent's listening port
// (forward mode), the Hub's URL (reverse mode) or a relay's; the relay
// itself, or whoever runs it; anyone who can make the
// agent or a backend dial a URL of theirs (a wrong URL, a DNS takeover, a
// hostile proxy); a passive observer of the network path; and an
// authenticated peer, either a controller or, since root in the
// container can read the secret, anything in the container standing in
// for its agent.
//
//   - The secret never crosses the wire: both sides prove knowledge of it
//     with HMAC-SHA256 over fresh 32-byte random nonces from both sides, so
//     a recorded exchange cannot be replayed and reveals nothing about the
//     secret beyond what HMAC does. The mode and a role label are part of
//     the MAC, so a proof taken from one side or one direction is useless
//     elsewhere, and MACs are compared in constant time. Secrets shorter
//     than 16 bytes are refused; use 32 random bytes.
//   - The controller proves first. In reverse mode the Hub therefore hands
//     a MAC to anyone who connects and names an endpoint it serves and a
//     container ID it knows, and that MAC lets the peer test guesses of
//     the secret offline. This is harmless for a random secret of 16 bytes
//     or more and fatal for a password: secrets must come from a random
//     generator. Through a relay, DialRelay likewise hands its MAC to
//     whatever waits under the container's ID.
//   - A peer without the secret learns that an agent speaks this protocol,
//     a random nonce, and in reverse mode the container ID and the
//     endpoint the agent sends (which the Hub operator already knows). It
//     gets no session and no reason for the refusal. Refusals are logged
//     at Debug, since anyone can cause them at will.
//   - Authentication is mutual and bound to the endpoint the dialer
//     dialled (see Endpoint above): an impostor Hub or controller that the
//     agent or a backend was led to dial cannot make the agent serve it,
//     even by relaying the handshake to the real peer, and an impostor
//     agent cannot make a backend trust its output. A peer that dialled
//     an endpoint the accepting side does not serve is refused before any
//     MAC is made for it. This holds as long as the impostor cannot answer
//     at the real endpoint itself, which is what TLS is for.
//   - The handshake authenticates the peer, not the bytes that follow: an
//     active attacker on the path could take over an authenticated
//     connection. So wherever the connection leaves the machine it must run
//     over TLS (wss://); Dial, DialRelay, Connect and ConnectRelay refuse
//     ws:// to anything but a loopback address unless told Insecure, and
//     follow no redirect, which could lead them elsewhere. On Cloud Run,
//     Google's front end terminates TLS for the service URL.
//   - An authenticated peer cannot crash the other side or make it wait
//     for ever, whatever frames it sends in whatever order: a violation
//     closes that connection only. What it can make the other side hold is
//     bounded (frame sizes, windows, 1024 sessions per connection,
//     forwards that are still closing included, and one socket per
//     forward). It can, by design, run any command in the container and
//     connect to any TCP port on its loopback interface, including
//     servers that listen there so as to be reachable only from inside
//     (a controller), or fail any session (an agent).
//   - Before authenticating, a peer can make either side read or buffer
//     at most one handshake frame (at most 1316 bytes of payload), and a
//     longer one is refused from its header.
//   - An unauthenticated peer holds a connection for at most the time the
//     http.Server in front of the agent or Hub allows for a request's
//     headers (its ReadHeaderTimeout, which must be set; gantry-agent's is
//     10 s) and then the handshake timeout (10 s). Agent.ServeHTTP,
//     Hub.ServeHTTP and Relay.ServeHTTP answer a request that is not a
//     WebSocket upgrade offering the subprotocol with an HTTP error and
//     close its connection, rather than upgrade it or leave it idle; an
//     upgraded peer that does not complete the handshake in time is cut
//     off without a close handshake; and every close handshake, with any
//     peer, is cut off after 2 s, as the WebSocket library would otherwise
//     wait for ever on a peer that declares a huge frame and stalls.
//   - An unauthenticated flood of connections within those times is not
//     rate limited by the agent; that is left to the platform's front end.
//     Each such connection costs the agent one file descriptor while it
//     lasts.
//   - In reverse mode each dial of the Hub or relay is bounded
//     (ConnectOptions.DialTimeout), so an address that accepts
//     connections but never answers only delays the next attempt.
//   - A relay, or whoever runs it, sees what passes through it in the
//     clear, as TLS ends there as at any front end: the container IDs and
//     the sessions' data. It never learns the secret and cannot
//     authenticate as either side; but the handshake authenticates the
//     peers, not the bytes that follow (above), so a relay that turned
//     hostile could take a connection over after its handshake, as an
//     attacker on the path could. Run a relay only where a TLS front end
//     would be trusted (gantry's own, in the user's project); keeping the
//     session bytes from the relay as well would take a channel keyed
//     from the handshake, which version 1 does not have. An agent's idle
//     connection waits for its client with no handshake deadline, which
//     is the agent's own choice of peer; the agent pings the relay and
//     drops the connection when it stops answering, and once AUTH begins
//     to arrive the rest of the handshake has the usual 10 s.
//   - Whoever can reach a relay's /agent URL can queue connections under
//     any container ID, up to RelayOptions.MaxIdlePerID: clients that meet
//     them fail their handshake, and an ID whose idle connections are all
//     taken refuses its genuine agent too. That is availability, not
//     access: deny the URL to others (for example by Cloud Run's IAM
//     invoker check), and a client that fails can dial again to meet the
//     next idle connection. The relay bounds what it holds: idle
//     connections per ID and in all, clients, and 4 KiB that an agent may
//     send before its client arrives; RelayOptions.Authorize, or the
//     platform in front of the relay, decides which clients may ask at
//     all, refusing the others before any upgrade.
//   - Once the main command has exited, neither an attached client that
//     stops reading nor a process left behind that keeps writing can keep
//     the agent, and with it the container, alive (see Processes); nor,
//     once the agent is closed, can an exec'd process that ignores SIGHUP.
//   - The secret reaches the agent through its environment or a file;
//     the agent removes GANTRY_AGENT_ variables from the environment of the
//     main command and every exec. Processes in the container running as
//     the same user can still read the agent's own environment through
//     /proc; the secret protects the container from the outside, not from
//     itself.
//   - gantry-agent's -ingress bridge is not part of the protocol: it
//     copies bytes between the platform's PORT and the command's port on
//     127.0.0.1, and so exposes exactly the port the container publishes,
//     behind whatever guards the platform's ingress (on Cloud Run, IAM on
//     the instance's URL). It carries no session and needs no secret;
//     the agent's own sessions never pass through it.
//   - Health probes run with the main command's environment and user,
//     as an exec does: a healthcheck is the container owner's command.
//
// # Processes
//
// An exec gets the container's environment plus its own, its working
// directory and user (Docker's "user", "uid", "user:group" or "uid:gid",
// resolved against the container's /etc/passwd and /etc/group), and its
// own process group, or with a TTY its own session with a real pty as
// controlling terminal. A process that cannot start is an ERROR with the
// reason, never an exit code. Closing the input of a TTY exec sends the
// terminal's end-of-file character (Ctrl-D).
//
// An exec ends when its process has exited and its output streams have
// been silent for 0.2 s, so a background process that inherited them and
// keeps writing holds the session open until it stops (docker exec
// behaves the same, and waits on a silent one too). When a session is
// closed, or its connection or the agent is, its process group gets
// SIGHUP and, 2 s later, SIGKILL; Agent.Close (which gantry-agent calls
// once the main command has exited) returns only after that, so no
// exec'd process that ignores SIGHUP outlives the agent. A process that
// left its session's process group (a daemon that called setsid), or one
// still in the group after the group's leader has exited, is not
// signalled: as PID 1 the agent's exit ends it with the container, but an
// agent that is not PID 1 leaves it running.
//
// Attached sessions receive the main command's output from the moment
// they attach. Output goes to the agent's own stdout and stderr byte for
// byte and to every attached session; while the main command runs, a
// slow attached client slows it rather than lose output, as with docker
// attach. Once it has exited, attached sessions have 5 s to take the
// rest of its output; one that has not is ended with an ERROR
// (gantry.ErrResourceExhausted from Client.Attach) instead of the exit
// status, so that a stalled client cannot keep the agent, and the
// container, alive. The agent's own stdout and stderr still get every
// byte the main command wrote; output from processes it left behind is
// read for at most 0.2 s more.
//
// With Config.Tty the main command runs in its own session with a pty as
// controlling terminal; its output is the agent's stdout and attached
// sessions' STDOUT, and with OpenStdin attached sessions write to it
// (with StdinOnce the first one's STDIN_CLOSE sends Ctrl-D). Without it
// the main command has no terminal and RESIZE on an attach is ignored.
//
// # Restarts, the gate, status and health
//
// With Config.Restart the agent restarts the main command as Docker
// restarts a container: on-failure after a non-zero exit (at most
// MaxRetries times when it is positive), always and unless-stopped
// after every exit, no (or empty) never; after 100 ms, doubling at each
// restart up to 1 minute, and back to 100 ms once a run lasted 10 s.
// Each restart is a fresh process with the same Cmd, Env and Dir (with
// Tty a fresh terminal, with OpenStdin a fresh input). A main command
// that was signalled through the agent (Agent.Signal, which gantry-agent
// calls for every signal it passes on, such as the platform's SIGTERM;
// a controller's Client.Signal; SIGNAL on an attach) is not restarted,
// whatever its exit, as Docker does not restart what docker stop or
// docker kill ended; a signal while a restart is pending calls it off.
// Meanwhile the state is "restarting" and attaching is a conflict. An
// attached session ends with the run it attached to, with that run's
// exit status; exec sessions and forwards carry on across restarts.
// Agent.Wait returns the last run's result once the policy starts the
// main command no more, and only then is the record written: one for
// the agent's life, its counts over every run. A restart that cannot
// start the command (it has gone) ends the agent as Start's error would
// a shell: 127, 126 or 125, the reason on stderr.
//
// With Config.Gate the agent serves sessions but holds the main command
// back, in state "created", until a controller's StartMain (or
// Agent.StartMain); execs and forwards work meanwhile, attaching and a
// controller's signal are conflicts. A signal that ends a process,
// passed to Agent.Signal before then (the platform stopping the
// container), ends the agent as if the main command had been killed by
// it, without running it.
//
// Status reports the state ("created", "running", "restarting" and,
// briefly before the agent exits, "exited"), the last run's exit code
// and signal, the restart count, the current run's start and the last
// run's end, and the health.
//
// With Config.Healthcheck the agent runs Docker's health monitor on
// each run, from "starting" with a streak of 0: the first probe an
// Interval after the start, each next one an Interval after the last
// ended (defaults as gantry.Healthcheck documents: 30 s, 30 s timeout,
// 3 retries, no start period). A probe passes when a CMD or CMD-SHELL
// command (run as an exec with no input: the container's environment
// and working directory, its own process group, killed when it outlasts
// Timeout or the run ends) exits 0, when a TCP connection to
// 127.0.0.1:TCPPort opens, or when a GET of HTTPPath on 127.0.0.1:Port
// (PORT from the environment without one) answers 200 to 399, redirects
// not followed. A pass makes it healthy and sets the failing streak to
// 0; a failure adds to the streak, except before any pass in
// StartPeriod; Retries failures in a row make it unhealthy. Once the run
// ends it reads unhealthy, the streak kept, as Docker's does.
//
// With Config.Record the agent counts the lines it wrote on each stream
// and, once the main command has exited and both streams are drained,
// writes the record (see Record) as the last line of stderr, after a
// '\n' if stderr's last line had none; nothing is written to either
// stream after it. The gantry-agent command signs it when it has a secret
// (LineCounter.SignRecords): an HMAC under the container's secret over
// its ID, the run and every field, so that a reader holding the secret
// tells the record from a line the main command printed to look like one
// (Record.Verify), or one copied from another container or run. With a
// restart policy the record comes once, after the last run, with the
// restart count, the final health and the last run's times (record
// version 2).
package agent
