// Package runner is the Cloud Function that gantry deploys: its source
// (this file and go.mod.txt, shipped as go.mod) is embedded in gantry and
// uploaded as the function's source, so it uses the standard library only.
//
// The function is one container. Each run request starts the container's
// command (argv, env, working directory, standard input) as a child
// process, copies its output line by line to the function's own stdout and
// stderr (so to Cloud Logging, stream by stream), enforces the run's
// timeout, and answers when the command ends with HTTP 200 and the exact
// exit code in a header (128+N when signal N ended it), so that a failing
// command is never mistaken for a failing function. The command does not
// depend on the request: a caller that goes away can ask again with a
// wait request, which is how a new gantry Runtime recovers a run in
// flight. Signal and stop requests reach the running command because the
// function runs on one instance that serves concurrent requests.
//
//	POST /run     Request         -> 200 once the command ends, exit in headers
//	POST /wait    {"id": ...}     -> the same, for a run already started
//	POST /signal  {"id", "signal"}
//	POST /stop    {"id", "signal", "timeoutMillis"} -> signal, then SIGKILL after the timeout
//	GET  /status                  -> Status of the latest run, as JSON
package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The paths the function serves and the headers of its answers.
const (
	PathRun    = "/run"
	PathWait   = "/wait"
	PathSignal = "/signal"
	PathStop   = "/stop"
	PathStatus = "/status"

	// HeaderExitCode carries the exit code of a run that has ended.
	HeaderExitCode = "Gantry-Exit-Code"
	// HeaderSignal names the signal that ended it, if one did.
	HeaderSignal = "Gantry-Signal"
	// HeaderError says why the run ended as it did when the command
	// alone does not (it could not start, it timed out).
	HeaderError = "Gantry-Error"
)

// DefaultKillAfter is how long a run that reached its timeout has between
// its stop signal and SIGKILL, as Docker's default stop timeout.
const DefaultKillAfter = 10 * time.Second

// maxRuns bounds the finished runs the function remembers.
const maxRuns = 64

// Request asks for a run.
type Request struct {
	// ID names the run; a second request with the same ID waits for the
	// first run instead of starting another, so a retried request is safe.
	ID   string   `json:"id"`
	Argv []string `json:"argv"`
	// Env is added to the function's environment, later entries winning.
	Env []string `json:"env,omitempty"`
	Dir string   `json:"dir,omitempty"`
	// Stdin is the command's whole standard input; without it the command
	// reads end of file at once.
	Stdin []byte `json:"stdin,omitempty"`
	// TimeoutMillis bounds the run: then StopSignal is sent, and SIGKILL
	// KillAfterMillis later (DefaultKillAfter when zero). Zero means none.
	TimeoutMillis   int64  `json:"timeoutMillis,omitempty"`
	StopSignal      string `json:"stopSignal,omitempty"`
	KillAfterMillis int64  `json:"killAfterMillis,omitempty"`
}

// Control asks something of a run: wait for it, signal it, or stop it.
type Control struct {
	ID     string `json:"id"`
	Signal string `json:"signal,omitempty"`
	// TimeoutMillis is a stop's time between Signal and SIGKILL; negative
	// waits for ever.
	TimeoutMillis int64 `json:"timeoutMillis,omitempty"`
}

