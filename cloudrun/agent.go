package cloudrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/imageconfig"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/idtoken"
	"google.golang.org/protobuf/encoding/protojson"
)

// AgentConfig puts the gantry agent into every container a Runtime
// creates, as its init, without rebuilding the user's image. The agent
// makes true on Cloud Run what a job alone cannot: exec and attach (with
// a terminal, resizes and input), any signal, Docker's stop timeouts, an
// init's exit codes for a command that cannot start, and logs that are
// known to be complete.
//
// How it gets there: the job gains an in-memory volume and a sidecar
// running Image, which copies the static agent binary into that volume
// and answers a TCP startup probe once it has; the user's container
// depends on the sidecar, so it starts only then, with the agent as its
// entrypoint and the real command (the spec's, or the image's ENTRYPOINT
// and CMD read from its registry) after "--". A Cloud Run job takes no
// inbound traffic, so the agent dials out to Relay, where the Runtime
// meets it; each side proves to the other that it holds the container's
// secret, and the relay copies their messages without reading them.
type AgentConfig struct {
	// Image is the agent image, as published by cmd/gantry-agent-image
	// (a digest reference is best: it never changes under a job).
	// Required.
	Image string
	// Relay is the URL of a gantry relay (cmd/gantry-relay, for example
	// deployed as a Cloud Run service) that both the agents and this
	// Runtime reach. Give Relay or RelayImage.
	Relay string
	// RelayImage, instead of Relay, has the Runtime deploy the relay
	// itself: the image published with cmd/gantry-agent-image -program
	// relay, run as the Cloud Run service RelayService in Config.Region
	// (created on the first Create that needs it, or updated to this
	// image; shared by every Runtime of the project and region, and left
	// alone by Sweep: DeleteRelay removes it). Its invokers need an ID
	// token: the agents take theirs from the metadata server, so the
	// containers' service account needs roles/run.invoker on it.
	RelayImage string
	// RelayService names the deployed relay's service; empty means
	// DefaultRelayService.
	RelayService string
	// IDToken returns the bearer token the Runtime presents to the relay
	// at audience (its URL): an IAM ID token, as a Cloud Run service asks
	// of its invokers. Nil means Google's ID tokens for the Runtime's
	// Application Default Credentials.
	IDToken func(ctx context.Context, audience string) (string, error)
	// Registry configures how image configs are read from registries
	// (credentials, transport). Nil means Google's keychain (Artifact
	// Registry) and the local Docker credentials (Docker Hub and others).
	Registry []remote.Option
}

// NoAgentLabel, set to "true" among a Spec's labels, creates that
// container without the agent: it runs exactly its own command, and what
// needs the agent (exec, attach, signals, stop timeouts, complete logs)
// is refused with ErrNotSupported for it.
const NoAgentLabel = "cloudrun.gantry.dev/no-agent"

// The shape of an agent-wrapped job.
const (
	agentVolume    = "gantry-agent"
	agentContainer = "gantry-agent"
	mainContainer  = "main"
	agentDir       = "/gantry"
	agentBinary    = agentDir + "/gantry-agent"
	agentInImage   = "/gantry-agent"
	secretEnv      = "GANTRY_AGENT_SECRET"
	// agentEnvPrefix starts the variables that configure the agent, which
	// a spec under the agent may not set.
	agentEnvPrefix = "GANTRY_AGENT_"
	// The sidecar's share of the instance: it copies a file and then
	// waits on a socket.
	sidecarCPU = "100m"
	sidecarMiB = 64
	// The sidecar's readiness port is drawn from below Linux's ephemeral
	// range, so that it meets neither outgoing connections nor, but by
	// rare chance, the user's own servers.
	minReadyPort, maxReadyPort = 20000, 32767
)

// relayPairTimeout bounds how long a call that needs the agent waits for
// it at the relay: a container just started needs a moment to connect.
// relayRedialTimeout is the wait for an agent that was reached before:
// it reconnects at once unless it has exited.
const (
	relayPairTimeout   = 30 * time.Second
	relayRedialTimeout = 3 * time.Second
)

