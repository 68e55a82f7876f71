package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"go.uber.org/zap"
)

func TestParseRestart(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want gantry.RestartPolicy
		bad  string
	}{
		{"", gantry.RestartPolicy{}, ""},
		{"no", gantry.RestartPolicy{Name: "no"}, ""},
		{"always", gantry.RestartPolicy{Name: "always"}, ""},
		{"unless-stopped", gantry.RestartPolicy{Name: "unless-stopped"}, ""},
		{"on-failure", gantry.RestartPolicy{Name: "on-failure"}, ""},
		{"on-failure:3", gantry.RestartPolicy{Name: "on-failure", MaxRetries: 3}, ""},
		{"on-failure:0", gantry.RestartPolicy{Name: "on-failure"}, ""},
		{"sometimes", gantry.RestartPolicy{}, "must be no, on-failure, always or unless-stopped"},
		{"on-failure:x", gantry.RestartPolicy{}, "must be a number"},
		{"on-failure:", gantry.RestartPolicy{}, "must be a number"},
		{"on-failure:-1", gantry.RestartPolicy{}, "cannot be negative"},
		{"always:2", gantry.RestartPolicy{}, "cannot be used with restart policy 'always'"},
		{"no:1", gantry.RestartPolicy{}, "cannot be used with restart policy 'no'"},
		{":2", gantry.RestartPolicy{}, "no policy name"},
	} {
		got, err := parseRestart(tc.in)
		switch {
		case tc.bad == "" && (err != nil || got != tc.want):
			t.Errorf("parseRestart(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("parseRestart(%q) = %v, want an error saying %q", tc.in, err, tc.bad)
		}
	}
}

func TestParseHealthcheck(t *testing.T) {
	hc, err := parseHealthcheck(`{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Timeout":2000000000,"StartPeriod":3000000000,"Retries":4}`)
	want := gantry.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, Retries: 4}
	if err != nil || hc == nil || strings.Join(hc.Test, " ") != "CMD-SHELL true" || hc.Interval != want.Interval || hc.Timeout != want.Timeout || hc.StartPeriod != want.StartPeriod || hc.Retries != 4 {
		t.Errorf("parseHealthcheck = %+v, %v; want %+v", hc, err, want)
	}
	if hc, err := parseHealthcheck(`{"HTTPPath":"/healthz","Port":8080}`); err != nil || hc.HTTPPath != "/healthz" || hc.Port != 8080 {
		t.Errorf("HTTPPath: %+v, %v", hc, err)
	}
	for _, bad := range []string{`nope`, `{"Test":["CMD"]}`, `{"Test":["CMD","x"],"Intervall":1}`, `{}`, `{"TCPPort":70000}`, `{"Test":["CMD","x"]} {}`, `{"Test":["CMD","x"],"Interval":"1s"}`} {
		if _, err := parseHealthcheck(bad); err == nil {
			t.Errorf("parseHealthcheck(%s) took it", bad)
		}
	}
}

// TestBadFlags: bad -restart, -healthcheck, -ingress and -gate values
// exit 125 saying what is wrong, without running the command.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"-restart", "sometimes"}, "-restart"},
		{[]string{"-restart", "always:3"}, "maximum retry count"},
		{[]string{"-healthcheck", "{"}, "-healthcheck"},
		{[]string{"-ingress", "0"}, "-ingress"},
		{[]string{"-ingress", "http"}, "-ingress"},
		{[]string{"-gate"}, "-gate needs"},
	} {
		var errb bytes.Buffer
		c := agentCmd(nil, append(tc.args, "--", "sh", "-c", "echo ran")...)
		c.Stderr = &errb
		out, err := c.Output()
		if code := exitCode(t, err); code != 125 || len(out) != 0 || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 125 saying %q", tc.args, code, out, errb.String(), tc.says)
		}
	}
}

