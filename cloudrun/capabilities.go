package cloudrun

import (
	"maps"
	"strings"

	"github.com/gantryhq/gantry"
)

// The notes of the capability rows that are referred to elsewhere.
const (
	noteKill  = "only SIGKILL (the default) and SIGTERM, both by cancelling the execution: the process gets SIGTERM, then SIGKILL after Cloud Run's fixed 10 s grace, so a process that exits on SIGTERM reports 143, not 137"
	noteExec  = "needs the gantry agent inside the container: set Config.Agent"
	noteGrace = "Cloud Run's grace between SIGTERM and SIGKILL is fixed (10 s)"
	noteLogs  = "Cloud Logging, stdout and stderr by log name; a line that is a JSON object comes back as Cloud Logging re-encodes it (keys sorted, spacing normalised, and without the fields Cloud Logging lifts out of it: severity, time, httpRequest, logging.googleapis.com/*); Cloud Logging keeps lines, not bytes, so a last line written without a newline comes back with one"
)

// Capabilities reports what a container of Config.Kind (a job when it is
// empty) can do of Docker's semantics; CapabilitiesOf reports another
// kind's. Every row that is not full says what is missing. With
// Config.Agent the rows the agent makes true say so, and that a container
// created with NoAgentLabel does without them.
func (r *Runtime) Capabilities() gantry.Capabilities {
	return r.CapabilitiesOf(r.cfg.Kind)
}

// noteNoAgent ends the note of every row the agent makes true.
const noteNoAgent = "; a container created with NoAgentLabel has this row as it is without the agent"

// agentCapabilities are the rows the agent changes.
func agentCapabilities() gantry.Capabilities {
	return gantry.Capabilities{
		gantry.FeatureStart:       gantry.Full.With("RunJob: every start is a new execution of the same job, under the agent as init (an entrypoint that cannot run exits 127, or 126 when not executable)" + noteNoAgent),
		gantry.FeatureStop:        gantry.Full.With("through the agent: the stop signal, the timeout (0 kills at once, negative waits for ever), then SIGKILL; when the agent cannot be reached (after up to 30 s for one just started), the execution is cancelled instead (Cloud Run's SIGTERM and fixed 10 s grace) and a warning logged" + noteNoAgent),
		gantry.FeatureKill:        gantry.Full.With("any signal, delivered by the agent to the main process as an init does" + noteNoAgent),
		gantry.FeatureExec:        gantry.Partial.With("through the agent, reached at the relay: exact exit code, stdin, separate streams, env, working directory; User only as the image's user allows (the agent runs as it, so another user needs root); a session lasts at most the relay's request timeout (an hour on Cloud Run)" + noteNoAgent),
		gantry.FeatureExecTTY:     gantry.Full.With("a pseudo-terminal from the agent, with resizes" + noteNoAgent),
		gantry.FeatureAttach:      gantry.Full.With("through the agent: the main process's output from now on, its input with OpenStdin, resizes with Tty; a session lasts at most the relay's request timeout (an hour on Cloud Run)" + noteNoAgent),
		gantry.FeatureSignals:     gantry.Full.With("any signal and any stop signal, through the agent; Cloud Run itself still sends SIGTSTP, then SIGCONT, around the live migration of a task during maintenance" + noteNoAgent),
		gantry.FeatureStopTimeout: gantry.Full.With("the agent keeps Docker's timeout; Cloud Run's fixed grace applies only when it cannot be reached" + noteNoAgent),
		gantry.FeatureTty:         gantry.Full.With("the agent runs the main process on a pseudo-terminal" + noteNoAgent),
		gantry.FeaturePortForward: gantry.Full.With("DialPort: the agent dials the port inside the container, reached at the relay, so a server in a job answers though the job takes no inbound traffic; a connection lasts at most the relay's request timeout (an hour on Cloud Run)" + noteNoAgent),
		gantry.FeatureStdin:       gantry.Full.With("the agent holds the main process's input open for Attach" + noteNoAgent),
		gantry.FeatureLogs:        gantry.Partial.With(noteLogs + "; the agent counts the lines of each run and ends it with a signed record, so a reading of the whole log (no Since, Until or Tail) after the stop ends as soon as the last run's counted lines are in (the runs before it a grace after its start), and lines not in within LogGrace of the stop are reported as an error wrapping ErrDataLoss, not hidden"),
		gantry.FeatureLogsFollow:  gantry.Partial.With("one TailLogEntries session per Runtime serves every follower; while the container runs each line is released LogGrace after it was written, in order; after the stop, a follow of the whole log ends as soon as the agent's record and every line it counted are in (LogGrace at most without one), and reports lines not in by then as an error"),
	}
}

