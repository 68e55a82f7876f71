package agent

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/health"
)

// monitorHealth probes run r as Docker's monitor does (see health.Monitor
// and health.Record), keeping the main command's health. It ends with the
// run; a probe under way is given up on, failed, when the run ends.
func (a *Agent) monitorHealth(r *mainRun, hc gantry.Healthcheck, started time.Time) {
	m := health.Monitor{
		Check: hc,
		Done:  r.p.done,
		Probe: func(ctx context.Context) bool { return a.probe(ctx, &hc) },
		Result: func(passed bool, began time.Time) bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			if r.exited {
				return false
			}
			health.Record(a.health, &hc, passed, began.Sub(started))
			return true
		},
	}
	m.Run()
}

// probe runs one probe within ctx and reports whether it passed: a command
// as probeCommand runs it, an HTTPPath on Port or else on the PORT of the
// container's environment.
func (a *Agent) probe(ctx context.Context, hc *gantry.Healthcheck) bool {
	port, _ := strconv.Atoi(envValue(a.env, "PORT"))
	return health.Probe(ctx, hc, port, a.probeCommand)
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
