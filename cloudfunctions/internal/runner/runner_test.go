package runner

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a stream the function writes to while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type served struct {
	t              *testing.T
	fn             *Function
	srv            *httptest.Server
	stdout, stderr *lockedBuffer
}

// serve runs the function on a real local HTTP server.
func serve(t *testing.T) *served {
	t.Helper()
	in := &served{t: t, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	in.fn = New(in.stdout, in.stderr)
	in.srv = httptest.NewServer(in.fn)
	t.Cleanup(func() {
		in.fn.Shutdown(0)
		in.srv.Close()
	})
	return in
}

// post sends v to path and returns the answer, its body read.
func (in *served) post(ctx context.Context, path string, v any) (*http.Response, string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp, b.String(), err
}

// exit is what a finished run's answer says.
type exit struct {
	code   int
	signal string
	err    string
}

func (in *served) exitOf(resp *http.Response, body string, err error) exit {
	in.t.Helper()
	if err != nil {
		in.t.Fatalf("request: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		in.t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	code, err := strconv.Atoi(resp.Header.Get(HeaderExitCode))
	if err != nil {
		in.t.Fatalf("%s header %q: %v", HeaderExitCode, resp.Header.Get(HeaderExitCode), err)
	}
	return exit{code, resp.Header.Get(HeaderSignal), resp.Header.Get(HeaderError)}
}

func (in *served) run(req Request) exit {
	in.t.Helper()
	return in.exitOf(in.post(context.Background(), PathRun, req))
}

// startRun starts req in the background and returns its result's channel.
func (in *served) startRun(req Request) <-chan exit {
	ch := make(chan exit, 1)
	go func() {
		resp, body, err := in.post(context.Background(), PathRun, req)
		if err != nil || resp.StatusCode != http.StatusOK {
			ch <- exit{code: -1, err: body}
			return
		}
		code, _ := strconv.Atoi(resp.Header.Get(HeaderExitCode))
		ch <- exit{code, resp.Header.Get(HeaderSignal), resp.Header.Get(HeaderError)}
	}()
	return ch
}

// waitRunning returns once run id has started.
func (in *served) waitRunning(id string) {
	in.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rn := in.fn.lookup(id); rn != nil && rn.status().Running {
			rn.mu.Lock()
			started := rn.proc != nil
			rn.mu.Unlock()
			if started {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	in.t.Fatalf("run %s did not start", id)
}

// waitOutput returns once the served's stdout holds s, so that a script
// is known to have set its traps.
func (in *served) waitOutput(s string) {
	in.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.stdout.String(), s) {
		if time.Now().After(deadline) {
			in.t.Fatalf("stdout never held %q; it holds %q", s, in.stdout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sh(id, script string) Request { return Request{ID: id, Argv: []string{"sh", "-c", script}} }

func TestRunExitCodesAndOutput(t *testing.T) {
	in := serve(t)
	for _, tc := range []struct {
		name string
		req  Request
		want exit
	}{
		{"zero", sh("a", "echo out; echo err >&2"), exit{}},
		{"code", sh("b", "exit 3"), exit{code: 3}},
		{"killed", sh("c", "kill -KILL $$"), exit{code: 137, signal: "SIGKILL"}},
		{"not found", Request{ID: "d", Argv: []string{"/no/such/command"}}, exit{code: 127}},
		{"not executable", Request{ID: "e", Argv: []string{os.DevNull}}, exit{code: 126}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := in.run(tc.req)
			if got.code != tc.want.code || got.signal != tc.want.signal {
				t.Errorf("exit = %+v, want code %d signal %q", got, tc.want.code, tc.want.signal)
			}
			if tc.want.code >= 126 && tc.want.code <= 127 && got.err == "" {
				t.Errorf("a command that cannot start has no %s header", HeaderError)
			}
		})
	}
	if got := in.stdout.String(); got != "out\n" {
		t.Errorf("stdout = %q, want %q", got, "out\n")
	}
	if got := in.stderr.String(); got != "err\n" {
		t.Errorf("stderr = %q, want %q", got, "err\n")
	}
}

func TestRunEnvDirStdin(t *testing.T) {
	in := serve(t)
	dir := t.TempDir()
	got := in.run(Request{
		ID:    "x",
		Argv:  []string{"sh", "-c", `echo "$GREETING $(pwd)"; cat; printf 'no newline'`},
		Env:   []string{"GREETING=bonjour"},
		Dir:   dir,
		Stdin: []byte("from stdin\n"),
	})
	if got.code != 0 {
		t.Fatalf("exit = %+v, want 0", got)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "bonjour " + real + "\nfrom stdin\nno newline\n"
	if out := in.stdout.String(); out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

// TestLinesDoNotInterleave: where both streams reach one log, as on a
// terminal, a line of one is never cut by a line of the other.
func TestLinesDoNotInterleave(t *testing.T) {
	both := &lockedBuffer{}
	fn := New(both, both)
	srv := httptest.NewServer(fn)
	defer srv.Close()
	in := &served{t: t, fn: fn, srv: srv, stdout: both, stderr: both}
	long := strings.Repeat("x", 100<<10)
	got := in.run(sh("l", `l=$(head -c 102400 /dev/zero | tr '\0' x); for i in 1 2 3 4; do echo "$l"; done & for i in 1 2 3 4; do echo "$l" >&2; done; wait`))
	if got.code != 0 {
		t.Fatalf("exit = %+v", got)
	}
	lines := strings.Split(strings.TrimSuffix(both.String(), "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("the log has %d lines, want 8", len(lines))
	}
	for i, l := range lines {
		if l != long {
			t.Errorf("line %d is %d bytes, not one whole line of %d", i, len(l), len(long))
		}
	}
}

func TestTimeout(t *testing.T) {
	in := serve(t)
	got := in.run(Request{ID: "t", Argv: []string{"sleep", "60"}, TimeoutMillis: 100})
	if got.code != 143 || got.signal != "SIGTERM" || !strings.Contains(got.err, "timed out") {
		t.Errorf("exit = %+v, want 143 SIGTERM, timed out", got)
	}
	got = in.run(Request{ID: "t2", Argv: []string{"sh", "-c", `trap "" TERM; echo ready; sleep 60`}, TimeoutMillis: 100, KillAfterMillis: 100})
	if got.code != 137 || got.signal != "SIGKILL" {
		t.Errorf("exit = %+v, want 137 SIGKILL", got)
	}
}

// TestStop holds stop to Docker's semantics: the stop signal, then
// SIGKILL after the timeout.
func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         exit
	}{
		{"trapped", `trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done`, 10 * time.Second, exit{}},
		{"untrapped", `echo ready; exec sleep 60`, 10 * time.Second, exit{code: 143, signal: "SIGTERM"}},
		{"ignored", `trap "" TERM; echo ready; while :; do sleep 0.05; done`, 200 * time.Millisecond, exit{code: 137, signal: "SIGKILL"}},
		{"zero timeout", `trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done`, 0, exit{code: 137, signal: "SIGKILL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := serve(t)
			res := in.startRun(sh("s", tc.script))
			in.waitOutput("ready")
			resp, body, err := in.post(context.Background(), PathStop, Control{ID: "s", TimeoutMillis: tc.timeout.Milliseconds()})
			if err != nil || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("stop: %v %v %s", err, resp.StatusCode, body)
			}
			if got := <-res; got != tc.want {
				t.Errorf("exit = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSignal(t *testing.T) {
	in := serve(t)
	res := in.startRun(sh("u", `trap "echo usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done`))
	in.waitOutput("ready")
	resp, body, err := in.post(context.Background(), PathSignal, Control{ID: "u", Signal: "SIGUSR1"})
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("signal: %v %v %s", err, resp.StatusCode, body)
	}
	if got := <-res; got.code != 7 {
		t.Errorf("exit = %+v, want 7", got)
	}
	resp, _, err = in.post(context.Background(), PathSignal, Control{ID: "u", Signal: "KILL"})
	if err != nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("signal to an ended run: %v, status %v, want 409", err, resp.StatusCode)
	}
	resp, _, err = in.post(context.Background(), PathSignal, Control{ID: "u", Signal: "SIGNOPE"})
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown signal: %v, status %v, want 400", err, resp.StatusCode)
	}
}

// TestRunOutlivesItsCaller: a caller that goes away leaves the run going,
// and a wait request (from another caller) gets its exit code.
func TestRunOutlivesItsCaller(t *testing.T) {
	in := serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := in.post(ctx, PathRun, sh("w", `echo ready; sleep 0.3; exit 5`))
		done <- err
	}()
	in.waitOutput("ready")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v", err)
	}
	if got := in.exitOf(in.post(context.Background(), PathWait, Control{ID: "w"})); got.code != 5 {
		t.Errorf("wait = %+v, want 5", got)
	}
	resp, _, err := in.post(context.Background(), PathWait, Control{ID: "nope"})
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("wait for an unknown run: %v, status %v, want 404", err, resp.StatusCode)
	}
}

// TestOneRunAtATime: a retried run request joins the run it repeats; a
// new run while one runs is refused.
func TestOneRunAtATime(t *testing.T) {
	in := serve(t)
	first := in.startRun(sh("r1", `echo ready; sleep 0.3; exit 4`))
	in.waitRunning("r1")
	again := in.startRun(sh("r1", `exit 99`))
	resp, _, err := in.post(context.Background(), PathRun, sh("r2", "exit 0"))
	if err != nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("second run while one runs: %v, status %v, want 409", err, resp.StatusCode)
	}
	if a, b := <-first, <-again; a.code != 4 || b.code != 4 {
		t.Errorf("exits = %+v and %+v, want 4 for both", a, b)
	}
	req, _ := http.NewRequest(http.MethodGet, in.srv.URL+PathStatus, nil)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	var st Status
	if err := json.NewDecoder(sresp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.ID != "r1" || st.Running || st.ExitCode != 4 || st.Finished.Before(st.Started) {
		t.Errorf("status = %+v, want r1 ended with 4", st)
	}
}

func TestShutdownEndsRuns(t *testing.T) {
	in := serve(t)
	res := in.startRun(sh("z", `trap "" TERM; echo ready; while :; do sleep 0.05; done`))
	in.waitOutput("ready")
	in.fn.Shutdown(100 * time.Millisecond)
	if got := <-res; got.code != 137 {
		t.Errorf("exit = %+v, want 137", got)
	}
}

// TestZipBuilds builds the embedded source as Cloud Functions' Go
// buildpack does: a main package beside it that serves the entry point,
// with no module proxy, so the runner needs the standard library only.
func TestZipBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner with the Go toolchain")
	}
	dir := t.TempDir()
	zr, err := zip.NewReader(bytes.NewReader(Zip()), int64(len(Zip())))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		if err := os.WriteFile(filepath.Join(dir, f.Name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(names, ",") != "go.mod,runner.go" {
		t.Fatalf("zip holds %v", names)
	}
	if mod, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !strings.HasPrefix(string(mod), "module "+Module+"\n") {
		t.Fatalf("go.mod = %q", mod)
	}
	if !bytes.Equal(Zip(), Zip()) {
		t.Error("two zips of the same source differ")
	}
	main := "package main\n\nimport (\n\t\"net/http\"\n\n\tfn \"" + Module + "\"\n)\n\nfunc main() { http.ListenAndServe(\":8080\", http.HandlerFunc(fn." + EntryPoint + ")) }\n"
	os.Mkdir(filepath.Join(dir, "cmd"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "cmd", "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./cmd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}
