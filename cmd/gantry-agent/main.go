// Command gantry-agent wraps a container's real command so that gantry can
// exec into the container and attach to it on platforms without an exec
// API, such as Cloud Run.
//
//	gantry-agent [flags] -- CMD ARGS...
//
// It starts CMD, forwards every catchable signal to it, reaps orphaned
// processes (it makes itself a child subreaper, which PID 1 already is),
// passes CMD's stdout and stderr through byte for byte, and exits with
// CMD's exact exit code (128+N when signal N killed it). If CMD cannot be
// started it exits 127 (not found) or 126 (not executable), as a shell
// does, and 125 for its own errors.
//
// With -listen it also serves sessions in forward mode (controllers dial
// it), to controllers that dialled one of the -endpoint URLs (by default
// its own loopback address); with -connect it dials a gantry Hub in
// reverse mode and keeps that connection up; with -relay it keeps an
// idle connection open at a relay (agent.Relay, the URL given by
// agent.RelayAgentURL) for clients to claim, one after another. Without
// any of them it is only an init process and costs a few milliseconds of
// start-up.
//
// A relay run as a Cloud Run service with IAM takes only callers with a
// Google ID token for its URL. With -relay-token metadata the agent
// fetches one before each dial of the relay from the metadata server
// (GET /computeMetadata/v1/instance/service-accounts/default/identity
// with the audience the -relay URL's scheme, https for wss, and host),
// sends it as Authorization: Bearer, and reuses it until 5 minutes before
// it expires. GCE_METADATA_HOST (host:port) names another metadata
// server, as for Google's client libraries.
//
// Every flag can also be given as an environment variable (GANTRY_AGENT_
// and the flag's name in upper case, with - as _); these variables, and
// the secret, are removed from the environment CMD and every exec see.
//
// With -tty, CMD runs in a terminal (a pty) whose output is passed
// through as stdout, as docker run -t does; attached sessions resize it
// and, with -stdin, write to it.
//
// With -record, the agent counts the lines it writes on each stream and,
// once CMD has exited and its output is drained, writes one JSON line to
// stderr, the log completeness record (see agent.Record), as the last
// thing on either stream; also when CMD cannot be started (the agent's
// message about it is counted as stderr lines) and for the agent's own
// errors after its flags are read.
//
// With -restart POLICY (no, on-failure[:N], always or unless-stopped, as
// docker run --restart takes it) the agent starts CMD again after it
// exits, by Docker's rules and after Docker's delays (100 ms, doubling at
// each restart up to a minute, back to 100 ms after a run of 10 s); a
// CMD that was signalled through the agent (a signal it passed on, such
// as the platform's SIGTERM, or a controller's) is not restarted. It
// exits, with the last run's exit code, once the policy starts CMD no
// more; with -record the one record covers every run (see agent.Record).
//
// With -gate (and -listen, -connect or -relay) the agent serves sessions
// but starts CMD only when a controller calls agent.Client.StartMain;
// execs work meanwhile. A SIGTERM (or another signal that ends a
// process) before that ends the agent with 128+N without running CMD.
//
// With -healthcheck JSON the agent runs Docker's health monitor on each
// run of CMD; the JSON is a gantry.Healthcheck with its Go field names
// and durations in nanoseconds, for example
//
//	-healthcheck '{"Test":["CMD-SHELL","wget -q -O- localhost:8080/healthz"],"Interval":5000000000,"Retries":3}'
//
// Controllers read the health, with the state, restart count and last
// exit, from agent.Client.Status, and the record ends with it.
//
// With -ingress PORT the agent takes the platform's ingress for CMD: it
// listens on all interfaces on the port in $PORT (Cloud Run sets it; an
// emulator may set another) and copies each connection to and from PORT
// on 127.0.0.1, dialling again for up to 5 s while CMD's server is not
// yet listening (then it closes the connection). CMD and every exec see
// PORT set to -ingress's port. Without $PORT, or with $PORT equal to it,
// no bridge runs.
//
// With -lifeline ADDR, it connects to the install sidecar's address and
// holds that connection until it exits, which tells the sidecar to exit
// too; if the sidecar cannot be reached within 10 s, it carries on
// without (logged with -v).
//
//	gantry-agent install [-ready ADDR] [-wait DUR] DEST
//
// is the sidecar's side: it copies its own executable to DEST (mode
// 0755, atomically), then with -ready listens on ADDR (TCP) so that a
// startup probe succeeds, and exits 0 once the lifeline connection
// closes, on SIGTERM or SIGINT, or when no lifeline came within -wait
// (default 60s). It exits 125 if it cannot copy or listen.
//
// The secret comes from GANTRY_AGENT_SECRET or the file named by
// -secret-file; it must be at least 16 bytes. See package
// github.com/gantryhq/gantry/agent for the protocol and the threat model.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	listen, addrFile, tlsCert, tlsKey string
	endpoints                         string
	connect, relay, caFile            string
	relayToken                        string
	insecure                          bool
	id, secretFile                    string
	openStdin, stdinOnce, verbose     bool
	tty, record                       bool
	lifeline                          string
	gate                              bool
	restart                           gantry.RestartPolicy
	healthcheck                       *gantry.Healthcheck
	ingress                           int
	cmd                               []string
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("gantry-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, name, usage string) {
		fs.StringVar(p, name, getenv(envName(name)), usage)
	}
	boolean := func(p *bool, name, usage string) {
		fs.BoolVar(p, name, getenv(envName(name)) == "true" || getenv(envName(name)) == "1", usage)
	}
	str(&o.listen, "listen", "serve sessions in forward mode on this address (host:port)")
	str(&o.addrFile, "addr-file", "write the address -listen bound to this file")
	str(&o.tlsCert, "tls-cert", "with -listen: serve TLS with this PEM certificate")
	str(&o.tlsKey, "tls-key", "with -listen: the PEM key of -tls-cert")
	str(&o.endpoints, "endpoint", "with -listen: the URLs controllers dial to reach this agent, comma-separated; others are refused (default: only the loopback address it listens on, dialled directly)")
	str(&o.connect, "connect", "serve sessions in reverse mode by dialing this ws:// or wss:// URL")
	str(&o.relay, "relay", "serve sessions in reverse mode through a relay by keeping an idle connection open at this ws:// or wss:// URL (the relay's /agent?id=ID)")
	str(&o.relayToken, "relay-token", "with -relay: \"metadata\" authenticates every dial with a Google ID token for the relay's origin, from the metadata server (at GCE_METADATA_HOST if set), as Authorization: Bearer")
	str(&o.caFile, "ca", "with -connect or -relay: trust the PEM certificates in this file")
	boolean(&o.insecure, "insecure", "with -connect or -relay: allow ws:// to a host that is not a loopback address")
	str(&o.id, "id", "the container ID announced in reverse mode (to the hub, or through the relay to its clients)")
	str(&o.secretFile, "secret-file", "read the secret from this file instead of GANTRY_AGENT_SECRET")
	boolean(&o.openStdin, "stdin", "give CMD a standard input that attached sessions write to")
	boolean(&o.stdinOnce, "stdin-once", "close CMD's standard input when the first attached session closes its own")
	boolean(&o.tty, "tty", "run CMD in a terminal, its output passed through as stdout")
	boolean(&o.record, "record", "count the lines written on stdout and stderr and end stderr with the log completeness record")
	str(&o.lifeline, "lifeline", "hold a connection to the install sidecar at this address (host:port) until the agent exits")
	boolean(&o.gate, "gate", "start CMD only when a controller calls StartMain (needs -listen, -connect or -relay)")
	var restart, healthcheck, ingress string
	str(&restart, "restart", "restart policy, as docker run --restart: no, on-failure[:N], always or unless-stopped")
	str(&healthcheck, "healthcheck", `Docker's health monitor: a gantry.Healthcheck as JSON with its Go field names, durations in nanoseconds (e.g. {"Test":["CMD-SHELL","curl -f localhost:8080"],"Interval":1000000000})`)
	str(&ingress, "ingress", "CMD's port: bridge the port in $PORT (the platform's) on all interfaces to this port on 127.0.0.1, and give CMD PORT set to it")
	boolean(&o.verbose, "v", "log the agent's own diagnostics to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gantry-agent [flags] -- CMD ARGS...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.restart, err = parseRestart(restart); err != nil {
		return nil, err
	}
	if o.healthcheck, err = parseHealthcheck(healthcheck); err != nil {
		return nil, err
	}
	if ingress != "" {
		if o.ingress, err = strconv.Atoi(ingress); err != nil || gantry.ValidatePort(o.ingress) != nil {
			return nil, fmt.Errorf("-ingress %q: must be a port, 1 to 65535", ingress)
		}
	}
	o.cmd = fs.Args()
	if len(o.cmd) == 0 {
		fs.Usage()
		return nil, errors.New("no command given")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if o.connect != "" && o.relay != "" {
		return nil, errors.New("-connect and -relay exclude each other")
	}
	switch {
	case o.relayToken != "" && o.relayToken != "metadata":
		return nil, fmt.Errorf("-relay-token %q: the only source is \"metadata\"", o.relayToken)
	case o.relayToken != "" && o.relay == "":
		return nil, errors.New("-relay-token goes with -relay")
	}
	if o.gate && o.listen == "" && o.connect == "" && o.relay == "" {
		return nil, errors.New("-gate needs -listen, -connect or -relay: nothing else could start the command")
	}
	return o, nil
}

