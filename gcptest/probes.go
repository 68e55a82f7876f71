package gcptest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Cloud Run's startup probe limits for jobs (RULES.md, "Containers of a
// task"). Zero values in a Probe mean the defaults.
const (
	defaultProbeTimeout   = 1
	defaultProbePeriod    = 10
	defaultProbeThreshold = 3
	maxProbeTimeout       = 3600
	maxStartupDelay       = 240
	maxStartupPeriod      = 240
	// maxStartupWindow bounds failure_threshold * period_seconds.
	maxStartupWindow = 240
	maxPort          = 65535
)

// probeSpec is a startup probe with its defaults applied.
type probeSpec struct {
	kind      string // "TCP", "HTTP" or "GRPC", as Cloud Run's messages name them
	port      int
	path      string // HTTP
	headers   http.Header
	service   string // gRPC
	delay     int
	timeout   int
	period    int
	threshold int
}

// startupProbe reads a container's startup probe, or nil when it has
// none. The probe has been validated.
func startupProbe(c *runpb.Container) *probeSpec {
	p := c.GetStartupProbe()
	if p == nil {
		return nil
	}
	ps := &probeSpec{
		delay:     int(p.GetInitialDelaySeconds()),
		timeout:   orDefault(int(p.GetTimeoutSeconds()), defaultProbeTimeout),
		period:    orDefault(int(p.GetPeriodSeconds()), defaultProbePeriod),
		threshold: orDefault(int(p.GetFailureThreshold()), defaultProbeThreshold),
	}
	switch t := p.ProbeType.(type) {
	case *runpb.Probe_TcpSocket:
		ps.kind, ps.port = "TCP", int(t.TcpSocket.GetPort())
	case *runpb.Probe_HttpGet:
		ps.kind, ps.port, ps.path = "HTTP", int(t.HttpGet.GetPort()), t.HttpGet.GetPath()
		if ps.path == "" {
			ps.path = "/"
		}
		ps.headers = http.Header{}
		for _, h := range t.HttpGet.GetHttpHeaders() {
			ps.headers.Add(h.GetName(), h.GetValue())
		}
	case *runpb.Probe_Grpc:
		ps.kind, ps.port, ps.service = "GRPC", int(t.Grpc.GetPort()), t.Grpc.GetService()
	}
	if ps.port == 0 {
		ps.port = int(c.GetPorts()[0].GetContainerPort())
	}
	return ps
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// validateStartupProbe applies the jobs' startup probe rules: exactly one
// of tcp_socket, http_get and grpc; a port from 1 to 65535 (or the
// container's port when unset); initial_delay_seconds 0 to 240;
// timeout_seconds 1 to 3600 and at most period_seconds; period_seconds
// 1 to 240; failure_threshold at least 1; failure_threshold *
// period_seconds at most 240.
func validateStartupProbe(field string, c *runpb.Container) error {
	p := c.GetStartupProbe()
	if p == nil {
		return nil
	}
	if err := validateProbeAction(field, c, p, "startup"); err != nil {
		return err
	}
	delay, timeout, period, threshold := p.GetInitialDelaySeconds(), p.GetTimeoutSeconds(), p.GetPeriodSeconds(), p.GetFailureThreshold()
	if timeout == 0 {
		timeout = defaultProbeTimeout
	}
	if period == 0 {
		period = defaultProbePeriod
	}
	if threshold == 0 {
		threshold = defaultProbeThreshold
	}
	switch {
	case delay < 0 || delay > maxStartupDelay:
		return invalid("%s.initial_delay_seconds %d must be between 0 and %d for a startup probe", field, delay, maxStartupDelay)
	case timeout < 1 || timeout > maxProbeTimeout:
		return invalid("%s.timeout_seconds %d must be between 1 and %d", field, timeout, maxProbeTimeout)
	case period < 1 || period > maxStartupPeriod:
		return invalid("%s.period_seconds %d must be between 1 and %d for a startup probe", field, period, maxStartupPeriod)
	case timeout > period:
		return invalid("%s.timeout_seconds %d must not be greater than period_seconds %d", field, timeout, period)
	case threshold < 1:
		return invalid("%s.failure_threshold %d must be at least 1", field, threshold)
	case int64(threshold)*int64(period) > maxStartupWindow:
		return invalid("%s: failure_threshold * period_seconds is %d seconds; a startup probe must succeed within %d", field, int64(threshold)*int64(period), maxStartupWindow)
	}
	return nil
}

// validateProbeAction checks what a probe of container c does (kind is
// startup or liveness): exactly one of tcp_socket (startup probes only),
// http_get, whose path begins with '/' and whose headers are HTTP
// tokens, and grpc; on a port from 1 to 65535, or the container's when
// unset.
func validateProbeAction(field string, c *runpb.Container, p *runpb.Probe, kind string) error {
	var port int32
	switch t := p.ProbeType.(type) {
	case *runpb.Probe_TcpSocket:
		if kind == "liveness" {
			return invalid("%s: a liveness probe is HTTP or gRPC, not TCP", field)
		}
		port = t.TcpSocket.GetPort()
	case *runpb.Probe_HttpGet:
		port = t.HttpGet.GetPort()
		if path := t.HttpGet.GetPath(); path != "" && !strings.HasPrefix(path, "/") {
			return invalid("%s.http_get.path %q must begin with '/'", field, path)
		}
		for i, h := range t.HttpGet.GetHttpHeaders() {
			if !validHeaderName(h.GetName()) {
				return invalid("%s.http_get.http_headers[%d].name %q is not a valid HTTP header name", field, i, h.GetName())
			}
		}
	case *runpb.Probe_Grpc:
		port = t.Grpc.GetPort()
	default:
		if kind == "liveness" {
			return invalid("%s: a liveness probe needs http_get or grpc", field)
		}
		return invalid("%s: a startup probe needs one of tcp_socket, http_get or grpc", field)
	}
	switch {
	case port < 0 || port > maxPort:
		return invalid("%s: port %d must be between 1 and %d", field, port, maxPort)
	case port == 0 && len(c.GetPorts()) == 0:
		return invalid("%s: the probe names no port and the container declares none to default to", field)
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// failed is how Cloud Run's message for a probe (phase STARTUP or
// LIVENESS) that failed failures times begins.
func (p *probeSpec) failed(phase, container string, failures int) string {
	where := fmt.Sprintf("on port %d", p.port)
	if p.kind == "HTTP" {
		where = fmt.Sprintf("on path %q", p.path)
	}
	plural := "s"
	if failures == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s %s probe failed %d time%s consecutively for container %q %s.", phase, p.kind, failures, plural, container, where)
}

// failure is Cloud Run's message for a startup probe that never
// passed.
func (p *probeSpec) failure(container string, failures int, cause string) string {
	msg := p.failed("STARTUP", container, failures) + " The instance was not started."
	if cause != "" {
		msg += " " + cause
	}
	return msg
}

// waitFor waits d; false when ctx ends or the container exits first.
func waitFor(ctx context.Context, exited <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-exited:
	}
	return false
}

// probeRetry is how soon a failed probe is tried again within its
// period.
const probeRetry = 20 * time.Millisecond

// run probes a started container until its startup probe passes (true),
// fails failure_threshold periods in a row (the failure message), or ctx
// ends or the container exits (neither). The first period begins
// initial_delay after the start. Within a period a failed probe is tried
// again every probeRetry, each try bounded by the probe's timeout, so
// that a container is seen ready as soon as it is; the period counts as
// one failure when no try in it passed, as Cloud Run's one probe per
// period would.
func (p *probeSpec) run(ctx context.Context, container string, exited <-chan struct{}) (passed bool, failure string) {
	wait := func(d time.Duration) bool { return waitFor(ctx, exited, d) }
	if !wait(time.Duration(p.delay) * time.Second) {
		return false, ""
	}
	timeout := time.Duration(p.timeout) * time.Second
	for failures := 0; ; {
		end := time.Now().Add(time.Duration(p.period) * time.Second)
		var cause string
		for {
			if cause = p.once(ctx, min(timeout, time.Until(end))); cause == "" {
				return true, ""
			}
			if ctx.Err() != nil || time.Until(end) < probeRetry || !wait(probeRetry) {
				break
			}
		}
		if ctx.Err() != nil {
			return false, ""
		}
		select {
		case <-exited:
			// A period cut short by the container's exit is no failure
			// of the probe: the container failed.
			return false, ""
		default:
		}
		if failures++; failures >= p.threshold {
			return false, p.failure(container, failures, cause)
		}
		if !wait(time.Until(end)) {
			return false, ""
		}
	}
}

// once probes once; it returns why the probe failed, or "" when it
// passed.
func (p *probeSpec) once(ctx context.Context, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	switch p.kind {
	case "HTTP":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.path, nil)
		if err != nil {
			return err.Error()
		}
		for k, vs := range p.headers {
			req.Header[k] = vs
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return "Connection failed with status DEADLINE_EXCEEDED."
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Sprintf("HTTP probe failed with status code %d.", resp.StatusCode)
		}
		return ""
	case "GRPC":
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
		switch {
		case err != nil:
			return "Connection failed with status " + status.Code(err).String() + "."
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			return "The health check returned " + resp.GetStatus().String() + "."
		}
		return ""
	default:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return "Connection failed with status DEADLINE_EXCEEDED."
		}
		conn.Close()
		return ""
	}
}

