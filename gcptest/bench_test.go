package gcptest_test

import (
	"context"
	"testing"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
	"github.com/gantryhq/gantry/gcptest"
)

func trueJob() *runpb.Job {
	return &runpb.Job{Template: &runpb.ExecutionTemplate{Template: &runpb.TaskTemplate{
		Containers: []*runpb.Container{{Image: "busybox", Command: []string{"true"}}},
	}}}
}

// BenchmarkRunJob measures a RunJob of a one-task job running `true`,
// from the call to the finished operation, through the official client.
// "instant" returns once the execution is done; "wait" starts the
// operation and blocks in WaitOperation, as a client that does not poll.
func BenchmarkRunJob(b *testing.B) {
	for _, mode := range []string{"instant", "wait"} {
		b.Run(mode, func(b *testing.B) {
			var opts []gcptest.Option
			if mode == "instant" {
				opts = append(opts, gcptest.WithInstantOperations())
			}
			e := newEnv(b, opts...)
			ctx := context.Background()
			op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "bench", Job: trueJob()})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := op.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			lro, err := lroauto.NewOperationsClient(ctx, e.srv.ClientOptions()...)
			if err != nil {
				b.Fatal(err)
			}
			defer lro.Close()
			e.srv.ResetCalls()
			b.ResetTimer()
			for b.Loop() {
				rop, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/bench"})
				if err != nil {
					b.Fatal(err)
				}
				if !rop.Done() {
					w, err := lro.WaitOperation(ctx, &longrunningpb.WaitOperationRequest{Name: rop.Name()})
					if err != nil || !w.Done || w.GetError() != nil {
						b.Fatalf("WaitOperation: %v, %v", w, err)
					}
				}
			}
			b.StopTimer()
			calls := 0
			for _, n := range e.srv.CallCounts() {
				calls += n
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
		})
	}
}

// BenchmarkFakeTrue is the baseline: the same `true` container run
// directly on the runtime the emulator uses, with no API in between.
func BenchmarkFakeTrue(b *testing.B) {
	rt := fake.New(fake.WithHostProcesses())
	defer rt.Close()
	ctx := context.Background()
	for b.Loop() {
		c, err := rt.Create(ctx, gantry.Spec{Image: "busybox", Entrypoint: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
			b.Fatal(err)
		}
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