func (c *AgentConfig) validate() error {
	bad := func(field, value, reason string) error {
		return fmt.Errorf("cloudrun: new: Config.Agent.%s %q: %w: %s", field, value, gantry.ErrInvalidArgument, reason)
	}
	if c.Image == "" {
		return bad("Image", "", "the agent image is required (publish it with cmd/gantry-agent-image)")
	}
	if _, err := gantry.ParseImage(c.Image); err != nil {
		return bad("Image", c.Image, err.Error())
	}
	switch {
	case c.Relay == "" && c.RelayImage == "":
		return bad("Relay", "", "give the URL of a gantry relay, or RelayImage to deploy one")
	case c.Relay != "" && c.RelayImage != "":
		return bad("RelayImage", c.RelayImage, "give Relay or RelayImage, not both")
	case c.RelayImage != "":
		if _, err := gantry.ParseImage(c.RelayImage); err != nil {
			return bad("RelayImage", c.RelayImage, err.Error())
		}
		if c.RelayService != "" && !validServiceID(c.RelayService) {
			return bad("RelayService", c.RelayService, "a Cloud Run service name is 1 to 49 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen")
		}
		return nil
	}
	u, err := url.Parse(c.Relay)
	switch {
	case err != nil:
		return bad("Relay", c.Relay, err.Error())
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return bad("Relay", c.Relay, "want an http or https URL with a host")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("Relay", c.Relay, "a relay URL has no query or fragment")
	}
	return nil
}

// agentState is what a Runtime with the agent keeps: the image-config
// reader and the connections to agents, which are caches of what the
// cloud holds (the secret is on the job).
type agentState struct {
	cfg    AgentConfig
	images *imageconfig.Resolver
	deploy *relayDeployer // with RelayImage
	mu     sync.Mutex
	closed bool
	// clients are the live connections to agents, by execution ID; gone
	// the executions whose agent was reached and has since gone.
	clients map[string]*agent.Client
	gone    map[string]bool
	tokens  map[string]oauth2.TokenSource // by audience, without IDToken
}

func newAgentState(cfg AgentConfig) (*agentState, error) {
	cfg.Relay = strings.TrimSuffix(cfg.Relay, "/")
	if cfg.RelayService == "" {
		cfg.RelayService = DefaultRelayService
	}
	images, err := imageconfig.New(cfg.Registry...)
	if err != nil {
		return nil, fmt.Errorf("cloudrun: new: Config.Agent.Registry: %w", err)
	}
	return &agentState{
		cfg:     cfg,
		images:  images,
		clients: map[string]*agent.Client{},
		gone:    map[string]bool{},
		tokens:  map[string]oauth2.TokenSource{},
	}, nil
}

// close drops every agent connection.
func (a *agentState) close() {
	a.mu.Lock()
	clients := a.clients
	a.clients, a.closed = map[string]*agent.Client{}, true
	a.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}

// wantsAgent reports whether a container of spec gets the agent.
func (r *Runtime) wantsAgent(spec *gantry.Spec) bool {
	return r.agent != nil && spec.Labels[NoAgentLabel] != "true"
}

// agentPlan is how one container is wrapped: the real command, the
// sidecar's readiness port and the container's secret, and the image's
// digest reference when its config was read (the job runs exactly the
// image whose ENTRYPOINT and CMD the command holds).
type agentPlan struct {
	cmd    []string
	port   int
	secret string
	image  string
	relay  string
	// ingress is the port the agent serves an instance's ingress on.
	ingress int
	// extra are further agent flags: an instance's gate, restart
	// policy, healthcheck and ingress.
	extra []string
}

