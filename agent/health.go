package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
)

// Docker's healthcheck defaults (moby's daemon/health.go).
const (
	defaultProbeInterval = 30 * time.Second
	defaultProbeTimeout  = 30 * time.Second
	defaultProbeRetries  = 3
)

// probed reports whether hc is a healthcheck that runs: one whose Test
// is not Docker's {"NONE"}.
func probed(hc *gantry.Healthcheck) bool {
	return hc != nil && !(len(hc.Test) == 1 && hc.Test[0] == "NONE")
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// monitorHealth probes run r as Docker's monitor does: an Interval after
// the start, and an Interval after each probe ends; a probe that passes
// makes the main command healthy and sets the failing streak to 0; one
// that fails adds to the streak (unless no probe has passed yet and it
// began within the start period), and Retries in a row make it
// unhealthy. It ends with the run.
func (a *Agent) monitorHealth(r *mainRun, hc gantry.Healthcheck, started time.Time) {
	interval := orDefault(hc.Interval, defaultProbeInterval)
	timeout := orDefault(hc.Timeout, defaultProbeTimeout)
	retries := orDefault(hc.Retries, defaultProbeRetries)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-r.p.done:
			return
		case <-t.C:
		}
		began := time.Now()
		passed := a.probe(r, &hc, timeout)
		a.mu.Lock()
		if r.exited {
			a.mu.Unlock()
			return
		}
		h := a.health
		switch {
		case passed:
			h.FailingStreak = 0
			h.Status = gantry.HealthHealthy
		case h.Status == gantry.HealthStarting && began.Sub(started) < hc.StartPeriod:
			// Within the start period, a failure before any pass does
			// not count.
		default:
			h.FailingStreak++
			if h.FailingStreak >= retries {
				h.Status = gantry.HealthUnhealthy
			}
		}
		a.mu.Unlock()
		t.Reset(interval)
	}
}

// probe runs one probe within timeout and reports whether it passed. It
// is given up on, failed, when the run ends.
func (a *Agent) probe(r *mainRun, hc *gantry.Healthcheck, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-r.p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	switch {
	case len(hc.Test) > 0:
		argv := hc.Test[1:]
		if hc.Test[0] == "CMD-SHELL" {
			argv = []string{"/bin/sh", "-c", hc.Test[1]}
		}
		return a.probeCommand(ctx, argv)
	case hc.TCPPort != 0:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hc.TCPPort)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	default:
		port := hc.Port
		if port == 0 {
			port, _ = strconv.Atoi(envValue(a.env, "PORT"))
		}
		return httpProbe(ctx, port, hc.HTTPPath)
	}
}

// probeCommand runs argv as an exec with no input runs (the container's
// environment and working directory, its own process group), its output
// discarded, and reports whether it exited 0 before ctx ended; then its
// process group is killed.
func (a *Agent) probeCommand(ctx context.Context, argv []string) bool {
	path, serr := lookPath(argv[0], a.env)
	if serr != nil {
		return false
	}
	if checkDir(a.cfg.Dir) != nil {
		return false
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	attr := &os.ProcAttr{
		Dir:   a.cfg.Dir,
		Env:   a.env,
		Files: []*os.File{null, null, null},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	p, err := a.sp.start(path, argv, attr)
	null.Close()
	if err != nil {
		return false
	}
	select {
	case <-p.done:
		return p.result().ExitCode == 0
	case <-ctx.Done():
		p.signalGroup(syscall.SIGKILL)
		<-p.done
		return false
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