// livenessSpec is a liveness probe with its defaults applied.
type livenessSpec struct {
	probeSpec
}

// livenessProbe reads a container's liveness probe; on the ingress
// container's port (or none) it probes the port of this host the
// container listens on.
func livenessProbe(c *runpb.Container, ingress bool, hostPort int) *livenessSpec {
	p := c.GetLivenessProbe()
	cc := &runpb.Container{Ports: c.GetPorts(), StartupProbe: p}
	ps := startupProbe(cc)
	if ingress && ps.port == int(c.GetPorts()[0].GetContainerPort()) {
		ps.port = hostPort
	}
	return &livenessSpec{*ps}
}

// watch probes the container once a period, from initial_delay after
// it is ready, until failure_threshold probes in a row fail (it returns
// Cloud Run's message) or ctx ends or the container exits ("").
func (p *livenessSpec) watch(ctx context.Context, container string, exited <-chan struct{}) string {
	wait := func(d time.Duration) bool { return waitFor(ctx, exited, d) }
	if !wait(time.Duration(p.delay) * time.Second) {
		return ""
	}
	for failures := 0; ; {
		cause := p.once(ctx, time.Duration(p.timeout)*time.Second)
		if ctx.Err() != nil {
			return ""
		}
		if cause == "" {
			failures = 0
		} else if failures++; failures >= p.threshold {
			return p.failed("LIVENESS", container, failures) + " The container will be restarted. " + cause
		}
		if !wait(time.Duration(p.period) * time.Second) {
			return ""
		}
	}
}
