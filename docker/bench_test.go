package docker_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/gantryhq/gantry"
)

// BenchmarkLifecycle is one short container's whole life on a real engine:
// create, start, wait, read its logs, remove. Its cost is the daemon's
// (runc, the init, the log driver), which is what a user of this backend
// pays per container; docs/PERFORMANCE.md sets it beside the fake's and
// cloudrun's.
func BenchmarkLifecycle(b *testing.B) {
	rt := newRuntime(b)
	ctx := context.Background()
	spec := gantry.Spec{Image: testImage, Entrypoint: []string{"sh", "-c"}, Cmd: []string{"echo out; echo err >&2; exit 3"}}
	var stdout, stderr bytes.Buffer
	for b.Loop() {
		c, err := rt.Create(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		if err != nil || st.ExitCode != 3 {
			b.Fatalf("Wait: %+v, %v; want exit code 3", st, err)
		}
		r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
		if err != nil {
			b.Fatal(err)
		}
		stdout.Reset()
		stderr.Reset()
		if err := gantry.CopyLogs(&stdout, &stderr, r); err != nil {
			b.Fatal(err)
		}
		if stdout.String() != "out\n" || stderr.String() != "err\n" {
			b.Fatalf("logs %q %q", stdout.String(), stderr.String())
		}
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
