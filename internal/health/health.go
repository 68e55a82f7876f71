// Package health applies Docker's healthcheck rules, for the backends that
// run a container's health monitor themselves (the fake and the agent):
// the defaults of a gantry.Healthcheck, the state machine of starting,
// healthy and unhealthy with the failing streak and the start period, the
// monitor's timing, and the probes (a command run as the backend's exec,
// an HTTP GET, a TCP connection).
//
// A backend keeps a *gantry.Health per run: Start at each start, Record
// after each probe, Stop when the run ends. Monitor runs the probes on
// Docker's schedule and hands their results back; Probe runs one.
package health

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
)

// Docker's healthcheck defaults (moby's daemon/health.go), for a zero
// Interval, Timeout and Retries.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 30 * time.Second
	DefaultRetries  = 3
)

// Runs reports whether hc is a healthcheck that runs: one whose Test is
// not Docker's {"NONE"}.
func Runs(hc *gantry.Healthcheck) bool {
	return hc != nil && !(len(hc.Test) == 1 && hc.Test[0] == "NONE")
}

// Start returns the health of a run that has just started: starting, the
// failing streak at 0, as Docker's at every start.
func Start() *gantry.Health {
	return &gantry.Health{Status: gantry.HealthStarting}
}

// Record applies the result of one probe to h, as Docker's monitor does.
// A probe that passes makes it healthy and sets the failing streak to 0.
// One that fails adds to the streak, and Retries in a row make it
// unhealthy; but while h is starting (no probe has passed yet), a failure
// of a probe that began within StartPeriod of the start, sinceStart, does
// not count.
func Record(h *gantry.Health, hc *gantry.Healthcheck, passed bool, sinceStart time.Duration) {
	switch {
	case passed:
		h.FailingStreak = 0
		h.Status = gantry.HealthHealthy
	case h.Status == gantry.HealthStarting && sinceStart < hc.StartPeriod:
		// Within the start period, a failure before any pass does not
		// count.
	default:
		h.FailingStreak++
		if h.FailingStreak >= cmp.Or(hc.Retries, DefaultRetries) {
			h.Status = gantry.HealthUnhealthy
		}
	}
}

// Stop marks the health of a run that has ended: Docker's monitor leaves
// a stopped container unhealthy, its streak kept. A nil h, of a container
// without a healthcheck, stays nil.
func Stop(h *gantry.Health) {
	if h != nil {
		h.Status = gantry.HealthUnhealthy
	}
}

// A Monitor probes one run of a container on Docker's schedule: the first
// probe an Interval after Run is called, each next one an Interval after
// the one before has ended.
type Monitor struct {
	// Check is the healthcheck; a zero Interval or Timeout is Docker's
	// default.
	Check gantry.Healthcheck
	// Done is closed when the run has ended. It ends the monitor, and
	// gives up a probe under way.
	Done <-chan struct{}
	// Abort, when not nil, gives up a probe under way when it is closed,
	// without ending the monitor.
	Abort <-chan struct{}
	// Probe runs one probe and reports whether it passed. Its ctx ends
	// after the Timeout, or when Done or Abort is closed: a probe that
	// has not passed by then has failed.
	Probe func(ctx context.Context) bool
	// Result is given each probe's result and the time it began (for
	// Record's start period). It returns false when the run has ended,
	// to end the monitor without recording the result.
	Result func(passed bool, began time.Time) bool
}

// Run probes until Done is closed or Result returns false.
func (m *Monitor) Run() {
	interval := cmp.Or(m.Check.Interval, DefaultInterval)
	timeout := cmp.Or(m.Check.Timeout, DefaultTimeout)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-m.Done:
			return
		case <-t.C:
		}
		began := time.Now()
		if !m.Result(m.probe(timeout), began) {
			return
		}
		t.Reset(interval)
	}
}

// probe runs one probe within timeout; it ends with Done or Abort, so that
// the end of a run or of its backend never waits for a probe's timeout.
func (m *Monitor) probe(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	var watch sync.WaitGroup
	defer watch.Wait()
	defer cancel()
	watch.Go(func() {
		select {
		case <-m.Done:
		case <-m.Abort:
		case <-ctx.Done():
		}
		cancel()
	})
	return m.Probe(ctx)
}

// Probe runs the probe hc describes, within ctx, and reports whether it
// passed. A Test is run by exec, given the argv of {"CMD", argv...}, or
// /bin/sh -c script for {"CMD-SHELL", script}; it passes when exec
// reports true. TCPPort passes when a TCP connection to 127.0.0.1 opens.
// HTTPPath is asked on 127.0.0.1 at hc.Port, or at port when hc.Port is
// 0: it passes on a status from 200 to 399, a redirect not followed.
func Probe(ctx context.Context, hc *gantry.Healthcheck, port int, exec func(ctx context.Context, argv []string) bool) bool {
	switch {
	case len(hc.Test) > 0:
		argv := hc.Test[1:]
		if hc.Test[0] == "CMD-SHELL" {
			argv = []string{"/bin/sh", "-c", hc.Test[1]}
		}
		return exec(ctx, argv)
	case hc.TCPPort != 0:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hc.TCPPort)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	default:
		return probeHTTP(ctx, cmp.Or(hc.Port, port), hc.HTTPPath)
	}
}

// probeHTTP GETs path on 127.0.0.1:port and passes on a status from 200 to
// 399, as Cloud Run's and Kubernetes' HTTP probes do; a redirect is not
// followed.
func probeHTTP(ctx context.Context, port int, path string) bool {
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
