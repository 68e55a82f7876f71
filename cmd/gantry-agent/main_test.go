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
