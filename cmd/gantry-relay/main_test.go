package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
)

// TestRelayServesExec runs the command on a free port, has an agent wait
// at it and a client exec through it, and stops it with its context.
func TestRelayServesExec(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"-v=false", "-pair-timeout", "5s"}, func(k string) string {
			if k == "PORT" {
				return "0"
			}
			return ""
		}, &stderr, func(a net.Addr) { addrs <- a })
	}()
	var base string
	select {
	case a := <-addrs:
		base = fmt.Sprintf("ws://127.0.0.1:%d", a.(*net.TCPAddr).Port)
	case code := <-exited:
		t.Fatalf("exited %d: %s", code, stderr.String())
	}

	secret := bytes.Repeat([]byte{'s'}, 32)
	a, err := agent.Start(agent.Config{Cmd: []string{"sleep", "60"}, ID: "c1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		a.Close()
		a.Signal(syscall.SIGKILL)
		a.Wait()
	}()
	u, err := agent.RelayAgentURL(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	connected := make(chan error, 1)
	go func() { connected <- a.ConnectRelay(actx, u, &agent.ConnectOptions{MinBackoff: 10 * time.Millisecond}) }()

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	cl, err := agent.DialRelay(dctx, base, "c1", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := cl.Exec(dctx, gantry.ExecConfig{Cmd: []string{"echo", "through the relay"}, Stdout: &out})
	if err != nil || res.ExitCode != 0 || out.String() != "through the relay\n" {
		t.Errorf("Exec = %+v, %v, %q", res, err, out.String())
	}

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit code %d after its context ended, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after its context ended")
	}
	select {
	case <-cl.Done():
	case <-time.After(5 * time.Second):
		t.Error("the client's connection outlived the relay")
	}
	acancel()
	if err := <-connected; err != nil {
		t.Errorf("ConnectRelay: %v", err)
	}
}

func TestRelayRefusesArguments(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"extra"}, func(string) string { return "" }, &stderr, nil); code != 2 {
		t.Errorf("exit code %d for a stray argument, want 2", code)
	}
}
