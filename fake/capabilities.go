package fake

import "github.com/gantryhq/gantry"

// Notes shared by the capability table and the errors that refuse a field.
const (
	noteMounts   = "no file system isolation: a host process sees the host's files and a Go image has none, so nothing could be mounted"
	noteSidecars = "one process per container: sidecars are refused"
	noteGPU      = "no accelerators are emulated"
)

// Capabilities reports what the fake does, for the mode it was made with.
func (rt *Runtime) Capabilities() gantry.Capabilities {
	full := func(note string) gantry.Capability { return gantry.Capability{Level: gantry.Full, Note: note} }
	partial := func(note string) gantry.Capability { return gantry.Capability{Level: gantry.Partial, Note: note} }
	none := func(note string) gantry.Capability { return gantry.Capability{Level: gantry.None, Note: note} }
	c := gantry.Capabilities{
		gantry.FeatureCreate:      full("in memory; the spec is validated first and kept as given"),
		gantry.FeatureStart:       full("starting a running container is a no-op, a paused one a conflict"),
		gantry.FeatureStop:        full("stop signal, then SIGKILL after the timeout, even when the caller stops waiting; exit code 128+signal"),
		gantry.FeatureKill:        full("any Linux signal; SIGKILL by default, and Kill returns once the container has exited"),
		gantry.FeatureRemove:      full("Force kills first; removal completes when the caller gives up, and wakes every waiter"),
		gantry.FeatureWait:        full("not-running, next-exit and removed, as moby's State.Wait"),
		gantry.FeatureLogs:        full("kept in memory across runs, with stream and time; the oldest lines are dropped beyond WithLogLimit"),
		gantry.FeatureLogsFollow:  full("wakes on each new line, without polling; ends when the run ends"),
		gantry.FeatureInspect:     full("the spec, state, exit code, signal and restart count"),
		gantry.FeatureList:        full("running only unless All, Status or Limit; filters by ID prefix, name, label, status and image; newest first"),
		gantry.FeatureRestart:     full("stop then start; keeps ID, name and logs; RestartCount grows"),
		gantry.FeatureRename:      full("Docker's name rule; a name in use is a conflict"),
		gantry.FeatureUpdate:      partial("resources are validated and recorded, not enforced"),
		gantry.FeatureAttach:      partial("output is passed on line by line, as logged; stdin needs OpenStdin and is closed when the attach's stdin ends"),
		gantry.FeatureSignals:     full("every Linux signal by name or number"),
		gantry.FeatureStopTimeout: full("nil: the spec's or 10s; 0 kills at once; negative waits forever"),
		gantry.FeaturePorts:       partial("recorded, not published: there is no network of the container's own"),
		gantry.FeatureHealthcheck: partial("recorded, never probed: State has no health to report"),
		gantry.FeatureResources:   partial("validated and recorded, not enforced"),
		gantry.FeatureGPU:         none(noteGPU),
		gantry.FeatureTimeout:     full("when Spec.Timeout elapses the run is stopped as by Stop, and State.Error says so"),
		gantry.FeatureMounts:      none(noteMounts),
		gantry.FeatureSecrets:     partial("as environment variables, with values given by WithSecret; secrets as files are refused"),
		gantry.FeatureStdin:       full("OpenStdin feeds the main process from Attach; exec stdin is copied, with end of file"),
		gantry.FeatureSidecars:    none(noteSidecars),
	}
	if rt.host {
		c[gantry.FeatureExec] = full("a host process in the container's process group, with the container's environment, exact exit code and separate streams")
		c[gantry.FeatureExecTTY] = full("a real pseudo-terminal (creack/pty) with resize; stdout and stderr are one stream")
		c[gantry.FeaturePause] = full("SIGSTOP and SIGCONT to the process group")
		c[gantry.FeatureTop] = full("the process group's processes from /proc: PID, PPID, STAT, TIME, CMD")
		c[gantry.FeatureStats] = full("CPU time, resident memory and process count of the process group, from /proc")
		c[gantry.FeatureUser] = partial("applied with setuid/setgid, which needs privilege unless it is the current user")
		c[gantry.FeatureTty] = full("the main process runs on a real pseudo-terminal")
		c[gantry.FeatureCreate] = full("the command runs on this host in a process group of its own; the image is not pulled or used")
	} else {
		c[gantry.FeatureExec] = partial("runs the image's Exec function; an image without one refuses exec with ErrNotSupported")
		c[gantry.FeatureExecTTY] = partial("the image's Exec function is told Tty and gets one output stream; there is no real terminal or resize")
		c[gantry.FeaturePause] = partial("the Go function keeps running; its writes to stdout and stderr block until Unpause")
		c[gantry.FeatureTop] = partial("one logical process (PID 1, the image's Run function); no real PIDs or CPU time")
		c[gantry.FeatureStats] = partial("one process; a goroutine has no CPU time or memory of its own to report")
		c[gantry.FeatureUser] = partial("passed to the image's function as Process.User; nothing enforces it")
		c[gantry.FeatureTty] = partial("the image's function is told Tty and gets one output stream; there is no real terminal")
	}
	return c
}