// planAgent reads what wrapping the container needs: the real command
// (the image's ENTRYPOINT and CMD from its registry when the spec leaves
// them out, as Docker combines them), a readiness port and a secret.
func (r *Runtime) planAgent(ctx context.Context, spec *gantry.Spec) (*agentPlan, error) {
	cmd := append(append([]string(nil), spec.Entrypoint...), spec.Cmd...)
	var image string
	if len(spec.Entrypoint) == 0 {
		// Cloud Run runs linux/amd64 images.
		ic, err := r.agent.images.Config(ctx, spec.Image, imageconfig.Platform{})
		if err != nil {
			return nil, fmt.Errorf("read the image's ENTRYPOINT and CMD (the agent wraps them; give Entrypoint to skip this): %w", err)
		}
		image = ic.Ref
		cmd = append([]string(nil), ic.Entrypoint...)
		if len(spec.Cmd) > 0 {
			cmd = append(cmd, spec.Cmd...)
		} else {
			cmd = append(cmd, ic.Cmd...)
		}
	}
	if len(cmd) == 0 {
		return nil, invalid("Cmd", "", "the image "+spec.Image+" has neither ENTRYPOINT nor CMD, and the spec gives no command")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(maxReadyPort-minReadyPort+1))
	if err != nil {
		return nil, err
	}
	var secret [32]byte
	rand.Read(secret[:])
	relay, err := r.relayURL(ctx)
	if err != nil {
		return nil, err
	}
	return &agentPlan{cmd: cmd, port: minReadyPort + int(n.Int64()), secret: hex.EncodeToString(secret[:]), image: image, relay: relay}, nil
}

// wrap rewrites the job's task so that the agent runs as the init of its
// container c: the volume, the sidecar that fills it, and c's entrypoint.
func (r *Runtime) wrap(task *runpb.TaskTemplate, c *runpb.Container, spec *gantry.Spec, id string, p *agentPlan) error {
	relay, err := agent.RelayAgentURL(p.relay, id)
	if err != nil {
		return err
	}
	args := []string{"-relay", relay, "-id", id, "-lifeline", "127.0.0.1:" + strconv.Itoa(p.port), "-record"}
	if r.agent.cfg.RelayImage != "" || strings.HasPrefix(p.relay, "https://") {
		// A relay on Cloud Run checks its invokers' ID tokens; the agent
		// takes its own from the metadata server before every dial.
		args = append(args, "-relay-token", "metadata")
	}
	if spec.Tty {
		args = append(args, "-tty")
	}
	if spec.OpenStdin {
		args = append(args, "-stdin")
	}
	args = append(append(args, p.extra...), "--")
	c.Name = mainContainer
	// Cloud Run's limits are the instance's: the sidecar's memory comes
	// out of what the spec asked for, so the total stays what was asked
	// (and in the same CPU tier).
	if m := c.GetResources().GetLimits()["memory"]; strings.HasSuffix(m, "Mi") {
		if n, err := strconv.Atoi(strings.TrimSuffix(m, "Mi")); err == nil && n > 2*sidecarMiB {
			c.Resources.Limits["memory"] = strconv.Itoa(n-sidecarMiB) + "Mi"
		}
	}
	if p.image != "" {
		c.Image = p.image
	}
	c.Command = []string{agentBinary}
	c.Args = append(args, p.cmd...)
	c.Env = append(c.Env, &runpb.EnvVar{Name: secretEnv, Values: &runpb.EnvVar_Value{Value: p.secret}})
	mount := &runpb.VolumeMount{Name: agentVolume, MountPath: agentDir}
	c.VolumeMounts = append(c.VolumeMounts, mount)
	c.DependsOn = []string{agentContainer}
	task.Volumes = append(task.Volumes, &runpb.Volume{Name: agentVolume, VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{
		Medium:    runpb.EmptyDirVolumeSource_MEMORY,
		SizeLimit: "64Mi",
	}}})
	task.Containers = append(task.Containers, &runpb.Container{
		Name:         agentContainer,
		Image:        r.agent.cfg.Image,
		Command:      []string{agentInImage},
		Args:         []string{"install", "-ready", ":" + strconv.Itoa(p.port), agentBinary},
		VolumeMounts: []*runpb.VolumeMount{{Name: agentVolume, MountPath: agentDir}},
		Resources:    &runpb.ResourceRequirements{Limits: map[string]string{"cpu": sidecarCPU, "memory": strconv.Itoa(sidecarMiB) + "Mi"}},
		StartupProbe: &runpb.Probe{
			PeriodSeconds:    1,
			TimeoutSeconds:   1,
			FailureThreshold: 60,
			ProbeType:        &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: int32(p.port)}},
		},
	})
	return nil
}

