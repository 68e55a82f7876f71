package fake

import "github.com/gantryhq/gantry"

// Notes shared by the capability table and the errors that refuse a field.
const (
	noteMounts   = "a Go image has no file system, so nothing can be mounted (host processes take bind and tmpfs mounts)"
	noteSidecars = "one process per container: sidecars are refused"
	noteGPU      = "no accelerators are emulated"
)

// Capabilities reports what the fake does, for the mode it was made with.
func (rt *Runtime) Capabilities() gantry.Capabilities {
	c := gantry.Capabilities{
		gantry.FeatureCreate:      gantry.Full.With("in memory; the spec is validated first and kept as given"),
		gantry.FeatureStart:       gantry.Full.With("starting a running container is a no-op, a paused one a conflict"),
		gantry.FeatureStop:        gantry.Full.With("stop signal, then SIGKILL after the timeout, even when the caller stops waiting; exit code 128+signal"),
		gantry.FeatureKill:        gantry.Full.With("any Linux signal; SIGKILL by default, and Kill returns once the container has exited"),
		gantry.FeatureRemove:      gantry.Full.With("Force kills first; removal completes when the caller gives up, and wakes every waiter"),
		gantry.FeatureWait:        gantry.Full.With("not-running, next-exit and removed, as moby's State.Wait"),
		gantry.FeatureLogs:        gantry.Full.With("kept in memory across runs, with stream and time; the oldest lines are dropped beyond WithLogLimit"),
		gantry.FeatureLogsFollow:  gantry.Full.With("wakes on each new line, without polling; ends when the run ends"),
		gantry.FeatureInspect:     gantry.Full.With("the spec, state, exit code, signal and restart count"),
		gantry.FeatureList:        gantry.Full.With("running only unless All, Status or Limit; filters by ID prefix, name, label, status and image; newest first"),
		gantry.FeatureRestart:     gantry.Full.With("stop then start; keeps ID, name and logs; RestartCount back to 0, as Docker's"),
		gantry.FeatureRename:      gantry.Full.With("Docker's name rule; a name in use is a conflict"),
		gantry.FeatureUpdate:      gantry.Partial.With("resources are validated and recorded, not enforced"),
		gantry.FeatureAttach:      gantry.Partial.With("output is passed on line by line, as logged; stdin needs OpenStdin and is closed when the attach's stdin ends"),
		gantry.FeatureSignals:     gantry.Full.With("every Linux signal by name or number"),
		gantry.FeatureStopTimeout: gantry.Full.With("nil: the spec's or 10s; 0 kills at once; negative waits forever"),
		gantry.FeaturePorts:       gantry.Partial.With("recorded, not published: there is no network of the container's own, so a container's ports are this host's (see port-forward)"),
		gantry.FeatureResources:   gantry.Partial.With("validated and recorded, not enforced"),
		gantry.FeatureGPU:         gantry.None.With(noteGPU),
		gantry.FeatureTimeout:     gantry.Full.With("when Spec.Timeout elapses the run is stopped as by Stop, and State.Error says so"),
		gantry.FeatureMounts:      gantry.None.With(noteMounts),
		gantry.FeatureSecrets:     gantry.Partial.With("as environment variables, with values given by WithSecret; secrets as files are refused"),
		gantry.FeatureStdin:       gantry.Full.With("OpenStdin feeds the main process from Attach; exec stdin is copied, with end of file"),
		gantry.FeatureSidecars:    gantry.None.With(noteSidecars),
	}
	c[gantry.FeaturePortForward] = gantry.Partial.With("DialPort dials 127.0.0.1:port on this host, where the container's process listens: there is no network of the container's own, so anything listening there answers; a port nothing listens on is an ErrNotFound at once")
	c[gantry.FeatureRestartPolicy] = gantry.Full.With("Docker's rules and states (restarting, still running; RestartCount; no restart after Stop, Kill or a timeout; Start sets the count back to 0); the delays are Docker's divided by ten by default: 10 ms, doubling, at most 6 s, back to 10 ms after a run of 1 s (WithRestartDelay)")
	if rt.host {
		c[gantry.FeatureExec] = gantry.Full.With("a host process in the container's process group, with the container's environment, exact exit code and separate streams")
		c[gantry.FeatureExecTTY] = gantry.Full.With("a real pseudo-terminal (creack/pty) with resize; stdout and stderr are one stream")
		c[gantry.FeaturePause] = gantry.Full.With("SIGSTOP and SIGCONT to the process group")
		c[gantry.FeatureTop] = gantry.Full.With("the process group's processes from /proc: PID, PPID, STAT, TIME, CMD")
		c[gantry.FeatureStats] = gantry.Full.With("CPU time, resident memory and process count of the process group, from /proc")
		c[gantry.FeatureUser] = gantry.Partial.With("applied with setuid/setgid, which needs privilege unless it is the current user")
		c[gantry.FeatureTty] = gantry.Full.With("the main process runs on a real pseudo-terminal")
		c[gantry.FeatureCreate] = gantry.Full.With("the command runs on this host in a process group of its own; the image is not pulled or used")
		c[gantry.FeatureMounts] = gantry.Partial.With(noteMountsHost)
		c[gantry.FeatureHealthcheck] = gantry.Full.With("Docker's monitor: CMD and CMD-SHELL (with /bin/sh -c) as execs, interval, timeout, retries, start period, failing streak, unhealthy once stopped; HTTPPath and TCPPort probe 127.0.0.1 on this host")
	} else {
		c[gantry.FeatureExec] = gantry.Partial.With("runs the image's Exec function; an image without one refuses exec with ErrNotSupported")
		c[gantry.FeatureExecTTY] = gantry.Partial.With("the image's Exec function is told Tty and gets one output stream; there is no real terminal or resize")
		c[gantry.FeaturePause] = gantry.Partial.With("the Go function keeps running; its writes to stdout and stderr block until Unpause")
		c[gantry.FeatureTop] = gantry.Partial.With("one logical process (PID 1, the image's Run function); no real PIDs or CPU time")
		c[gantry.FeatureStats] = gantry.Partial.With("one process; a goroutine has no CPU time or memory of its own to report")
		c[gantry.FeatureUser] = gantry.Partial.With("passed to the image's function as Process.User; nothing enforces it")
		c[gantry.FeatureTty] = gantry.Partial.With("the image's function is told Tty and gets one output stream; there is no real terminal")
		c[gantry.FeatureHealthcheck] = gantry.Partial.With("Docker's monitor (interval, timeout, retries, start period, failing streak, unhealthy once stopped), but CMD and CMD-SHELL run the image's Exec function (given /bin/sh -c and the script for CMD-SHELL), and fail without one; HTTPPath and TCPPort probe 127.0.0.1 on this host")
	}
	return c
}
