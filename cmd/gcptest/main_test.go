package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestServesOnAPort builds the command, starts it on a free port with the
// strict rules and a project number, runs a job that reads a secret given
// with -secret through the official client, its project named by number,
// and stops it with SIGTERM.
func TestServesOnAPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "gcptest")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-instant", "-secret", "greeting=hello",
		"-strict", "-relax", "ingestion-delay, execution-reconcile", "-seed", "7", "-project-number", "p=123")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the endpoint: %v", err)
	}
	addr := line[strings.LastIndexByte(line, ' ')+1 : len(line)-1]

	jobs, err := run.NewJobsClient(ctx, option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	create, err := jobs.CreateJob(ctx, &runpb.CreateJobRequest{
		Parent: "projects/123/locations/us-central1",
		JobId:  "reads-secret",
		Job: &runpb.Job{Template: &runpb.ExecutionTemplate{Template: &runpb.TaskTemplate{
			Retries: &runpb.TaskTemplate_MaxRetries{MaxRetries: 0},
			Containers: []*runpb.Container{{
				Image:   "busybox",
				Command: []string{"sh", "-c", `test "$GREETING" = hello`},
				Env: []*runpb.EnvVar{{Name: "GREETING", Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{
					SecretKeyRef: &runpb.SecretKeySelector{Secret: "greeting", Version: "latest"},
				}}}},
			}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create.Wait(ctx); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	op, err := jobs.RunJob(ctx, &runpb.RunJobRequest{Name: "projects/p/locations/us-central1/jobs/reads-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := op.Wait(ctx)
	if err != nil {
		t.Fatalf("RunJob: %v (the task did not see the secret)", err)
	}
	if ex.GetSucceededCount() != 1 {
		t.Errorf("execution %+v, want one succeeded task", ex)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want a clean exit", err)
	}
}

func TestStrictOptions(t *testing.T) {
	for _, tc := range []struct {
		strict bool
		relax  string
		n      int
		ok     bool
	}{
		{false, "", 1, true},
		{true, "", 1, true},
		{true, "quotas,unordered-lists", 2, true},
		{false, "quotas", 0, false},
		{true, "quotas,no-such-rule", 0, false},
	} {
		opts, err := strictOptions(tc.strict, tc.relax)
		if (err == nil) != tc.ok || len(opts) != tc.n {
			t.Errorf("strictOptions(%v, %q) = %d options, %v; want %d, ok %v", tc.strict, tc.relax, len(opts), err, tc.n, tc.ok)
		}
	}
}