// underAgent reports whether a task's containers are those of a
// container under the agent.
func underAgent(cs []*runpb.Container) bool {
	return len(cs) == 2 && cs[1].GetName() == agentContainer
}

// hasAgent reports whether the job runs its container under the agent,
// and returns the container's secret.
func hasAgent(j *job) (secret string, ok bool) {
	cs := j.containers()
	if !underAgent(cs) {
		return "", false
	}
	for _, e := range cs[0].GetEnv() {
		if e.GetName() == secretEnv {
			return e.GetValue(), e.GetValue() != ""
		}
	}
	return "", false
}

// errNoAgent is the error of an operation that needs the agent on a
// container that runs without it.
func (r *Runtime) errNoAgent() error {
	if r.agent == nil {
		return fmt.Errorf("%w: %s", gantry.ErrNotSupported, noteExec)
	}
	return fmt.Errorf("%w: the container was created without the gantry agent (%s)", gantry.ErrNotSupported, NoAgentLabel)
}

// agentClient returns a connection to the agent of j's running execution,
// through the relay, reusing one that is still up. A container just
// started gets relayPairTimeout for its agent to reach the relay; one
// whose agent was reached before and has gone (it exits with the main
// process, and the execution ends a moment later) gets relayRedialTimeout.
func (r *Runtime) agentClient(ctx context.Context, j *job) (*agent.Client, error) {
	secret, ok := hasAgent(j)
	if !ok || r.agent == nil {
		return nil, r.errNoAgent()
	}
	key := lastSegment(j.latest().GetName())
	if j.in != nil {
		// Each start of an instance's containers is a new agent.
		key = j.in.GetName() + "@" + startedAt(j.in).Format(time.RFC3339Nano)
	}
	a := r.agent
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, gantry.ErrClosed
	}
	if c := a.clients[key]; c != nil {
		a.mu.Unlock()
		return c, nil
	}
	wait := relayPairTimeout
	if a.gone[key] {
		wait = relayRedialTimeout
		if j.in != nil {
			// An instance's agent connects once per start of its
			// containers, and stays until it exits.
			a.mu.Unlock()
			return nil, fmt.Errorf("%w: the agent has exited", gantry.ErrUnavailable)
		}
	}
	a.mu.Unlock()

	relay, ok := relayOf(j)
	if !ok {
		return nil, fmt.Errorf("%w: %s names no relay for its agent", gantry.ErrUnavailable, j.name())
	}
	hdr := http.Header{}
	if a.needsToken(relay) {
		tok, err := a.token(ctx, origin(relay))
		if err != nil {
			return nil, fmt.Errorf("%w: an ID token for the relay %s: %v", gantry.ErrPermissionDenied, relay, err)
		}
		hdr.Set("Authorization", "Bearer "+tok)
	}
	dctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := agent.DialRelay(dctx, relay, j.rec.ID, []byte(secret), &agent.DialOptions{
		HTTPHeader: hdr,
		Logger:     r.log,
	})
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			return nil, fmt.Errorf("%w: the agent did not reach the relay %s within %s", gantry.ErrUnavailable, relay, wait)
		}
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		c.Close()
		return nil, gantry.ErrClosed
	}
	if old := a.clients[key]; old != nil {
		c.Close()
		return old, nil
	}
	a.clients[key] = c
	// Forget the connection when it ends, and remember that the agent
	// was reached: it is gone, or going, with its execution.
	go func() {
		<-c.Done()
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.clients[key] == c {
			delete(a.clients, key)
			a.gone[key] = true
		}
	}()
	return c, nil
}

// origin is scheme://host of a URL: the audience of the relay's ID
// tokens, as the agent asks the metadata server for them.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// needsToken reports whether the relay asks for an ID token: one the
// Runtime deployed, one on Cloud Run, or any when IDToken is given.
func (a *agentState) needsToken(relay string) bool {
	if a.cfg.IDToken != nil || a.cfg.RelayImage != "" {
		return true
	}
	u, err := url.Parse(relay)
	return err == nil && strings.HasSuffix(u.Hostname(), ".run.app")
}