// Status describes a run.
type Status struct {
	ID       string    `json:"id"`
	Running  bool      `json:"running"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exitCode"`
	Signal   string    `json:"signal,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// run is one command of the function.
type run struct {
	mu   sync.Mutex
	st   Status
	proc *os.Process
	// killTimer is the pending SIGKILL of a stop or a timeout.
	killTimer *time.Timer
	done      chan struct{}
}

func (r *run) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// signal sends sig to the run's main process only, as an init does; one
// that has ended is left alone.
func (r *run) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.Running && r.proc != nil {
		r.proc.Signal(sig)
	}
}

// stop sends sig, then SIGKILL after d (at once when d is zero, never
// when it is negative). An earlier pending SIGKILL is replaced.
func (r *run) stop(sig syscall.Signal, d time.Duration) {
	if d == 0 {
		r.signal(syscall.SIGKILL)
		return
	}
	r.signal(sig)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.killTimer != nil {
		r.killTimer.Stop()
		r.killTimer = nil
	}
	if d > 0 && r.st.Running {
		r.killTimer = time.AfterFunc(d, func() { r.signal(syscall.SIGKILL) })
	}
}

// Function is the state of one instance: its runs, the latest last.
type Function struct {
	mu     sync.Mutex
	runs   map[string]*run
	order  []string
	stdout io.Writer
	stderr io.Writer
	outMu  sync.Mutex
	mux    *http.ServeMux
}

// New returns an instance's state, writing the commands' output to stdout
// and stderr.
func New(stdout, stderr io.Writer) *Function {
	f := &Function{runs: map[string]*run{}, stdout: stdout, stderr: stderr}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathRun, f.serveRun)
	mux.HandleFunc("POST "+PathWait, f.serveWait)
	mux.HandleFunc("POST "+PathSignal, f.serveSignal)
	mux.HandleFunc("POST "+PathStop, f.serveStop)
	mux.HandleFunc("GET "+PathStatus, f.serveStatus)
	f.mux = mux
	return f
}

// ServeHTTP serves the function's requests.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// ShutdownGrace is how long runs have to end after the instance is told
// to shut down, within the 10 seconds Cloud Run gives an instance between
// SIGTERM and SIGKILL.
const ShutdownGrace = 5 * time.Second

// Shutdown ends the instance's runs as a container's end: the stop
// signal SIGTERM to each main process, and SIGKILL to whatever is left of
// them after grace. It returns once they have ended.
func (f *Function) Shutdown(grace time.Duration) {
	f.mu.Lock()
	var running []*run
	for _, rn := range f.runs {
		if rn.status().Running {
			running = append(running, rn)
		}
	}
	f.mu.Unlock()
	for _, rn := range running {
		rn.stop(syscall.SIGTERM, grace)
	}
	for _, rn := range running {
		<-rn.done
	}
}

var (
	instanceOnce sync.Once
	instance     *Function
)

// Run is the function's entry point. The first request sets the instance
// up; from then on SIGTERM, which Cloud Run sends before it shuts an
// instance down, ends the runs before the instance exits, so that no
// command outlives it.
func Run(w http.ResponseWriter, r *http.Request) {
	instanceOnce.Do(func() {
		instance = New(os.Stdout, os.Stderr)
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			instance.Shutdown(ShutdownGrace)
			os.Exit(0)
		}()
	})
	instance.ServeHTTP(w, r)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 32<<20)).Decode(v); err != nil {
		http.Error(w, "runner: bad request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (f *Function) lookup(id string) *run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *Function) serveRun(w http.ResponseWriter, r *http.Request) {
	var req Request
	if !decode(w, r, &req) {
		return
	}
	if req.ID == "" || len(req.Argv) == 0 || req.Argv[0] == "" {
		http.Error(w, "runner: a run needs an id and a command", http.StatusBadRequest)
		return
	}
	stopSig, err := parseSignal(req.StopSignal, syscall.SIGTERM)
	if err != nil {
		http.Error(w, "runner: "+err.Error(), http.StatusBadRequest)
		return
	}
	rn, err := f.start(req, stopSig)
	if err != nil {
		http.Error(w, "runner: "+err.Error(), http.StatusConflict)
		return
	}
	answer(r.Context(), w, rn)
}

func (f *Function) serveWait(w http.ResponseWriter, r *http.Request) {
	var c Control
	if !decode(w, r, &c) {
		return
	}
	rn := f.lookup(c.ID)
	if rn == nil {
		http.Error(w, "runner: no run "+strconv.Quote(c.ID)+" on this instance", http.StatusNotFound)
		return
	}
	answer(r.Context(), w, rn)
}

// answer writes the run's exit status once it has ended; a caller that
// goes away first gets nothing, and the run goes on.
func answer(ctx context.Context, w http.ResponseWriter, rn *run) {
	select {
	case <-rn.done:
	case <-ctx.Done():
		return
	}
	st := rn.status()
	h := w.Header()
	h.Set(HeaderExitCode, strconv.Itoa(st.ExitCode))
	if st.Signal != "" {
		h.Set(HeaderSignal, st.Signal)
	}
	if st.Error != "" {
		h.Set(HeaderError, oneLine(st.Error))
	}
	h.Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (f *Function) serveSignal(w http.ResponseWriter, r *http.Request) {
	var c Control
	if !decode(w, r, &c) {
		return
	}
	sig, err := parseSignal(c.Signal, syscall.SIGKILL)
	if err != nil {
		http.Error(w, "runner: "+err.Error(), http.StatusBadRequest)
		return
	}
	rn := f.lookup(c.ID)
	if rn == nil {
		http.Error(w, "runner: no run "+strconv.Quote(c.ID)+" on this instance", http.StatusNotFound)
		return
	}
	if !rn.status().Running {
		http.Error(w, "runner: run "+strconv.Quote(c.ID)+" is not running", http.StatusConflict)
		return
	}
	rn.signal(sig)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Function) serveStop(w http.ResponseWriter, r *http.Request) {
	var c Control
	if !decode(w, r, &c) {
		return
	}
	sig, err := parseSignal(c.Signal, syscall.SIGTERM)
	if err != nil {
		http.Error(w, "runner: "+err.Error(), http.StatusBadRequest)
		return
	}
	rn := f.lookup(c.ID)
	if rn == nil {
		http.Error(w, "runner: no run "+strconv.Quote(c.ID)+" on this instance", http.StatusNotFound)
		return
	}
	rn.stop(sig, time.Duration(c.TimeoutMillis)*time.Millisecond)
	w.WriteHeader(http.StatusNoContent)
}

// serveStatus answers the status of the run given by ?id=, or of the
// latest run; 404 when the instance knows none.
func (f *Function) serveStatus(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	f.mu.Lock()
	if id == "" && len(f.order) > 0 {
		id = f.order[len(f.order)-1]
	}
	rn := f.runs[id]
	f.mu.Unlock()
	if rn == nil {
		http.Error(w, "runner: no run on this instance", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rn.status())
}

// start starts the run req describes, or returns the run of the same ID.
// Only one command runs at a time: the function is one container.
func (f *Function) start(req Request, stopSig syscall.Signal) (*run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rn := f.runs[req.ID]; rn != nil {
		return rn, nil
	}
	if n := len(f.order); n > 0 {
		if last := f.runs[f.order[n-1]]; last.status().Running {
			return nil, fmt.Errorf("run %q is still running", last.st.ID)
		}
	}
	rn := &run{st: Status{ID: req.ID, Running: true, Started: time.Now().UTC()}, done: make(chan struct{})}
	f.runs[req.ID] = rn
	f.order = append(f.order, req.ID)
	if len(f.order) > maxRuns {
		delete(f.runs, f.order[0])
		f.order = f.order[1:]
	}
	f.launch(rn, req, stopSig)
	return rn, nil
}

// launch starts the command and a goroutine that records its end.
func (f *Function) launch(rn *run, req Request, stopSig syscall.Signal) {
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	if len(req.Stdin) > 0 {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	// The command leads a process group of its own, so that what it
	// leaves behind can be ended with it, as a container's processes are.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err1 := os.Pipe()
	errR, errW, err2 := os.Pipe()
	if err := errors.Join(err1, err2); err != nil {
		f.finish(rn, 125, "", "runner: "+err.Error())
		return
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err := cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		f.finish(rn, startFailure(err), "", err.Error())
		return
	}
	rn.mu.Lock()
	rn.proc = cmd.Process
	rn.mu.Unlock()
	var copied sync.WaitGroup
	copied.Add(2)
	go f.copyLines(&copied, outR, f.stdout)
	go f.copyLines(&copied, errR, f.stderr)
	var timer *time.Timer
	if req.TimeoutMillis > 0 {
		killAfter := time.Duration(req.KillAfterMillis) * time.Millisecond
		if killAfter <= 0 {
			killAfter = DefaultKillAfter
		}
		timer = time.AfterFunc(time.Duration(req.TimeoutMillis)*time.Millisecond, func() {
			rn.mu.Lock()
			rn.st.Error = fmt.Sprintf("the run timed out after %s", time.Duration(req.TimeoutMillis)*time.Millisecond)
			rn.mu.Unlock()
			rn.stop(stopSig, killAfter)
		})
	}
	go func() {
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		// The container ends with its main process: whatever it left
		// running goes too, and then its output is complete.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		copied.Wait()
		code, sig := exitOf(cmd.ProcessState, err)
		rn.mu.Lock()
		msg := rn.st.Error
		rn.mu.Unlock()
		f.finish(rn, code, sig, msg)
	}()
}

// copyLines copies r to w a whole line at a time, under the function's
// output lock, so that lines of the two streams never interleave inside
// a line. A last line without a newline gets one: the function's streams
// outlive the command, and the next run's first line must not join it
// (Cloud Logging keeps lines, not bytes, so the reader sees one line
// either way).
func (f *Function) copyLines(wg *sync.WaitGroup, r io.ReadCloser, w io.Writer) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			f.outMu.Lock()
			w.Write(line)
			f.outMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (f *Function) finish(rn *run, code int, sig, msg string) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.killTimer != nil {
		rn.killTimer.Stop()
		rn.killTimer = nil
	}
	rn.st.Running = false
	rn.st.Finished = time.Now().UTC()
	rn.st.ExitCode, rn.st.Signal, rn.st.Error = code, sig, msg
	rn.proc = nil
	close(rn.done)
}

// startFailure is an init's exit code for a command that cannot start:
// 127 when it does not exist, 126 when it cannot be executed.
func startFailure(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}

// exitOf reads how the command ended: its code, or 128+N and the name of
// signal N.
func exitOf(ps *os.ProcessState, err error) (int, string) {
	if ps == nil {
		return 125, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), signalName(ws.Signal())
	}
	return ps.ExitCode(), ""
}

// signals are the names the runner accepts, as Docker's.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ILL": syscall.SIGILL,
	"TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT, "BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN,
	"TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH, "IO": syscall.SIGIO,
	"SYS": syscall.SIGSYS,
}

// parseSignal reads "SIGTERM", "TERM" or "15"; empty means def.
func parseSignal(s string, def syscall.Signal) (syscall.Signal, error) {
	if s == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %q is out of range", s)
		}
		return syscall.Signal(n), nil
	}
	if sig, ok := signals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return "SIG" + name
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}
