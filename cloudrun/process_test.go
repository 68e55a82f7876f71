package cloudrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The child process of TestSecondProcess reads these.
const (
	childEndpoint = "GANTRY_TEST_CHILD_ENDPOINT"
	childID       = "GANTRY_TEST_CHILD_ID"
)

// childReport is what the child process saw, as JSON on its stdout.
type childReport struct {
	Inspected *gantry.Container
	Listed    []string
	Exit      gantry.ExitStatus
	Logs      map[gantry.Stream][]string
	Removed   bool
}

// TestSecondProcess: a Runtime in another process, which shares nothing
// with this one but the emulator's address, inspects, lists, waits on,
// reads the logs of and removes the container this process made, and sees
// what this process sees.
func TestSecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second test process")
	}
	srv := newServer(t)
	ctx := testCtx(t)
	rt := newRuntime(t, srv, Config{})
	spec := sh(twoStreams)
	spec.Labels = map[string]string{"suite": "second-process"}
	c, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	here, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSecondProcessChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEndpoint+"="+srv.Addr(), childID+"="+c.ID)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	var got childReport
	if err := json.Unmarshal(reportLine(out), &got); err != nil {
		t.Fatalf("child report %q: %v", out, err)
	}
	want := childReport{
		Inspected: here,
		Listed:    []string{c.ID},
		Exit:      gantry.ExitStatus{ExitCode: 42},
		Logs:      map[gantry.Stream][]string{gantry.Stdout: {"to-stdout"}, gantry.Stderr: {"to-stderr"}},
		Removed:   true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the second process saw (-this process +second):\n%s", diff)
	}
	if _, err := rt.Inspect(ctx, c.ID); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("Inspect here after the second process removed it: %v, want ErrNotFound", err)
	}
}

// TestSecondProcessChild is TestSecondProcess's other process; it runs
// only when that test starts it.
func TestSecondProcessChild(t *testing.T) {
	addr, id := os.Getenv(childEndpoint), os.Getenv(childID)
	if addr == "" {
		t.Skip("runs only as the child process of TestSecondProcess")
	}
	ctx := context.Background()
	rt, err := New(ctx, Config{Project: project, Region: region, PollInterval: testPoll, LogGrace: testGrace},
		option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var rep childReport
	if rep.Inspected, err = rt.Inspect(ctx, id); err != nil {
		t.Fatal(err)
	}
	listed, err := rt.List(ctx, gantry.ListOptions{All: true, Labels: []string{"suite=second-process"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range listed {
		rep.Listed = append(rep.Listed, c.ID)
	}
	if rep.Exit, err = rt.Wait(ctx, id, gantry.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	rep.Logs = byStream(readAll(t, rt, id, gantry.LogsOptions{}))
	if err := rt.Remove(ctx, id, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = rt.Inspect(ctx, id)
	rep.Removed = errors.Is(err, gantry.ErrNotFound)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s\n", b)
}

// reportLine finds the child's JSON report among the lines the test
// framework prints around it.
func reportLine(out []byte) []byte {
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("{")) {
			return line
		}
	}
	return nil
}