// token returns the bearer token for the relay at audience.
func (a *agentState) token(ctx context.Context, audience string) (string, error) {
	if a.cfg.IDToken != nil {
		return a.cfg.IDToken(ctx, audience)
	}
	a.mu.Lock()
	ts := a.tokens[audience]
	a.mu.Unlock()
	if ts == nil {
		var err error
		if ts, err = idTokenSource(ctx, audience); err != nil {
			return "", err
		}
		a.mu.Lock()
		a.tokens[audience] = ts
		a.mu.Unlock()
	}
	tok, err := ts.Token()
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// idTokenSource gives ID tokens for audience from Application Default
// Credentials: a service account's (Google's idtoken package), or else
// a user's, as gcloud auth print-identity-token does: the ID token its
// OAuth token carries (which names no audience, and Cloud Run accepts
// from a user with the invoker role).
func idTokenSource(ctx context.Context, audience string) (oauth2.TokenSource, error) {
	ts, err := idtoken.NewTokenSource(ctx, audience)
	if err == nil {
		return ts, nil
	}
	creds, cerr := google.FindDefaultCredentials(ctx, "openid", "https://www.googleapis.com/auth/userinfo.email")
	if cerr != nil {
		return nil, err
	}
	return oauth2.ReuseTokenSource(nil, userIDTokens{creds.TokenSource}), nil
}

// userIDTokens takes the ID token out of a user's OAuth tokens.
type userIDTokens struct{ ts oauth2.TokenSource }

func (u userIDTokens) Token() (*oauth2.Token, error) {
	tok, err := u.ts.Token()
	if err != nil {
		return nil, err
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return nil, errors.New("the credentials' OAuth token carries no ID token (log in with gcloud auth application-default login, or give AgentConfig.IDToken)")
	}
	return &oauth2.Token{AccessToken: id, Expiry: tok.Expiry}, nil
}

// Exec runs a command in the running container through the agent, as
// docker exec does.
func (r *Runtime) Exec(ctx context.Context, id string, cfg gantry.ExecConfig) (_ gantry.ExecResult, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "exec", id)
	if err := r.state.Err(); err != nil {
		return gantry.ExecResult{}, err
	}
	if err := cfg.Validate(); err != nil {
		return gantry.ExecResult{}, err
	}
	if r.agent == nil {
		return gantry.ExecResult{}, r.errNoAgent()
	}
	cl, err := r.runningAgent(ctx, id)
	if err != nil {
		return gantry.ExecResult{}, err
	}
	res, err := cl.Exec(ctx, cfg)
	// Docker completes the exec of a command that cannot start, with an
	// init's code and the reason on its output.
	code := 0
	switch {
	case errors.Is(err, gantry.ErrNotFound):
		code = 127
	case errors.Is(err, gantry.ErrPermissionDenied):
		code = 126
	default:
		return res, err
	}
	w := cfg.Stderr
	if cfg.Tty {
		w = cfg.Stdout
	}
	if w != nil {
		fmt.Fprintln(w, err)
	}
	return gantry.ExecResult{ExitCode: code}, nil
}

// Attach connects to the main process's standard streams through the
// agent, as docker attach does.
// It returns when the main process exits or ctx ends (which detaches).
func (r *Runtime) Attach(ctx context.Context, id string, opts gantry.AttachOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "attach", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	if r.agent == nil {
		return r.errNoAgent()
	}
	j, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if opts.Stdin != nil && !j.rec.Spec.OpenStdin {
		return fmt.Errorf("%w: attach with input needs a container created with OpenStdin", gantry.ErrInvalidArgument)
	}
	cl, err := r.agentOf(ctx, j)
	if err != nil {
		return err
	}
	_, err = cl.Attach(ctx, opts)
	return err
}

// runningAgent resolves id and connects to its agent; a container that is
// not running is ErrConflict, as Docker's exec is.
func (r *Runtime) runningAgent(ctx context.Context, id string) (*agent.Client, error) {
	j, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.agentOf(ctx, j)
}

func (r *Runtime) agentOf(ctx context.Context, j *job) (*agent.Client, error) {
	if _, ok := hasAgent(j); !ok || r.agent == nil {
		return nil, r.errNoAgent()
	}
	if j.in != nil {
		return r.runningAgentOf(ctx, j)
	}
	if !j.running() {
		return nil, fmt.Errorf("%w: the container is not running", gantry.ErrConflict)
	}
	return r.agentClient(ctx, j)
}

