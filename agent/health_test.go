package agent

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// sleeper is a main command that runs until signalled.
var sleeper = []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.01; done"}

// waitHealth waits until the agent's health satisfies cond and returns it.
func waitHealth(t *testing.T, a *Agent, what string, cond func(h gantry.Health) bool) gantry.Health {
	t.Helper()
	var h gantry.Health
	waitFor(t, what, func() bool {
		st := a.Status()
		if st.Health == nil {
			return false
		}
		h = *st.Health
		return cond(h)
	})
	return h
}

func isStatus(s string) func(gantry.Health) bool {
	return func(h gantry.Health) bool { return h.Status == s }
}

// lines counts the lines of a file a probe appends to.
func lines(file string) int {
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), "\n")
}

// TestHealthCommand: the monitor's results reach the agent's health (the
// rules themselves are internal/health's).
func TestHealthCommand(t *testing.T) {
	ok := filepath.Join(t.TempDir(), "ok")
	hc := &gantry.Healthcheck{Test: []string{"CMD-SHELL", "test -e " + ok}, Interval: 5 * time.Millisecond, Retries: 2}
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: hc})
	if st := a.Status(); st.Health == nil || st.Health.Status != gantry.HealthStarting || st.Health.FailingStreak != 0 {
		t.Fatalf("health at the start %+v, want starting", st.Health)
	}
	waitHealth(t, a, "unhealthy", isStatus(gantry.HealthUnhealthy))
	os.WriteFile(ok, nil, 0o644)
	h := waitHealth(t, a, "healthy", isStatus(gantry.HealthHealthy))
	if h.FailingStreak != 0 {
		t.Errorf("healthy with a streak of %d", h.FailingStreak)
	}
}

// TestHealthCommandAsExec: CMD runs argv without a shell, in the
// container's environment and working directory.
func TestHealthCommandAsExec(t *testing.T) {
	dir := t.TempDir()
	hc := &gantry.Healthcheck{Test: []string{"CMD", "sh", "-c", `test "$FOO" = bar && test "$(pwd)" = "$1"`, "sh", dir}, Interval: 5 * time.Millisecond}
	a := startAgent(t, Config{Cmd: sleeper, Env: append(os.Environ(), "FOO=bar"), Dir: dir, Healthcheck: hc})
	waitHealth(t, a, "healthy", isStatus(gantry.HealthHealthy))
}

// TestHealthStartPeriod: failures in the start period do not count, and
// a pass in it makes the command healthy at once.
func TestHealthStartPeriod(t *testing.T) {
	dir := t.TempDir()
	probes, ok := filepath.Join(dir, "probes"), filepath.Join(dir, "ok")
	hc := &gantry.Healthcheck{Test: []string{"CMD-SHELL", "echo >> " + probes + "; test -e " + ok}, Interval: 5 * time.Millisecond, Retries: 1, StartPeriod: time.Hour}
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: hc})
	waitFor(t, "four probes", func() bool { return lines(probes) >= 4 })
	if st := a.Status(); st.Health.Status != gantry.HealthStarting || st.Health.FailingStreak != 0 {
		t.Fatalf("after failures in the start period: %+v, want starting, no streak", st.Health)
	}
	os.WriteFile(ok, nil, 0o644)
	waitHealth(t, a, "healthy", isStatus(gantry.HealthHealthy))
}

// TestHealthTimeout: a probe that outlasts Timeout fails, and its
// processes are killed.
func TestHealthTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	hc := &gantry.Healthcheck{Test: []string{"CMD-SHELL", "echo $$ > " + pidFile + "; sleep 100; true"}, Interval: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, Retries: 1}
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: hc})
	waitHealth(t, a, "unhealthy", isStatus(gantry.HealthUnhealthy))
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe killed", func() bool { return processGone(pid) })
}

func TestHealthTCP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: &gantry.Healthcheck{TCPPort: port, Interval: 5 * time.Millisecond, Retries: 1}})
	waitHealth(t, a, "healthy", isStatus(gantry.HealthHealthy))
	srv.Close()
	waitHealth(t, a, "unhealthy", isStatus(gantry.HealthUnhealthy))
}

