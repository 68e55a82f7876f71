package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
)

const secret = "0123456789abcdef0123456789abcdef"

var agentBin string

// TestMain builds the real binary once, static as it ships.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gantry-agent-test")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "gantry-agent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func agentCmd(env []string, args ...string) *exec.Cmd {
	c := exec.Command(agentBin, args...)
	c.Env = append(os.Environ(), env...)
	return c
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

func TestPassThrough(t *testing.T) {
	for _, tc := range []struct {
		name             string
		args             []string
		stdout, stderr   string
		code             int
		stderrContaining bool
	}{
		{"output and code", []string{"sh", "-c", "printf 'out\\000\\n'; printf err >&2; exit 5"}, "out\x00\n", "err", 5, false},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, "", "", 143, false},
		{"missing command", []string{"no-such-command-xyz"}, "", "not found", 127, true},
		{"not executable", []string{"/etc/passwd"}, "", "permission denied", 126, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			c := agentCmd(nil, append([]string{"--"}, tc.args...)...)
			c.Stdout, c.Stderr = &out, &errb
			code := exitCode(t, c.Run())
			if code != tc.code || out.String() != tc.stdout {
				t.Errorf("exit %d stdout %q, want %d and %q", code, out.String(), tc.code, tc.stdout)
			}
			if tc.stderrContaining && !strings.Contains(errb.String(), tc.stderr) || !tc.stderrContaining && errb.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", errb.String(), tc.stderr)
			}
		})
	}
}

func TestSignalForwarding(t *testing.T) {
	c := agentCmd(nil, "--", "sh", "-c", `trap 'exit 42' TERM; echo ready; while :; do sleep 0.01; done`)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("read %q", line)
	}
	c.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, c.Wait()); code != 42 {
		t.Fatalf("exit code %d, want 42 from the command's trap", code)
	}
}

// children lists the processes whose parent is pid, by command name.
func children(pid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			out[child] = s[strings.IndexByte(s, '(')+1 : i]
		}
	}
	return out
}

func TestReapsOrphans(t *testing.T) {
	c := agentCmd(nil, "--", "sh", "-c", "(sleep 0.3 &); echo spawned; read x || true")
	in, _ := c.StdinPipe()
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	bufio.NewReader(out).ReadString('\n')
	// The orphaned sleep re-parents to the agent (a child subreaper)...
	orphan := 0
	waitFor(t, "the orphan to re-parent", func() bool {
		for pid, name := range children(c.Process.Pid) {
			if name == "sleep" {
				orphan = pid
				return true
			}
		}
		return false
	})
	// ...and once it exits the agent reaps it: no zombie remains.
	waitFor(t, "the orphan to be reaped", func() bool {
		_, ok := children(c.Process.Pid)[orphan]
		return !ok
	})
	in.Close()
	if code := exitCode(t, c.Wait()); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// driveShell runs an exec and an attach against a real sh running as
// the agent's main command, then checks the agent exits with sh's code.
func driveShell(t *testing.T, c *exec.Cmd, cl *agent.Client) {
	ctx := context.Background()
	var out, errb bytes.Buffer
	res, err := cl.Exec(ctx, gantry.ExecConfig{
		Cmd:    []string{"sh", "-c", `echo "secret=[$GANTRY_AGENT_SECRET]"; echo oops >&2; exit 4`},
		Stdout: &out, Stderr: &errb,
	})
	if err != nil || res.ExitCode != 4 || out.String() != "secret=[]\n" || errb.String() != "oops\n" {
		t.Fatalf("Exec = %+v, %v, stdout %q, stderr %q", res, err, out.String(), errb.String())
	}
	var aout bytes.Buffer
	res, err = cl.Attach(ctx, gantry.AttachOptions{Stdin: strings.NewReader("echo attached; exit 9\n"), Stdout: &aout})
	if err != nil || res.ExitCode != 9 || aout.String() != "attached\n" {
		t.Fatalf("Attach = %+v, %v, %q", res, err, aout.String())
	}
	if code := exitCode(t, c.Wait()); code != 9 {
		t.Fatalf("agent exit code %d, want 9", code)
	}
}

// startListening starts c, an agent with -listen 127.0.0.1:0 and
// -addr-file file, and returns the address it listens on.
func startListening(t *testing.T, c *exec.Cmd, file string) string {
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM, which the agent passes on: SIGKILL would leave the main
	// command running, as the agent is not PID 1 here.
	t.Cleanup(func() {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	})
	var addr []byte
	waitFor(t, "the agent to listen", func() bool {
		addr, _ = os.ReadFile(file)
		return len(addr) > 0
	})
	return string(addr)
}

func TestForwardModeDrivesShell(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	var logs bytes.Buffer
	c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, "-listen", "127.0.0.1:0", "-addr-file", addrFile, "-stdin", "-stdin-once", "--", "sh")
	c.Stdout = &logs
	addr := startListening(t, c, addrFile)
	cl, err := agent.Dial(context.Background(), "ws://"+addr+"/", []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	driveShell(t, c, cl)
	if logs.String() != "attached\n" {
		t.Errorf("the agent's own stdout got %q, want the main command's output", logs.String())
	}
}

// TestEndpointFlag: -endpoint replaces the default (the loopback address
// dialled directly) with the URLs controllers reach the agent by; a
// controller that dialled anything else is refused.
func TestEndpointFlag(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret, "GANTRY_AGENT_ENDPOINT=wss://agent.example/x, wss://other.example/"},
		"-listen", "127.0.0.1:0", "-addr-file", addrFile, "--", "sleep", "1000")
	addr := startListening(t, c, addrFile)
	if _, err := agent.Dial(context.Background(), "ws://"+addr+"/", []byte(secret), nil); !errors.Is(err, gantry.ErrPermissionDenied) {
		t.Errorf("Dial of an address not in -endpoint: %v, want ErrPermissionDenied", err)
	}

	var errb bytes.Buffer
	bad := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, "-listen", "127.0.0.1:0", "-endpoint", "ftp://agent.example/", "--", "true")
	bad.Stderr = &errb
	if code := exitCode(t, bad.Run()); code != 125 || !strings.Contains(errb.String(), "ftp") {
		t.Errorf("a bad -endpoint: exit %d, stderr %q; want 125 naming it", code, errb.String())
	}
}