// noteRestartPolicy says why a job refuses a restart policy.
const noteRestartPolicy = "a job runs to completion once: nothing starts it again when it exits (Cloud Run's task retries are not Docker's restarts)"

// jobCapabilities are a job's rows without the agent.
func jobCapabilities() gantry.Capabilities {
	c := gantry.Capabilities{
		gantry.FeatureCreate:      gantry.Full.With("CreateJob: one task, no retries; ID, name, spec, labels and creation time are stored on the job"),
		gantry.FeatureStart:       gantry.Partial.With("RunJob: every start is a new execution of the same job; an entrypoint that cannot be executed ends the run as Cloud Run reports it (125 and its message), not with an init's 127 or 126"),
		gantry.FeatureStop:        gantry.Partial.With("CancelExecution: SIGTERM, then SIGKILL after Cloud Run's fixed 10 s grace; a timeout of 0 does not kill at once, and only SIGTERM can be the stop signal; Cloud Run may leave a cancelled task's exit code unset (which reads 0), so a stopped run reads 137 SIGKILL with an error text whatever code it exited with"),
		gantry.FeatureKill:        gantry.Partial.With(noteKill),
		gantry.FeatureRemove:      gantry.Full.With("DeleteJob; Force cancels the running execution first"),
		gantry.FeatureWait:        gantry.Partial.With("one poller per Runtime (one ListJobs per tick for all waiters, whatever the region's history); exact exit code from the task's last attempt, 128+N for signal N; a Wait across a forced Remove fails with ErrNotFound, as the exit status is deleted with the job"),
		gantry.FeatureLogs:        gantry.Partial.With(noteLogs),
		gantry.FeatureLogsFollow:  gantry.Partial.With("one TailLogEntries session per Runtime serves every follower; each line is released LogGrace (default 10 s) after it was written, in order, and following ends LogGrace after the stop is seen, to cover Cloud Logging's late and reordered ingestion"),
		gantry.FeatureExec:        gantry.None.With(noteExec),
		gantry.FeatureExecTTY:     gantry.None.With(noteExec),
		gantry.FeatureInspect:     gantry.Full.With("GetJob, plus the task's last attempt for a run that did not succeed"),
		gantry.FeatureList:        gantry.Full.With("ListJobs over the region, filtered to gantry's jobs"),
		gantry.FeatureRestart:     gantry.Partial.With("Stop (with its limits), then a new execution of the same job; ID and name are kept"),
		gantry.FeaturePause:       gantry.None.With("Cloud Run has no way to suspend a running execution"),
		gantry.FeatureRename:      gantry.None.With("a Cloud Run job cannot be renamed, and the job ID is derived from the container name"),
		gantry.FeatureUpdate:      gantry.None.With("a running execution cannot be changed"),
		gantry.FeatureAttach:      gantry.None.With(noteExec),
		gantry.FeatureTop:         gantry.None.With("Cloud Run exposes no process list"),
		gantry.FeatureStats:       gantry.None.With("Cloud Run reports usage per job in Cloud Monitoring, not per container on demand"),
		gantry.FeatureSignals:     gantry.None.With("Kill takes only SIGKILL and SIGTERM, both by cancelling; no other signal can be sent, and the stop signal is always SIGTERM; Cloud Run itself sends SIGTSTP, then SIGCONT, around the live migration of a task during maintenance"),
		gantry.FeatureStopTimeout: gantry.Partial.With(noteGrace + ": any timeout is accepted, but SIGKILL comes after that grace, not after the timeout (a negative one included)"),
		gantry.FeaturePorts:       gantry.None.With("a job takes no inbound traffic"),
		gantry.FeatureHealthcheck: gantry.None.With("Cloud Run jobs have no probes"),
		gantry.FeatureResources:   gantry.Partial.With("CPU from 0.08 to 1 or 2, 4, 6, 8; memory from 512 MiB to 32 GiB, rounded up to whole MiB, in the range the CPU allows (an unset one takes the least that fits the other); anything else is refused"),
		gantry.FeatureGPU:         gantry.Partial.With("one GPU (default nvidia-l4) with its accelerator node selector; needs at least 4 CPU and 16 GiB; task timeout at most 1 h"),
		gantry.FeatureTimeout:     gantry.Partial.With("the task timeout, rounded up to whole seconds, at most 168 h; zero means 168 h (Cloud Run's maximum), not unbounded"),
		gantry.FeatureMounts:      gantry.Partial.With("tmpfs (in-memory volume, never read-only), gcs (a bucket) and nfs; bind mounts and named volumes are refused"),
		gantry.FeatureSecrets:     gantry.Partial.With("Secret Manager secrets as environment variables or as files; a file secret's directory holds that secret alone"),
		gantry.FeatureUser:        gantry.None.With("a job's container runs as its image's user"),
		gantry.FeatureTty:         gantry.None.With("a job has no terminal"),
		gantry.FeatureStdin:       gantry.None.With("a job has no standard input"),
		gantry.FeatureSidecars:    gantry.None.With("the cloudrun backend runs the spec's one container per job (beside the agent's own sidecar, with Config.Agent)"),
	}
	c[gantry.FeaturePortForward] = gantry.None.With("a job takes no inbound connections")
	c[gantry.FeatureRestartPolicy] = gantry.None.With(noteRestartPolicy)
	return c
}