// parseRestart reads a restart policy in docker run --restart's syntax.
func parseRestart(s string) (gantry.RestartPolicy, error) {
	if s == "" {
		return gantry.RestartPolicy{}, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p := gantry.RestartPolicy{Name: name}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return p, fmt.Errorf("-restart %q: the maximum retry count must be a number", s)
		}
		p.MaxRetries = n
	}
	if name == "" {
		return p, fmt.Errorf("-restart %q: no policy name", s)
	}
	spec := gantry.Spec{Image: "gantry-agent", RestartPolicy: p}
	if err := spec.Validate(); err != nil {
		return p, fmt.Errorf("-restart %q: %v", s, err)
	}
	return p, nil
}

// parseHealthcheck reads a gantry.Healthcheck from JSON.
func parseHealthcheck(s string) (*gantry.Healthcheck, error) {
	if s == "" {
		return nil, nil
	}
	var hc gantry.Healthcheck
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hc); err != nil {
		return nil, fmt.Errorf("-healthcheck: %v", err)
	}
	if dec.More() {
		return nil, errors.New("-healthcheck: more than one JSON value")
	}
	spec := gantry.Spec{Image: "gantry-agent", Healthcheck: &hc}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("-healthcheck: %v", err)
	}
	return &hc, nil
}

func envName(flagName string) string {
	return "GANTRY_AGENT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "install" {
		return install(args[1:], stderr)
	}
	o, err := parse(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gantry-agent: %v\n", err)
		return 125
	}
	// With -record everything the agent writes goes through the
	// counters: CMD's output, its own messages and its log.
	outw, errw := stdout, stderr
	var outc, errc *agent.LineCounter
	if o.record {
		outc, errc = agent.NewLineCounter(stdout), agent.NewLineCounter(stderr)
		outw, errw = outc, errc
	}
	// fail reports why CMD did not run and returns code.
	fail := func(code int, err error) int {
		fmt.Fprintf(errw, "gantry-agent: %v\n", err)
		if o.record {
			agent.WriteRecord(outc, errc, agent.Record{ExitCode: code})
		}
		return code
	}
	serving := o.listen != "" || o.connect != "" || o.relay != ""
	var secret []byte
	if serving {
		if secret, err = readSecret(o, getenv); err != nil {
			return fail(125, err)
		}
		if o.record {
			// A reader holding the secret tells the record from a line
			// that only looks like one; Cloud Run names the run.
			errc.SignRecords(secret, o.id, getenv("CLOUD_RUN_EXECUTION"))
		}
	}
	log := zap.NewNop()
	if o.verbose {
		log = newLogger(errw)
	}
	if o.lifeline != "" {
		stop := agent.HoldLifeline(o.lifeline, log)
		defer stop()
	}

	// Subscribe before the command starts so no signal slips past.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)

	env := agent.CleanEnv(os.Environ())
	if o.ingress != 0 {
		port := strconv.Itoa(o.ingress)
		// The command serves on its own port; the platform's is the
		// bridge's.
		if p := getenv("PORT"); p != "" && p != port {
			in, err := startIngress(":"+p, o.ingress, log)
			if err != nil {
				return fail(125, fmt.Errorf("-ingress: listening on the platform's port: %w", err))
			}
			defer in.Close()
		}
		env = append(withoutVar(env, "PORT"), "PORT="+port)
	}

	log.Debug("starting the main command", zap.Strings("cmd", o.cmd), zap.Bool("tty", o.tty), zap.Bool("record", o.record))
	a, err := agent.Start(agent.Config{
		Cmd:         o.cmd,
		Env:         env,
		Secret:      secret,
		ID:          o.id,
		Endpoints:   splitList(o.endpoints),
		Stdin:       stdin,
		Stdout:      outw,
		Stderr:      errw,
		OpenStdin:   o.openStdin,
		StdinOnce:   o.stdinOnce,
		Tty:         o.tty,
		Record:      o.record,
		PassThrough: !serving,
		Reap:        becomeSubreaper() || os.Getpid() == 1,
		Restart:     o.restart,
		Gate:        o.gate,
		Healthcheck: o.healthcheck,
		Logger:      log,
	})
	if err != nil {
		switch {
		case errors.Is(err, gantry.ErrNotFound):
			return fail(127, err)
		case errors.Is(err, gantry.ErrPermissionDenied):
			return fail(126, err)
		}
		return fail(125, err)
	}
	go forwardSignals(a, sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var srv *http.Server
	if o.listen != "" {
		srv, err = listen(o, a)
		if err != nil {
			fmt.Fprintf(errw, "gantry-agent: %v\n", err)
		}
	}
	if o.connect != "" || o.relay != "" {
		copts, err := connectOptions(o, getenv)
		if err != nil {
			fmt.Fprintf(errw, "gantry-agent: %v\n", err)
		} else {
			go func() {
				connect, url := a.Connect, o.connect
				if o.relay != "" {
					connect, url = a.ConnectRelay, o.relay
				}
				if err := connect(ctx, url, copts); err != nil {
					fmt.Fprintf(errw, "gantry-agent: %v\n", err)
				}
			}()
		}
	}

	res := a.Wait()
	cancel()
	if srv != nil {
		srv.Close()
	}
	a.Close()
	return res.ExitCode
}