func TestReverseModeDrivesShell(t *testing.T) {
	hub, err := agent.NewHub(func(id string) []byte {
		if id == "c1" {
			return []byte(secret)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	c := agentCmd(nil, "-connect", "ws"+strings.TrimPrefix(srv.URL, "http"), "-id", "c1", "-secret-file", secretFile, "-stdin", "--", "sh")
	c.Stdout = io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := hub.Client(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	driveShell(t, c, cl)
}

func TestRelayModeDrivesShell(t *testing.T) {
	rl, err := agent.NewRelay(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	base := "ws" + strings.TrimPrefix(srv.URL, "http")
	u, err := agent.RelayAgentURL(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	c := agentCmd(nil, "-relay", u, "-id", "c1", "-secret-file", secretFile, "-stdin", "--", "sh")
	c.Stdout = io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := agent.DialRelay(ctx, base, "c1", []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	driveShell(t, c, cl)
}

func TestRelayAndConnectExcludeEachOther(t *testing.T) {
	var errb bytes.Buffer
	c := agentCmd(nil, "-relay", "ws://127.0.0.1:1/agent?id=c1", "-connect", "ws://127.0.0.1:1/", "--", "true")
	c.Stderr = &errb
	if code := exitCode(t, c.Run()); code != 125 || !strings.Contains(errb.String(), "-relay") {
		t.Errorf("-relay with -connect: exit %d, stderr %q; want 125 naming them", code, errb.String())
	}
}

func BenchmarkStartup(b *testing.B) {
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"true", []string{"true"}},
		{"agent-true", []string{agentBin, "--", "true"}},
		{"agent-listen-true", []string{agentBin, "-listen", "127.0.0.1:0", "--", "true"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				c := exec.Command(bc.args[0], bc.args[1:]...)
				c.Env = append(os.Environ(), "GANTRY_AGENT_SECRET="+secret)
				if err := c.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func openFDs(t *testing.T, pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestHeldConnectionsDoNotExhaustDescriptors: peers that got a refusal
// used to keep their connections, and the agent's file descriptors, for
// ever; with ulimit -n 128, 116 of them locked a controller out. Now
// 1,000 of each kind, left open on the attacker's side, are all closed by
// the agent, which stays at its baseline of descriptors, and a controller
// connects and runs a command while they are open.
func TestHeldConnectionsDoNotExhaustDescriptors(t *testing.T) {
	const perKind = 1000
	addrFile := filepath.Join(t.TempDir(), "addr")
	c := exec.Command("sh", "-c", `ulimit -n 128 && exec "$0" "$@"`, agentBin, "-listen", "127.0.0.1:0", "-addr-file", addrFile, "--", "sleep", "1000")
	c.Env = append(os.Environ(), "GANTRY_AGENT_SECRET="+secret)
	addr := startListening(t, c, addrFile)
	baseline := openFDs(t, c.Process.Pid)

	hugeFrame := []byte{0x82, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4} // 2^40 bytes claimed
	upgrade := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: other.v1\r\n\r\n"
	kinds := []struct {
		name string
		send []byte
	}{
		{"no subprotocol, then a huge frame", append([]byte(upgrade), hugeFrame...)},
		{"keep-alive after a refusal", []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")},
	}
	start := time.Now()
	var closed [2]atomic.Int64
	var peers []net.Conn
	t.Cleanup(func() {
		for _, p := range peers {
			p.Close()
		}
	})
	for k, kind := range kinds {
		for range perKind {
			p, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			peers = append(peers, p)
			p.Write(kind.send)
			go func() {
				io.Copy(io.Discard, p)
				closed[k].Add(1)
			}()
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := agent.Dial(ctx, "ws://"+addr+"/", []byte(secret), nil)
	if err != nil {
		t.Fatalf("a controller could not connect during the attack: %v", err)
	}
	defer cl.Close()
	if res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec during the attack = %+v, %v", res, err)
	}

	waitFor(t, "the agent to close every held connection", func() bool {
		return closed[0].Load() == perKind && closed[1].Load() == perKind
	})
	t.Logf("%d held connections closed by the agent in %v", 2*perKind, time.Since(start).Round(time.Millisecond))
	// net/http closes a connection's descriptor 0.5 s after the FIN the
	// attacker sees. The controller's connection is the one descriptor
	// more than before the attack.
	waitFor(t, "the agent to release the held connections' descriptors", func() bool {
		return openFDs(t, c.Process.Pid) <= baseline+1
	})
	t.Logf("the agent holds %d descriptors, %d before the attack, with the attacker's ends still open", openFDs(t, c.Process.Pid), baseline)
}

// TestExecsDoNotOutliveTheAgent: when the main command exited, an agent
// that is not PID 1 used to exit right after sending SIGHUP to its exec
// sessions, before the SIGKILL 2 s later; a process that ignored SIGHUP
// lived on. The agent now exits only once it has killed it.
func TestExecsDoNotOutliveTheAgent(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, "-listen", "127.0.0.1:0", "-addr-file", addrFile, "--", "sh", "-c", "read x || true")
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	addr := startListening(t, c, addrFile)
	cl, err := agent.Dial(context.Background(), "ws://"+addr+"/", []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pr, pw := io.Pipe()
	if _, err := cl.Start(context.Background(), gantry.ExecConfig{
		Cmd: []string{"sh", "-c", `trap "" HUP; echo $$; exec sleep 1000`}, Stdout: pw,
	}); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	in.Close()
	if code := exitCode(t, c.Wait()); code != 0 {
		t.Fatalf("agent exit code %d, want the main command's 0", code)
	}
	if syscall.Kill(pid, 0) != syscall.ESRCH {
		t.Error("an exec'd process that ignores SIGHUP outlived the agent")
	}
}

// splitRecord cuts the record off the end of stderr, failing the test if
// stderr does not end with exactly one.
func splitRecord(t *testing.T, stderr []byte) ([]byte, agent.Record) {
	t.Helper()
	if !bytes.HasSuffix(stderr, []byte("}}\n")) {
		t.Fatalf("stderr does not end with the record: %q", stderr)
	}
	i := bytes.LastIndexByte(stderr[:len(stderr)-1], '\n') + 1
	r, err := agent.ParseRecord(stderr[i:])
	if err != nil || !bytes.Equal(stderr[i:], r.Line()) || bytes.Count(stderr, []byte("gantryAgentRecord")) != 1 {
		t.Fatalf("the last line of stderr, %q: %+v, %v", stderr[i:], r, err)
	}
	return stderr[:i], r
}

func TestRecord(t *testing.T) {
	noexec := filepath.Join(t.TempDir(), "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		name           string
		env            []string
		args           []string
		stdout, stderr string // stderr without the record; "~x": containing x
		code           int
		record         agent.Record
	}{
		{"exit code and counts", nil, []string{"-record", "--", "sh", "-c", "echo a; echo b; printf c >&2; exit 3"},
			"a\nb\n", "c\n", 3, agent.Record{ExitCode: 3, StdoutLines: 2, StderrLines: 1}},
		{"killed", nil, []string{"-record", "--", "sh", "-c", "kill -KILL $$"},
			"", "", 137, agent.Record{ExitCode: 137, Signal: 9}},
		{"not found", nil, []string{"-record", "--", "no-such-command-xyz"},
			"", "~not found", 127, agent.Record{ExitCode: 127, StderrLines: 1}},
		{"not executable", nil, []string{"-record", "--", noexec},
			"", "~permission denied", 126, agent.Record{ExitCode: 126, StderrLines: 1}},
		{"no secret", nil, []string{"-record", "-listen", "127.0.0.1:0", "--", "true"},
			"", "~secret", 125, agent.Record{ExitCode: 125, StderrLines: 1}},
		{"a terminal", nil, []string{"-record", "-tty", "--", "sh", "-c", "echo out; echo err >&2"},
			"out\r\nerr\r\n", "", 0, agent.Record{StdoutLines: 2}},
		// With a secret the record is signed, for the -id and the run
		// Cloud Run names.
		{"with a server", []string{"GANTRY_AGENT_SECRET=" + secret, "CLOUD_RUN_EXECUTION=exec-1"}, []string{"-record", "-id", "c1", "-listen", "127.0.0.1:0", "--", "sh", "-c", "echo out"},
			"out\n", "", 0, agent.Record{StdoutLines: 1, Run: "exec-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			c := agentCmd(tc.env, tc.args...)
			c.Stdout, c.Stderr = &out, &errb
			code := exitCode(t, c.Run())
			stderr, r := splitRecord(t, errb.Bytes())
			if r.MAC != "" {
				if !r.Verify([]byte(secret), "c1") {
					t.Errorf("record %+v: its MAC does not verify", r)
				}
				r.MAC = ""
			}
			// A command that ran has its times; one that never did has
			// none.
			if ran := tc.code < 125 || tc.code > 128; r.StartedAt.IsZero() == ran || r.FinishedAt.Before(r.StartedAt) {
				t.Errorf("record started %v, finished %v", r.StartedAt, r.FinishedAt)
			}
			r.StartedAt, r.FinishedAt = time.Time{}, time.Time{}
			if code != tc.code || r != tc.record || out.String() != tc.stdout {
				t.Errorf("exit %d, record %+v, stdout %q; want %d, %+v, %q", code, r, out.String(), tc.code, tc.record, tc.stdout)
			}
			if want, ok := strings.CutPrefix(tc.stderr, "~"); ok && !strings.Contains(string(stderr), want) || !ok && string(stderr) != tc.stderr {
				t.Errorf("stderr %q, want %q", stderr, tc.stderr)
			}
		})
	}
}

// TestRecordCountsTheAgentsOwnLog: with -v the agent's diagnostics go to
// stderr too, and are counted with the command's lines.
func TestRecordCountsTheAgentsOwnLog(t *testing.T) {
	var errb bytes.Buffer
	c := agentCmd(nil, "-v", "-record", "-lifeline", "127.0.0.1:1", "--", "sh", "-c", "sleep 0.2; echo done >&2")
	c.Stderr = &errb
	if code := exitCode(t, c.Run()); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	stderr, r := splitRecord(t, errb.Bytes())
	lines := int64(bytes.Count(stderr, []byte("\n")))
	if r.StderrLines != lines || lines < 2 {
		t.Errorf("record counts %d stderr lines; stderr holds %d: %q", r.StderrLines, lines, stderr)
	}
}

func TestTTY(t *testing.T) {
	var out, errb bytes.Buffer
	c := agentCmd(nil, "-tty", "--", "sh", "-c", `stty size; test -t 0 && test -t 1 && test -t 2 && echo "tty $TERM"; exit 4`)
	c.Stdout, c.Stderr = &out, &errb
	if code := exitCode(t, c.Run()); code != 4 || out.String() != "0 0\r\ntty xterm\r\n" || errb.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startInstall starts the install sidecar and returns it with a channel
// that receives its exit code.
func startInstall(t *testing.T, args ...string) (*exec.Cmd, <-chan int) {
	c := agentCmd(nil, append([]string{"install"}, args...)...)
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() {
		err := c.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		exited <- code
		close(exited)
	}()
	t.Cleanup(func() {
		c.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("install's stderr: %q", errb.String())
		}
	})
	return c, exited
}

func waitExit(t *testing.T, exited <-chan int, within time.Duration) int {
	t.Helper()
	select {
	case code := <-exited:
		return code
	case <-time.After(within):
		t.Fatalf("install still runs after %v", within)
		return 0
	}
}

func stillRunning(exited <-chan int, d time.Duration) bool {
	select {
	case <-exited:
		return false
	case <-time.After(d):
		return true
	}
}

// TestInstallAndLifeline: the sidecar copies the agent, answers probes
// without ending, and exits 0 once the main container's agent, holding
// the lifeline, has exited.
func TestInstallAndLifeline(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "gantry-agent")
	addr := freePort(t)
	_, exited := startInstall(t, "-ready", addr, dest)
	// Probe as Cloud Run's TCP startup probe does: connect, close.
	waitFor(t, "the sidecar to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	want, _ := os.ReadFile(agentBin)
	got, _ := os.ReadFile(dest)
	st, err := os.Stat(dest)
	if err != nil || !bytes.Equal(got, want) || st.Mode().Perm() != 0o755 {
		t.Fatalf("the copy: %d bytes (want %d), %v", len(got), len(want), err)
	}
	for range 3 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
		}
	}
	if !stillRunning(exited, 200*time.Millisecond) {
		t.Fatal("probes ended the sidecar")
	}

	// The main container runs the copy.
	main := exec.Command(dest, "-lifeline", addr, "--", "sh", "-c", "read x; exit 3")
	in, _ := main.StdinPipe()
	if err := main.Start(); err != nil {
		t.Fatal(err)
	}
	if !stillRunning(exited, 300*time.Millisecond) {
		t.Fatal("the sidecar ended while the main container ran")
	}
	in.Close()
	if code := exitCode(t, main.Wait()); code != 3 {
		t.Fatalf("the main agent exited %d, want 3", code)
	}
	if code := waitExit(t, exited, 5*time.Second); code != 0 {
		t.Fatalf("install exited %d after the lifeline closed, want 0", code)
	}
}

func TestInstallWaitExpires(t *testing.T) {
	start := time.Now()
	_, exited := startInstall(t, "-ready", "127.0.0.1:0", "-wait", "300ms", filepath.Join(t.TempDir(), "a"))
	if code := waitExit(t, exited, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("exited after %v, before -wait", d)
	}
}

func TestInstallSIGTERM(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		dest := filepath.Join(t.TempDir(), "a")
		c, exited := startInstall(t, "-ready", "127.0.0.1:0", dest)
		waitFor(t, "the copy", func() bool {
			_, err := os.Stat(dest)
			return err == nil
		})
		c.Process.Signal(sig)
		if code := waitExit(t, exited, 5*time.Second); code != 0 {
			t.Fatalf("%v: exit code %d, want 0", sig, code)
		}
	}
}

func TestInstallFails(t *testing.T) {
	_, exited := startInstall(t, filepath.Join(t.TempDir(), "missing", "a"))
	if code := waitExit(t, exited, 5*time.Second); code != 125 {
		t.Errorf("copy into a missing directory: exit %d, want 125", code)
	}
	_, exited = startInstall(t)
	if code := waitExit(t, exited, 5*time.Second); code != 125 {
		t.Errorf("no DEST: exit %d, want 125", code)
	}
}

// TestLifelineUnreachable: a lifeline nobody listens on costs the main
// command nothing, not even its exit.
func TestLifelineUnreachable(t *testing.T) {
	start := time.Now()
	var out bytes.Buffer
	c := agentCmd(nil, "-lifeline", freePort(t), "--", "echo", "hi")
	c.Stdout = &out
	if code := exitCode(t, c.Run()); code != 0 || out.String() != "hi\n" {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