// CapabilitiesOf reports what a container of kind k can do on this
// Runtime: Capabilities describes Config.Kind's (jobs when it is empty).
// Instances need Config.Agent; without it, every row of KindInstance is
// None.
func (r *Runtime) CapabilitiesOf(k Kind) gantry.Capabilities {
	if k != KindInstance {
		c := jobCapabilities()
		if r.agent != nil {
			maps.Copy(c, agentCapabilities())
		}
		return c
	}
	c := instanceCapabilities()
	if r.agent == nil || !r.instancesOffered() {
		why := "instances need Config.Agent"
		if !r.instancesOffered() {
			why = "Cloud Run has no instances in region " + r.cfg.Region
		}
		for f := range c {
			c[f] = gantry.None.With(why)
		}
	}
	return c
}

// instanceCapabilities are an instance's rows, under the agent.
func instanceCapabilities() gantry.Capabilities {
	c := jobCapabilities()
	for f, cap := range agentCapabilities() {
		// An instance always runs under the agent.
		cap.Note = strings.TrimSuffix(cap.Note, noteNoAgent)
		c[f] = cap
	}
	const logsEnd = "; an instance's log has no completeness reading yet: a reading after the stop, or a follow, ends LogGrace after the stop"
	maps.Copy(c, gantry.Capabilities{
		gantry.FeatureCreate:        gantry.Full.With("CreateInstance (a Preview API, launch stage BETA), restart policy NEVER; Cloud Run starts an instance as it creates it, so the agent holds the command until Start: a created container is an instance running only the idle agent, billed as running"),
		gantry.FeatureStart:         gantry.Full.With("the agent runs the command (StartInstance first when the instance is stopped); ID, name and URL are kept"),
		gantry.FeatureStop:          gantry.Full.With("through the agent: the stop signal, the timeout, then SIGKILL; the agent exits with the main process and Cloud Run stops the instance; when the agent cannot be reached, or the container waits for its restart, StopInstance (Cloud Run's SIGTERM, passed on by the agent, and its grace)"),
		gantry.FeatureRemove:        gantry.Full.With("DeleteInstance; Force deletes a running one (Cloud Run stops its containers)"),
		gantry.FeatureWait:          gantry.Full.With("one poller per Runtime (ListInstances and ListJobs once a tick); Cloud Run reports no exit code for an instance, so it comes from the agent's signed exit record in Cloud Logging, read up to LogGrace after the stop (137 with an error when it never arrives); a wait for the next exit sees each restart through the agent"),
		gantry.FeatureInspect:       gantry.Full.With("GetInstance, plus the agent's state while the instance runs (one relay round trip: restarting, RestartCount, health, the last exit) or its exit record once it has stopped"),
		gantry.FeatureList:          gantry.Full.With("ListJobs and ListInstances over the region, filtered to gantry's, plus what Inspect reads for each listed container"),
		gantry.FeatureRestart:       gantry.Full.With("Stop, then Start; ID, name and URL are kept"),
		gantry.FeatureLogs:          gantry.Partial.With(noteLogs + "; logged under resource type cloud_run_instance" + logsEnd),
		gantry.FeatureLogsFollow:    gantry.Partial.With("one TailLogEntries session per Runtime serves every follower; each line is released LogGrace after it was written, in order" + logsEnd),
		gantry.FeaturePorts:         gantry.Partial.With("TCP only: the first port is served on the instance's URL (Container.URL: HTTP/1.1, HTTP/2, WebSockets and gRPC, with an IAM ID token, see Runtime.IDToken), the agent passing each connection from Cloud Run's PORT to it; every port is reachable with DialPort and ForwardPort"),
		gantry.FeaturePortForward:   gantry.Full.With("DialPort: the agent dials the port inside the container, reached at the relay; any TCP server answers, not only HTTP; a connection lasts at most the relay's request timeout (an hour on Cloud Run)"),
		gantry.FeatureHealthcheck:   gantry.Full.With("Docker's monitor, run by the agent in the container (CMD and CMD-SHELL as an exec, HTTP and TCP probes) with Docker's timings and State.Health; not Cloud Run's liveness probes, which restart a container Docker leaves running unhealthy"),
		gantry.FeatureRestartPolicy: gantry.Full.With("Docker's rules, applied by the agent in the instance (the same container and file system, as Docker restarts it; delays from 100 ms, doubling, at most a minute); the instance's own policy is NEVER, so an instance that Cloud Run's infrastructure stops stays stopped"),
		gantry.FeatureTimeout:       gantry.None.With("an instance runs until it is stopped; Cloud Run bounds a job's task, not an instance"),
		gantry.FeaturePause:         gantry.None.With("Cloud Run has no way to suspend a running instance"),
		gantry.FeatureRename:        gantry.None.With("a Cloud Run instance cannot be renamed, and the instance ID is derived from the container name"),
		gantry.FeatureUpdate:        gantry.None.With("gantry does not change a created container (UpdateInstance would restart it)"),
		gantry.FeatureStats:         gantry.None.With("Cloud Run reports an instance's usage in Cloud Monitoring, not on demand"),
		gantry.FeatureGPU:           gantry.Partial.With("one GPU (default nvidia-l4) with its accelerator node selector; needs at least 4 CPU and 16 GiB"),
		gantry.FeatureUser:          gantry.None.With("an instance's container runs as its image's user"),
		gantry.FeatureSidecars:      gantry.None.With("the cloudrun backend runs the spec's one container per instance (beside the agent's own sidecar)"),
	})
	return c
}