// newLogger logs the agent's own diagnostics to w, in zap's development
// format.
func newLogger(w io.Writer) *zap.Logger {
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(w), zapcore.DebugLevel)
	return zap.New(core, zap.Development(), zap.AddCaller())
}

// install is the install sidecar's command.
func install(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gantry-agent install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ready := fs.String("ready", "", "once the copy is in place, listen on this TCP address (host:port) for a startup probe and the lifeline")
	wait := fs.Duration("wait", agent.DefaultInstallWait, "with -ready: exit if no lifeline came within this time")
	verbose := fs.Bool("v", false, "log diagnostics to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gantry-agent install [-ready ADDR] [-wait DUR] DEST")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 125
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 125
	}
	log := zap.NewNop()
	if *verbose {
		log = newLogger(stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := agent.Install(ctx, agent.InstallOptions{Dest: fs.Arg(0), Ready: *ready, Wait: *wait, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "gantry-agent: %v\n", err)
		return 125
	}
	return 0
}

// withoutVar returns env without the variable key.
func withoutVar(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// readSecret reads the secret from -secret-file or GANTRY_AGENT_SECRET.
func readSecret(o *options, getenv func(string) string) ([]byte, error) {
	var s []byte
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("reading the secret: %w", err)
		}
		s = []byte(strings.TrimRight(string(b), "\r\n"))
	} else {
		s = []byte(getenv("GANTRY_AGENT_SECRET"))
	}
	if len(s) < agent.MinSecretLen {
		return nil, fmt.Errorf("the secret (GANTRY_AGENT_SECRET or -secret-file) must be at least %d bytes, got %d", agent.MinSecretLen, len(s))
	}
	return s, nil
}

