package fake

import (
	"context"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/health"
)

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
	if !health.Runs(c.spec.Healthcheck) {
		c.health = nil
		return
	}
	c.health = health.Start()
	rt.wg.Add(1)
	go rt.monitorHealth(r, *c.spec.Healthcheck, c.state.StartedAt)
}

// endHealth marks the health of a container whose run has ended: Docker
// sets it to unhealthy when it stops the monitor, keeping the failing
// streak. Call with rt.mu held.
func endHealth(c *container) {
	health.Stop(c.health)
}

// monitorHealth probes r as Docker's monitor does (see health.Monitor and
// health.Record) until the run ends. A probe is given up on when the run
// or the Runtime ends, so Close never waits for one's timeout.
func (rt *Runtime) monitorHealth(r *run, hc gantry.Healthcheck, started time.Time) {
	defer rt.wg.Done()
	m := health.Monitor{
		Check: hc,
		Done:  r.done,
		Abort: rt.done,
		Probe: func(ctx context.Context) bool { return rt.probe(ctx, r, &hc) },
		Result: func(passed bool, began time.Time) bool {
			rt.mu.Lock()
			defer rt.mu.Unlock()
			if r.exited {
				return false
			}
			health.Record(r.c.health, &hc, passed, began.Sub(started))
			return true
		},
	}
	m.Run()
}

// probe runs one probe of r within ctx and reports whether it passed. A
// command runs as an exec does (in Go-function mode, the image's Exec
// function, without which it fails); HTTPPath and TCPPort reach this
// host's 127.0.0.1, where a host process listens.
func (rt *Runtime) probe(ctx context.Context, r *run, hc *gantry.Healthcheck) bool {
	return health.Probe(ctx, hc, httpProbePort(&r.c.spec), func(ctx context.Context, argv []string) bool {
		res, err := rt.Exec(ctx, r.c.id, gantry.ExecConfig{Cmd: argv})
		return err == nil && res.ExitCode == 0
	})
}
