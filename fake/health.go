package fake

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
)

// Docker's healthcheck defaults (moby's daemon/health.go).
const (
	defaultProbeInterval = 30 * time.Second
	defaultProbeTimeout  = 30 * time.Second
	defaultProbeRetries  = 3
)

// probed reports whether the spec has a healthcheck that runs: one whose
// Test is not Docker's {"NONE"}.
func probed(spec *gantry.Spec) bool {
	h := spec.Healthcheck
	return h != nil && !(len(h.Test) == 1 && h.Test[0] == "NONE")
}

// httpProbePort is the port an HTTPPath probe asks: Healthcheck.Port, or
// the first TCP port of the spec; 0 when there is none.
func httpProbePort(spec *gantry.Spec) int {
	if p := spec.Healthcheck.Port; p != 0 {
		return p
	}
	for _, p := range spec.Ports {
		if p.Protocol == "" || p.Protocol == "tcp" {
			return p.Port
		}
	}
	return 0
}

// startHealth gives the run that just started a health of "starting" and
// its monitor, as Docker does at every start (the failing streak starts
// again at 0). Call with rt.mu held.
func (rt *Runtime) startHealth(r *run) {
	c := r.c
	if !probed(&c.spec) {
		c.health = nil
		return
	}
	c.health = &gantry.Health{Status: gantry.HealthStarting}
	rt.wg.Add(1)
	go rt.monitorHealth(r, *c.spec.Healthcheck, c.state.StartedAt)
}

// endHealth marks the health of a container whose run has ended: Docker
// sets it to unhealthy when it stops the monitor, keeping the failing
// streak. Call with rt.mu held.
func endHealth(c *container) {
	if c.health != nil {
		c.health.Status = gantry.HealthUnhealthy
	}
}

// monitorHealth probes r as Docker's monitor does: an Interval after the
// start, and an Interval after each probe ends; a probe that passes makes
// the container healthy; one that fails adds to the failing streak (unless
// the container is starting and the probe began within the start period),
// and Retries in a row make it unhealthy.
func (rt *Runtime) monitorHealth(r *run, hc gantry.Healthcheck, started time.Time) {
	defer rt.wg.Done()
	interval := cmpOr(hc.Interval, defaultProbeInterval)
	timeout := cmpOr(hc.Timeout, defaultProbeTimeout)
	retries := cmpOr(hc.Retries, defaultProbeRetries)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		began := time.Now()
		passed := rt.probe(r, &hc, timeout)
		rt.mu.Lock()
		if r.exited {
			rt.mu.Unlock()
			return
		}
		h := r.c.health
		switch {
		case passed:
			h.FailingStreak = 0
			h.Status = gantry.HealthHealthy
		case h.Status == gantry.HealthStarting && began.Sub(started) < hc.StartPeriod:
			// Within the start period, a failure of a container that has
			// never passed does not count.
		default:
			h.FailingStreak++
			if h.FailingStreak >= retries {
				h.Status = gantry.HealthUnhealthy
			}
		}
		rt.mu.Unlock()
		t.Reset(interval)
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// probe runs one probe of r within timeout and reports whether it passed.
// A command runs as an exec does (in Go-function mode, the image's Exec
// function, without which it fails); HTTPPath and TCPPort reach this
// host's 127.0.0.1, where a host process listens.
func (rt *Runtime) probe(r *run, hc *gantry.Healthcheck, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	// A probe ends with the run or the Runtime, so Close never waits for
	// one's timeout.
	var watch sync.WaitGroup
	defer watch.Wait()
	defer cancel()
	watch.Go(func() {
		select {
		case <-r.done:
		case <-rt.done:
		case <-ctx.Done():
		}
		cancel()
	})
	switch {
	case len(hc.Test) > 0:
		argv := hc.Test[1:]
		if hc.Test[0] == "CMD-SHELL" {
			argv = []string{"/bin/sh", "-c", hc.Test[1]}
		}
		res, err := rt.Exec(ctx, r.c.id, gantry.ExecConfig{Cmd: argv})
		return err == nil && res.ExitCode == 0
	case hc.TCPPort != 0:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hc.TCPPort)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	default:
		return httpProbe(ctx, httpProbePort(&r.c.spec), hc.HTTPPath)
	}
}

// httpProbe GETs path on 127.0.0.1:port and passes on a status from 200 to
// 399, as Cloud Run's and Kubernetes' HTTP probes do; a redirect is not
// followed.
func httpProbe(ctx context.Context, port int, path string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return false
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 400
}
