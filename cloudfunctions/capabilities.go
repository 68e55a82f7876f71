package cloudfunctions

import "github.com/gantryhq/gantry"

// The notes of the capability rows that are referred to elsewhere.
const (
	noteExec        = "a function's instance takes HTTP requests only, and the runner runs one command per container; there is no way into a running command's processes"
	noteUser        = "a function's command runs as the runtime's user"
	noteTty         = "a function has no terminal"
	noteStdin       = "a run's standard input is closed at start (the runner passes none), so it cannot be kept open for attach"
	notePorts       = "a function's one port serves gantry's runner, not the command"
	noteHealthcheck = "a function has no probes of the command's"
	noteMounts      = "the runner deploys volumes of no kind"
	noteSidecars    = "a function is one container"
	noteGPU         = "Cloud Functions offers no GPUs"
	noteSecrets     = "Secret Manager secrets as environment variables only (secret volumes are not offered)"
)

// noteRestart says why a function refuses a restart policy.
const noteRestart = "a run is one request to the function: nothing starts the command again when it exits"

// Capabilities reports what a Cloud Function can do of Docker's
// semantics. Every row that is not full says what is missing.
func (r *Runtime) Capabilities() gantry.Capabilities {
	c := gantry.Capabilities{
		gantry.FeatureCreate:      gantry.Partial.With("GenerateUploadUrl, upload of gantry's runner, CreateFunction, waiting for the deployment (about a minute on Google Cloud); Image names the runtime to build on (a Go runtime such as go125), and Entrypoint or Cmd is required; ID, name, spec, labels and creation time are stored on the function"),
		gantry.FeatureStart:       gantry.Full.With("an invocation of the function's URL that the runner answers when the command ends; it is held open so the instance keeps its CPU"),
		gantry.FeatureStop:        gantry.Full.With("the runner sends the stop signal, then SIGKILL after the timeout, to the command's main process"),
		gantry.FeatureKill:        gantry.Full.With("the runner signals the command's main process"),
		gantry.FeatureRemove:      gantry.Full.With("DeleteFunction, waiting until it is gone; Force kills the running command first"),
		gantry.FeatureWait:        gantry.Partial.With("a held request that the runner answers with the exact exit code; the run's state lives in the function's one instance, so if Cloud Run retires the instance (idle, maintenance, a redeploy) the run reads 137 SIGKILL with an error text and the container then reads created (Config.MinInstances 1 keeps an instance); next-exit and removed look every PollInterval"),
		gantry.FeatureLogs:        gantry.Partial.With("Cloud Logging, from the function's Cloud Run service (cloud_run_revision), stdout and stderr by log name; a JSON line comes back as Cloud Logging re-encodes it, and a last line written without a newline comes back with one"),
		gantry.FeatureLogsFollow:  gantry.Partial.With("one TailLogEntries session per Runtime serves every follower; each line is released LogGrace (default 10 s) after it was written, and following ends LogGrace after the stop is seen, to cover Cloud Logging's late ingestion"),
		gantry.FeatureExec:        gantry.None.With(noteExec),
		gantry.FeatureExecTTY:     gantry.None.With(noteExec),
		gantry.FeatureInspect:     gantry.Full.With("GetFunction, plus the runner's status of the latest run (an invocation)"),
		gantry.FeatureList:        gantry.Full.With("ListFunctions over the region, filtered to gantry's, plus one status invocation per function"),
		gantry.FeatureRestart:     gantry.Full.With("Stop, then a new run on the same function; ID and name are kept"),
		gantry.FeaturePause:       gantry.None.With("the runner cannot suspend a command, and Cloud Run offers no pause"),
		gantry.FeatureRename:      gantry.None.With("a function cannot be renamed, and its ID is derived from the container name"),
		gantry.FeatureUpdate:      gantry.None.With("changing a function's resources deploys a new revision, which would end the running command"),
		gantry.FeatureAttach:      gantry.None.With(noteExec),
		gantry.FeatureTop:         gantry.None.With("the runner exposes no process list"),
		gantry.FeatureStats:       gantry.None.With("Cloud Functions reports usage in Cloud Monitoring, per function over time, not on demand"),
		gantry.FeatureSignals:     gantry.Full.With("any signal, to the command's main process only, as under an init"),
		gantry.FeatureStopTimeout: gantry.Full.With("kept by the runner: 0 kills at once, a negative timeout waits for ever"),
		gantry.FeaturePorts:       gantry.None.With(notePorts),
		gantry.FeatureHealthcheck: gantry.None.With(noteHealthcheck),
		gantry.FeatureResources:   gantry.Partial.With("1, 2, 4, 6 or 8 CPUs (default 1: concurrent requests, which Stop and Wait need, need a whole CPU), memory rounded up to whole MiB within what the CPU allows (default 512 MiB); anything else is refused"),
		gantry.FeatureGPU:         gantry.None.With(noteGPU),
		gantry.FeatureTimeout:     gantry.Partial.With("enforced by the runner (the stop signal, then SIGKILL after the stop timeout), at most 60 minutes, an HTTP function's longest request; a run without a Timeout that outlasts one request is waited for with new requests, and Cloud Run may throttle its CPU between them"),
		gantry.FeatureMounts:      gantry.None.With(noteMounts),
		gantry.FeatureSecrets:     gantry.Partial.With(noteSecrets),
		gantry.FeatureUser:        gantry.None.With(noteUser),
		gantry.FeatureTty:         gantry.None.With(noteTty),
		gantry.FeatureStdin:       gantry.None.With(noteStdin),
		gantry.FeatureSidecars:    gantry.None.With(noteSidecars),
	}
	c[gantry.FeaturePortForward] = gantry.None.With("a function's instance takes HTTP requests for gantry's runner only")
	c[gantry.FeatureRestartPolicy] = gantry.None.With(noteRestart)
	return c
}