// TestHealthHTTP: an HTTPPath probe asks Port, or else the PORT of the
// container's environment.
func TestHealthHTTP(t *testing.T) {
	var code atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, viaEnv := range []bool{false, true} {
		t.Run(fmt.Sprint("PORT=", viaEnv), func(t *testing.T) {
			code.Store(http.StatusOK)
			hc := &gantry.Healthcheck{HTTPPath: "/healthz", Port: port, Interval: 5 * time.Millisecond, Retries: 1}
			env := os.Environ()
			if viaEnv {
				hc.Port = 0
				env = append(env, "PORT="+strconv.Itoa(port))
			}
			a := startAgent(t, Config{Cmd: sleeper, Env: env, Healthcheck: hc})
			waitHealth(t, a, "healthy", isStatus(gantry.HealthHealthy))
			code.Store(http.StatusInternalServerError)
			waitHealth(t, a, "unhealthy", isStatus(gantry.HealthUnhealthy))
		})
	}
}

func TestHealthNone(t *testing.T) {
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: &gantry.Healthcheck{Test: []string{"NONE"}}})
	if st := a.Status(); st.Health != nil {
		t.Errorf("health %+v with NONE", st.Health)
	}
	b := startAgent(t, Config{Cmd: sleeper})
	if st := b.Status(); st.Health != nil {
		t.Errorf("health %+v without a healthcheck", st.Health)
	}
}

// TestHealthAfterExit: once the run ends the health reads unhealthy, the
// streak kept, and the record says so.
func TestHealthAfterExit(t *testing.T) {
	var errb syncBuffer
	hc := &gantry.Healthcheck{Test: []string{"CMD", "false"}, Interval: 5 * time.Millisecond, Retries: 100}
	a := startAgent(t, Config{Cmd: sleeper, Healthcheck: hc, Record: true, Stderr: &errb})
	waitHealth(t, a, "a streak", func(h gantry.Health) bool { return h.FailingStreak >= 2 })
	a.Signal(syscall.SIGTERM)
	a.Wait()
	st := a.Status()
	if st.Health == nil || st.Health.Status != gantry.HealthUnhealthy || st.Health.FailingStreak < 2 {
		t.Fatalf("health after the exit %+v, want unhealthy with the streak", st.Health)
	}
	time.Sleep(20 * time.Millisecond) // no probe runs any more: the streak stays
	if h := a.Status().Health; *h != *st.Health {
		t.Errorf("health changed after the exit: %+v, then %+v", st.Health, h)
	}
	r, err := ParseRecord([]byte(errb.String()))
	if err != nil || r.Health != gantry.HealthUnhealthy || r.FailingStreak != st.Health.FailingStreak {
		t.Errorf("record %+v, %v; want the final health", r, err)
	}
}

// TestHealthResetAtRestart: each run starts again from starting, the
// streak at 0.
func TestHealthResetAtRestart(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	dir := t.TempDir()
	stop := filepath.Join(dir, "stop")
	cmd, file := counted(t, -1)
	// Run 1 waits for the stop file and fails; run 2 sleeps.
	cmd[2] = strings.Replace(cmd[2], "case $n in ", "case $n in 1) while [ ! -e "+stop+" ]; do sleep 0.01; done; exit 1;; ", 1)
	// The probe fails at once in run 1 and hangs in run 2.
	probe := `[ "$(cat ` + file + `)" = 1 ] && exit 1; sleep 100`
	hc := &gantry.Healthcheck{Test: []string{"CMD-SHELL", probe}, Interval: 5 * time.Millisecond, Timeout: time.Hour, Retries: 1}
	a := startAgent(t, Config{Cmd: cmd, Healthcheck: hc, Restart: gantry.RestartPolicy{Name: "on-failure"}})
	waitHealth(t, a, "a streak in run 1", func(h gantry.Health) bool { return h.FailingStreak >= 2 })
	os.WriteFile(stop, nil, 0o644)
	waitFor(t, "run 2", func() bool { st := a.Status(); return st.RestartCount == 1 && st.State == StateRunning })
	if st := a.Status(); st.Health == nil || st.Health.Status != gantry.HealthStarting || st.Health.FailingStreak != 0 {
		t.Errorf("health in run 2 %+v, want starting, no streak", st.Health)
	}
}
