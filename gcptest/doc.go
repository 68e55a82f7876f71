// Package gcptest is an in-process emulator of the Google Cloud APIs that
// gantry's cloud backends call: Cloud Run Admin API v2 (Jobs, Executions,
// Tasks, Services, Instances), Cloud Functions v2, Cloud Logging v2 and
// google.longrunning.Operations, served over
// gRPC so that the official client libraries talk to it unchanged, on the
// transport they use in production. It is to Cloud Run what
// net/http/httptest is to HTTP and pstest is to Pub/Sub.
//
// It validates requests as the real API does (resource names, job IDs,
// labels, annotations, limits, etags; see RULES.md) and answers with the
// same status codes. Its long-running operations really run: a RunJob
// operation finishes when its execution does, and fails when it fails.
// And it runs what it is asked to run: every container of a task attempt
// is a container of a gantry.Runtime, by default the fake runtime running
// the container's command and args as processes of this host, with the
// environment Cloud Run sets (CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION,
// CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_ATTEMPT, CLOUD_RUN_TASK_COUNT).
// The containers of a task start in depends_on order, each dependency
// gated on its startup probe; the first that fails stops the others. An
// in-memory volume is a directory of this host for each attempt, shared
// by the containers that mount it, which reach it by path substitution
// (see package fake). Images are names only, so the command (sh, for
// example) must exist on the host, unless they come from a registry
// given WithImageRegistry: those are pulled and run by Cloud Run's rules
// for command, args and the image's config. What a container prints
// becomes Cloud Logging entries exactly as Cloud Run writes them.
// Environment variables that refer to Secret Manager read the secrets
// given WithSecret.
//
// A Cloud Run service runs one instance of its latest ready revision the
// same way, and has a URL of its own, http://127.0.0.1:N (its uri): a
// reverse proxy that passes requests, WebSocket upgrades included, to
// the ingress container. That container listens on $PORT, which here is
// a free port of this host picked for each instance rather than its
// container_port, since every instance shares this host's network; it
// also gets K_SERVICE, K_REVISION and K_CONFIGURATION. Unless the
// service sets invoker_iam_disabled, the URL takes a request only with
// "Authorization: Bearer" and an ID token minted by this Server for the
// URL (IDToken, IDTokenSource): without one it answers 403, with another
// 401, as Cloud Run does. Every container the Server runs gets
// GCE_METADATA_HOST, the address of the Server's metadata server
// (MetadataHost), which mints such tokens for any audience.
//
// A Cloud Run instance (Instances, a Preview API: its requests name
// launch_stage BETA or ALPHA, and no instance is in europe-west1,
// us-central1 or us-east1) runs its containers the same way until it
// is stopped, behind a URL of its own kept from its creation to its
// deletion, with the same invoker check; its ingress container gets
// PORT, and no container gets K_SERVICE and the like. StopInstance sends every container SIGTERM, then SIGKILL
// after the grace period; StartInstance runs them again. When a
// container exits, the instance's restart_policy (ALWAYS, ON_FAILURE,
// NEVER) restarts all of them after a backoff (WithInstanceRestartBackoff)
// or leaves the instance stopped, and its terminal condition Running
// says why. Its output is logged under the resource type
// cloud_run_instance.
//
// A test starts a Server and hands its ClientOptions to any client:
//
//	srv, err := gcptest.NewServer()
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer srv.Close()
//	jobs, err := run.NewJobsClient(ctx, srv.ClientOptions()...)
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer jobs.Close()
//	op, err := jobs.CreateJob(ctx, &runpb.CreateJobRequest{
//		Parent: "projects/p/locations/us-central1",
//		JobId:  "hello",
//		Job: &runpb.Job{Template: &runpb.ExecutionTemplate{
//			Template: &runpb.TaskTemplate{Containers: []*runpb.Container{{
//				Image:   "busybox",
//				Command: []string{"sh", "-c", "echo hello"},
//			}}},
//		}},
//	})
//
// Tests of failure handling inject faults and latency per gRPC method
// (InjectFault) and count calls (Calls, CallCounts, Stats). The command
// cmd/gcptest serves the same emulator on a port for other tools.
//
// WithStrict holds clients to what Google documents rather than to its
// friendliest reading: per-minute quotas with Google's numbers, answered
// with RESOURCE_EXHAUSTED and Google's error details; at most 10 open
// TailLogEntries sessions per project and a tail rate limit reported as
// suppression_info; log entries that become visible late and out of
// order; lists in no particular order; a job that learns of the execution
// RunJob started only after a delay; cancelled and timed-out attempts
// without an exit code; JSON lines logged as jsonPayload. Each rule has
// its own option, Relax turns chosen rules off and Relaxed all of them;
// RULES.md cites the source of each. A Server is strict unless told
// otherwise, and Stats reports how a client used the APIs, for load tests.
package gcptest