// TestRestartFlag: -restart on-failure:2 runs a failing command three
// times; the record counts every run's lines and the restarts.
func TestRestartFlag(t *testing.T) {
	var out, errb bytes.Buffer
	c := agentCmd(nil, "-record", "-restart", "on-failure:2", "--", "sh", "-c", "echo run; exit 3")
	c.Stdout, c.Stderr = &out, &errb
	if code := exitCode(t, c.Run()); code != 3 || out.String() != "run\nrun\nrun\n" {
		t.Fatalf("exit %d, stdout %q; want 3 after three runs", code, out.String())
	}
	_, r := splitRecord(t, errb.Bytes())
	if r.Restarts != 2 || r.StdoutLines != 3 || r.ExitCode != 3 {
		t.Errorf("record %+v", r)
	}
}

// TestHealthcheckFlag: the monitor runs, and the record ends with its
// health: unhealthy once the command has exited, the streak kept.
func TestHealthcheckFlag(t *testing.T) {
	probes := filepath.Join(t.TempDir(), "probes")
	var errb bytes.Buffer
	c := agentCmd(nil, "-record", "-healthcheck", `{"Test":["CMD-SHELL","echo >> `+probes+`; false"],"Interval":5000000,"Retries":100}`,
		"--", "sh", "-c", `while [ "$(wc -l < `+probes+` 2>/dev/null || echo 0)" -lt 3 ]; do sleep 0.01; done`)
	c.Stderr = &errb
	if code := exitCode(t, c.Run()); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	_, r := splitRecord(t, errb.Bytes())
	if r.Health != gantry.HealthUnhealthy || r.FailingStreak < 2 {
		t.Errorf("record %+v, want unhealthy with a streak of at least 2", r)
	}
}

// TestGateFlag: with -gate the command waits for StartMain; a SIGTERM
// before it ends the agent with 143 and the command never runs.
func TestGateFlag(t *testing.T) {
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	marker := filepath.Join(dir, "ran")
	c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, "-gate", "-listen", "127.0.0.1:0", "-addr-file", addrFile, "--", "sh", "-c", "touch "+marker+"; exit 6")
	addr := startListening(t, c, addrFile)
	cl, err := agent.Dial(context.Background(), "ws://"+addr+"/", []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if st, err := cl.Status(context.Background()); err != nil || st.State != agent.StateCreated {
		t.Fatalf("Status = %+v, %v; want created", st, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran before StartMain")
	}
	if err := cl.StartMain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, c.Wait()); code != 6 {
		t.Errorf("exit %d, want 6", code)
	}

	addrFile2 := filepath.Join(dir, "addr2")
	c2 := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, "-gate", "-listen", "127.0.0.1:0", "-addr-file", addrFile2, "--", "sh", "-c", "touch "+marker+"2")
	startListening(t, c2, addrFile2)
	c2.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, c2.Wait()); code != 143 {
		t.Errorf("SIGTERM before StartMain: exit %d, want 143", code)
	}
	if _, err := os.Stat(marker + "2"); err == nil {
		t.Error("the command ran after all")
	}
}

// echoServer accepts connections on ln and echoes each until its EOF,
// then closes it.
func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			io.Copy(c, c)
			c.Close()
		}()
	}
}

// TestIngressFlag: the agent bridges $PORT to the -ingress port, where
// a server may start listening only after the connection came; the
// command sees PORT set to its own port.
func TestIngressFlag(t *testing.T) {
	platform := freePort(t)
	_, platformPort, _ := net.SplitHostPort(platform)
	backend := freePort(t)
	_, backendPort, _ := net.SplitHostPort(backend)
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	c := agentCmd([]string{"PORT=" + platformPort}, "-ingress", backendPort, "--", "sh", "-c", `echo "$PORT" > `+portFile+`; trap 'exit 0' TERM; while :; do sleep 0.01; done`)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}()
	waitFor(t, "the command", func() bool { b, _ := os.ReadFile(portFile); return len(b) > 0 })
	if b, _ := os.ReadFile(portFile); strings.TrimSpace(string(b)) != backendPort {
		t.Errorf("the command's PORT is %q, want %s", b, backendPort)
	}
	var conn net.Conn
	waitFor(t, "the bridge", func() bool {
		var err error
		conn, err = net.Dial("tcp", platform)
		return err == nil
	})
	defer conn.Close()
	// Nothing listens on the command's port yet: the bridge keeps trying.
	ln, err := net.Listen("tcp", backend)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoServer(ln)
	io.WriteString(conn, "hello")
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "hello" {
		t.Errorf("through the bridge: %q, %v", got, err)
	}
}