// forwardSignals passes every catchable signal on to the command, except
// SIGCHLD (the agent's own business), SIGURG (Go's runtime uses it to
// preempt goroutines, so it cannot be told apart) and SIGPIPE (raised by
// the agent's own writes, not meant for the command).
func forwardSignals(a *agent.Agent, sigs <-chan os.Signal) {
	for sig := range sigs {
		s, ok := sig.(syscall.Signal)
		if !ok || s == syscall.SIGCHLD || s == syscall.SIGURG || s == syscall.SIGPIPE {
			continue
		}
		a.Signal(s)
	}
}

func listen(o *options, a *agent.Agent) (*http.Server, error) {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, err
	}
	if o.addrFile != "" {
		if err := os.WriteFile(o.addrFile, []byte(ln.Addr().String()), 0o600); err != nil {
			ln.Close()
			return nil, err
		}
	}
	// Every request the agent answers without upgrading closes its
	// connection; IdleTimeout backs that up, so that no connection can sit
	// idle between requests holding a file descriptor. A WebSocket's
	// handshake has a timeout of its own.
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
	go func() {
		if o.tlsCert != "" {
			srv.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			srv.Serve(ln)
		}
	}()
	return srv, nil
}

func connectOptions(o *options, getenv func(string) string) (*agent.ConnectOptions, error) {
	copts := &agent.ConnectOptions{Insecure: o.insecure}
	if o.relayToken == "metadata" {
		tok, err := newMetadataToken(o.relay, getenv)
		if err != nil {
			return nil, err
		}
		copts.Header = tok.header
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading -ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s holds no PEM certificate", o.caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		copts.HTTPClient = &http.Client{Transport: tr}
	}
	return copts, nil
}
