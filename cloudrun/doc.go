// Package cloudrun runs gantry containers on Google Cloud Run, as jobs
// (run to completion) or instances (long-running, with a URL), with
// Docker's semantics as far as Cloud Run allows, and says exactly how far
// in Capabilities.
//
// Each container is one Cloud Run job with one task and no retries:
// Create makes the job (status created), Start runs an execution
// (running), Wait returns the exact exit code of the task's last attempt
// (128+N when signal N ended it), Stop cancels the execution (SIGTERM, then
// SIGKILL after Cloud Run's grace period; under the agent, Docker's stop),
// Remove deletes the job, and a
// restart is a new execution of the same job. Logs come from Cloud
// Logging, stdout and stderr apart, across every execution.
//
// Nothing that matters is kept in memory: the container's ID, name, spec,
// labels and creation time live on the job as labels and an annotation, so
// a new process with a new Runtime sees the same containers, states, exit
// codes and logs. Names are unique per project and region because the job
// ID is derived from the name: Cloud Run itself settles a race. All Waits
// of a Runtime share one poller, one read per tick however many there
// are, and all following Logs one Cloud Logging tail session; every call
// spends from one per-minute budget (Config.Budget) and a call refused for
// quota is retried when Google says. Every job carries a managed-by and a
// session label, and Sweep deletes what a session (or anything older than
// an age) left behind.
//
// With Config.Agent, every container gets gantry's agent as its init,
// without a rebuilt image: a sidecar copies it into an in-memory volume
// the container's entrypoint then runs from, with the real command (read
// from the image's registry when the spec gives none) after it. Through
// the agent, which dials out to a relay (one the Runtime can deploy as a
// Cloud Run service), come exec, attach, any signal, Docker's stop
// timeouts, an init's exit codes and logs known to be complete. See
// AgentConfig.
//
// A container that serves (one with Ports, a RestartPolicy or a
// Healthcheck, or any under KindLabel or Config.Kind "instance") runs as
// a Cloud Run instance under the agent: its first port on the instance's
// URL (Container.URL), every port through DialPort, Docker's restart
// policies and health checks run by the agent, exit codes from the
// agent's records. See Kind.
//
// A program that runs one container:
//
//	ctx := context.Background()
//	rt, err := cloudrun.New(ctx, cloudrun.Config{Project: "my-project", Region: "us-central1"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer rt.Close()
//	c, err := rt.Create(ctx, gantry.Spec{
//		Image: "us-docker.pkg.dev/cloudrun/container/job",
//		Cmd:   []string{"sh", "-c", "echo hello; exit 3"},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := rt.Start(ctx, c.ID); err != nil {
//		log.Fatal(err)
//	}
//	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
//	if err != nil {
//		log.Fatal(err)
//	}
//	fmt.Println("exit code", st.ExitCode) // exit code 3
//	rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
//
// With no client options New uses Application Default Credentials against
// Google Cloud; gcptest.Server.ClientOptions point it at the emulator.
package cloudrun