// signalAgent sends sig to the container's main process through its
// agent. A main process that has exited meanwhile is ErrConflict.
func (r *Runtime) signalAgent(ctx context.Context, j *job, sig string) error {
	cl, err := r.agentClient(ctx, j)
	if err != nil {
		return err
	}
	return cl.Signal(ctx, sig)
}

// stopWithAgent stops the container as Docker does, through the agent:
// the stop signal, up to timeout for the container to exit (negative:
// for ever), then SIGKILL. When the agent cannot be reached, it cancels
// the execution instead (Cloud Run's SIGTERM and fixed grace) and logs
// that it did.
func (r *Runtime) stopWithAgent(ctx context.Context, j *job, sig string, timeout time.Duration) error {
	l := j.latest()
	fallback := func(why error) error {
		r.log.Warn("stop: the agent could not be reached (it may have exited); cancelling the execution instead (Cloud Run's SIGTERM and fixed grace)", zap.String("id", j.rec.ID), zap.Error(why))
		if err := r.cancel(ctx, j, l.GetName()); err != nil {
			return err
		}
		_, err := r.waitExecution(ctx, j, l)
		return err
	}
	cl, err := r.agentClient(ctx, j)
	if err == nil {
		err = cl.Signal(ctx, sig)
	}
	switch {
	case err == nil:
	case errors.Is(err, gantry.ErrConflict):
		// The main process has exited: the execution is ending.
		_, err := r.waitExecution(ctx, j, l)
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return fallback(err)
	}
	if timeout < 0 {
		_, err := r.waitExecution(ctx, j, l)
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = r.waitExecution(wctx, j, l)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	// The timeout has passed and the execution runs on: SIGKILL, through
	// the agent if it is still there (it has gone if the process exited
	// and Cloud Run has yet to mark the execution done).
	if err := r.signalAgent(ctx, j, "SIGKILL"); err != nil && !errors.Is(err, gantry.ErrConflict) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fallback(err)
	}
	_, err = r.waitExecution(ctx, j, l)
	return err
}

// The agent's final record of a run, as Cloud Logging stores it: a JSON
// line on stderr whose label recordLabel is "exit" (see agent.Record).
const (
	recordLabel   = agent.RecordLabel
	executionName = "run.googleapis.com/execution_name"
	containerName = "run.googleapis.com/container_name"
)

// agentRuns tells a log reader how to find the agent's records: runs are
// executions, last names the container's last one, and settled is when
// the lines of the runs before it are all in (zero: there were none). A
// record counts only from the agent's stderr, signed with the
// container's secret for its ID and for the execution it is logged
// under: a line a program prints to look like one is just a line.
func agentRuns(last func() string, settled time.Time, secret []byte, id string) *cloudlog.Runs {
	return &cloudlog.Runs{
		Settled: func() time.Time { return settled },
		// The agent counts the lines of the user's container only; the
		// sidecar's (it writes none unless it fails) count for no run.
		Of: func(e *loggingpb.LogEntry) string {
			if c, ok := e.GetLabels()[containerName]; ok && c != mainContainer {
				return ""
			}
			return e.GetLabels()[executionName]
		},
		Record: func(e *loggingpb.LogEntry) (cloudlog.Counts, bool) {
			if e.GetLabels()[recordLabel] != "exit" || cloudlog.LogID(e.GetLogName()) != stderrLog || e.GetJsonPayload() == nil {
				return cloudlog.Counts{}, false
			}
			raw, err := protojson.Marshal(e.GetJsonPayload())
			if err != nil {
				return cloudlog.Counts{}, false
			}
			rec, err := agent.ParseRecord(raw)
			if err != nil || !rec.Verify(secret, id) || rec.Run != e.GetLabels()[executionName] {
				return cloudlog.Counts{}, false
			}
			return cloudlog.Counts{Stdout: int(rec.StdoutLines), Stderr: int(rec.StderrLines)}, true
		},
		Last:    last,
		Exclude: "NOT " + cloudlog.Label("labels", recordLabel) + `="exit"`,
	}
}
