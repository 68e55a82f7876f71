package docker

import (
	"github.com/moby/moby/api/types/container"

	"github.com/gantryhq/gantry"
)

// Notes shared by the capability table and the errors that refuse a field.
const (
	noteGPU      = "Docker needs the NVIDIA container runtime and a device request for GPUs, which this backend does not make"
	noteSecrets  = "Docker Engine keeps secrets only for swarm services, not for containers: put the value in Env or mount a file"
	noteSidecars = "Docker runs one process tree per container, and ties no other container's lifetime to it: create the sidecar as a container of its own"
	noteMounts   = "tmpfs, bind mounts and named volumes, as Docker's mounts; gcs and nfs are refused"
	noteProbes   = "Docker's own healthcheck and State.Health (HealthConfig): Test as it is, interval, timeout, retries, start period; Docker probes only by running a command in the container, so HTTPPath and TCPPort are refused"
	notePorts    = "exposed, and published on 127.0.0.1 at a port the daemon picks (docker run -p 127.0.0.1::PORT); a daemon whose default network has no bridge (dockerd --bridge=none) publishes nothing there: give WithNetwork a user-defined network"
	// notePortForward is the row of a network that publishes ports.
	notePortForward = "DialPort dials the port's published address: only the ports of Spec.Ports (others are an ErrInvalidArgument), on the daemon's machine when that is this one; the daemon's proxy accepts first, so a port nothing listens on in the container gives a connection that closes without a byte, not an error"
)

// Capabilities reports what a Docker Engine does of gantry's contract:
// nearly everything, since gantry's semantics are Docker's with an init.
func (r *Runtime) Capabilities() gantry.Capabilities {
	c := gantry.Capabilities{
		gantry.FeatureCreate:      gantry.Full.With("ContainerCreate, with an init (HostConfig.Init) as gantry's semantics assume; the spec is kept in a label, so Inspect returns it as given"),
		gantry.FeatureStart:       gantry.Full.With("ContainerStart; starting a running container is a no-op, and a command that cannot run exits 127 (126 when not executable), as under Docker's init"),
		gantry.FeatureStop:        gantry.Full.With("ContainerStop: the stop signal, then SIGKILL when the timeout ends, by the daemon (a daemon older than API 1.42 ignores a signal given to stop; then this backend sends it and kills as the daemon would)"),
		gantry.FeatureKill:        gantry.Full.With("ContainerKill: the init passes the signal to the main process; SIGKILL by default"),
		gantry.FeatureRemove:      gantry.Full.With("ContainerRemove; Force kills first, RemoveVolumes removes anonymous volumes"),
		gantry.FeatureWait:        gantry.Full.With("ContainerWait: not-running, next-exit and removed, held by the daemon before RegisterWait returns; Docker keeps no signal, so it is read back from an exit code of 128+N"),
		gantry.FeatureLogs:        gantry.Full.With("the daemon's log driver (json-file by default) with its own timestamps, stdout and stderr apart, across runs; put in time order across the two streams, which the daemon may store a few microseconds out of order"),
		gantry.FeatureLogsFollow:  gantry.Full.With("the daemon's follow, which ends when the container stops; entries come in the daemon's order, where a line of one stream may precede by microseconds one of the other stamped earlier"),
		gantry.FeatureExec:        gantry.Full.With("ExecCreate and ExecStart: the exit code as the daemon reports it, stdout and stderr apart, stdin with end of file"),
		gantry.FeatureExecTTY:     gantry.Full.With("a real terminal; Resize reaches it through ExecResize"),
		gantry.FeatureInspect:     gantry.Full.With("ContainerInspect: Docker's state, exit code, times and restart count; the spec from gantry's label, with the current name and resources"),
		gantry.FeatureList:        gantry.Full.With("ContainerList of gantry's containers on this daemon (by label), filtered and ordered as on every backend"),
		gantry.FeatureRestart:     gantry.Full.With("ContainerRestart; keeps ID, name and logs; RestartCount counts only a restart policy's restarts, as Docker's does"),
		gantry.FeaturePause:       gantry.Full.With("ContainerPause: the cgroup freezer"),
		gantry.FeatureRename:      gantry.Full.With("ContainerRename; a name in use is a conflict"),
		gantry.FeatureUpdate:      gantry.Full.With("ContainerUpdate of the CPU and memory limits; a zero field leaves that limit as it is, as docker update does"),
		gantry.FeatureAttach:      gantry.Full.With("ContainerAttach: output from now on; stdin needs OpenStdin, and the container's stdin closes when the attach's ends (StdinOnce)"),
		gantry.FeatureTop:         gantry.Full.With("ContainerTop: ps -ef's columns, read by the daemon"),
		gantry.FeatureStats:       gantry.Full.With("one sample: CPU time, memory in use less the page cache (as docker stats shows it), number of processes"),
		gantry.FeatureSignals:     gantry.Full.With("every Linux signal by name or number, passed to the main process by the init"),
		gantry.FeatureStopTimeout: gantry.Full.With("Docker counts whole seconds: a fractional timeout is rounded up; 0 kills at once, a negative one waits forever"),
		gantry.FeatureHealthcheck: gantry.Partial.With(noteProbes),
		gantry.FeatureResources:   gantry.Full.With("NanoCPUs and the memory limit, enforced by the kernel"),
		gantry.FeatureGPU:         gantry.None.With(noteGPU),
		gantry.FeatureTimeout:     gantry.Partial.With("Docker has no bound on a run: the Runtime that started the run stops it when Spec.Timeout ends, if that Runtime is still open then; State.Error does not say why it stopped, and the runs a restart policy starts are not bounded"),
		gantry.FeatureMounts:      gantry.Partial.With(noteMounts),
		gantry.FeatureSecrets:     gantry.None.With(noteSecrets),
		gantry.FeatureUser:        gantry.Full.With("Docker's user, by name or number, resolved in the image"),
		gantry.FeatureTty:         gantry.Full.With("a real terminal for the main process; its log lines end in \\r\\n, which Logs strips"),
		gantry.FeatureStdin:       gantry.Full.With("OpenStdin feeds the main process from Attach; exec stdin is copied, then closed"),
		gantry.FeatureSidecars:    gantry.None.With(noteSidecars),
	}
	c[gantry.FeatureRestartPolicy] = gantry.Full.With("HostConfig.RestartPolicy: the daemon's own restarts (delays from 100 ms, doubling, at most a minute, back to 100 ms after a run of 10 s) and RestartCount; it also starts always containers when it restarts itself")
	mode := container.NetworkMode(r.cfg.network)
	switch {
	case mode.IsHost():
		c[gantry.FeaturePorts] = gantry.Full.With("the container shares the host's network, so its ports are the host's")
		c[gantry.FeaturePortForward] = gantry.Full.With("the container shares the host's network: DialPort dials 127.0.0.1:port, any port; one nothing listens on is refused (ErrNotFound)")
	case !publishes(mode):
		c[gantry.FeaturePorts] = gantry.Partial.With("exposed (as EXPOSE), not published: the network mode " + r.cfg.network + " has no ports to publish")
		c[gantry.FeaturePortForward] = gantry.None.With("the network mode " + r.cfg.network + " gives the container no ports to reach from this host")
	default:
		c[gantry.FeaturePorts] = gantry.Full.With(notePorts)
		c[gantry.FeaturePortForward] = gantry.Partial.With(notePortForward)
	}
	return c
}