// TestIngressWithoutPlatformPort: without PORT, or with PORT already the
// command's port, no bridge runs, and the command's PORT is its own.
func TestIngressWithoutPlatformPort(t *testing.T) {
	for _, env := range [][]string{nil, {"PORT=8123"}} {
		var out bytes.Buffer
		c := agentCmd(env, "-ingress", "8123", "--", "sh", "-c", `echo "$PORT"`)
		c.Env = append(withoutVar(os.Environ(), "PORT"), env...)
		c.Stdout = &out
		if code := exitCode(t, c.Run()); code != 0 || out.String() != "8123\n" {
			t.Errorf("env %v: exit %d, PORT %q", env, code, out.String())
		}
	}
}

func setIngressDialWait(t *testing.T, d time.Duration) {
	old := ingressDialWait
	ingressDialWait = d
	t.Cleanup(func() { ingressDialWait = old })
}

// TestIngressNothingAnswers: a connection for which nothing answers on
// the command's port is closed once the bridge stops trying.
func TestIngressNothingAnswers(t *testing.T) {
	setIngressDialWait(t, 50*time.Millisecond)
	_, port, _ := net.SplitHostPort(freePort(t))
	p, _ := strconv.Atoi(port)
	in, err := startIngress("127.0.0.1:0", p, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	conn, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d, %v; want the connection closed", n, err)
	}
}

// TestIngressClose: Close ends the bridged connections and returns.
func TestIngressClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoServer(ln)
	in, err := startIngress("127.0.0.1:0", ln.Addr().(*net.TCPAddr).Port, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := range 3 {
		conn, err := net.Dial("tcp", in.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		msg := "conn " + strconv.Itoa(i)
		io.WriteString(conn, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v", buf, err)
		}
		conns = append(conns, conn)
	}
	in.Close()
	for _, conn := range conns {
		if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after Close: %v", err)
		}
	}
	if _, err := net.Dial("tcp", in.Addr().String()); err == nil {
		t.Error("the bridge still listens after Close")
	}
}

// FuzzRestartFlag: a -restart value either fails or names a policy the
// spec accepts, which, written back in docker run's syntax, parses to
// the same policy.
func FuzzRestartFlag(f *testing.F) {
	for _, s := range []string{"", "no", "always", "unless-stopped", "on-failure", "on-failure:3", "on-failure:-1", "always:2", ":", "on-failure:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseRestart(s)
		if err != nil {
			return
		}
		if err := (&gantry.Spec{Image: "x", RestartPolicy: p}).Validate(); err != nil {
			t.Fatalf("-restart %q gave %+v, which the spec refuses: %v", s, p, err)
		}
		text := p.Name
		if p.MaxRetries != 0 {
			text += ":" + strconv.Itoa(p.MaxRetries)
		}
		back, err := parseRestart(text)
		if err != nil || back != p {
			t.Fatalf("-restart %q gave %+v; written back as %q it gave %+v, %v", s, p, text, back, err)
		}
	})
}

// FuzzHealthcheckFlag: a -healthcheck value either fails or is a
// healthcheck the spec accepts, which encodes back to one that parses
// the same.
func FuzzHealthcheckFlag(f *testing.F) {
	for _, s := range []string{`{"Test":["CMD-SHELL","exit 0"],"Interval":1000000}`, `{"TCPPort":80}`, `{"HTTPPath":"/","Port":8080,"Retries":2}`, `{"Test":["NONE"]}`, `{}`, `{"Test":["CMD"]}`, `{"X":1}`, `{} {}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hc, err := parseHealthcheck(s)
		if err != nil || hc == nil {
			return
		}
		if err := (&gantry.Spec{Image: "x", Healthcheck: hc}).Validate(); err != nil {
			t.Fatalf("-healthcheck %q gave %+v, which the spec refuses: %v", s, hc, err)
		}
		b, err := json.Marshal(hc)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseHealthcheck(string(b))
		if err != nil || !reflect.DeepEqual(back, hc) {
			t.Fatalf("-healthcheck %q gave %+v; encoded back as %s it gave %+v, %v", s, hc, b, back, err)
		}
	})
}
