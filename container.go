package gantry

import "time"

// Spec describes a container to create. The zero value of every field but
// Image means "the image's or the backend's default". Settings that only
// one backend understands are that backend's options, not fields here.
type Spec struct {
	// Name is the container's unique name: Docker's rule,
	// [a-zA-Z0-9][a-zA-Z0-9_.-]+. Empty means a generated name.
	Name string
	// Image is the image reference: [registry/]repository[:tag][@digest].
	Image string
	// Entrypoint replaces the image's ENTRYPOINT; Cmd replaces its CMD.
	// The process runs Entrypoint followed by Cmd.
	Entrypoint []string
	Cmd        []string
	// Env holds KEY=VALUE entries, as os/exec.
	Env []string
	// WorkingDir is an absolute path; empty means the image's.
	WorkingDir string
	// User is "user", "uid", "user:group" or "uid:gid".
	User string
	// Labels are the user's own key/value metadata, returned by Inspect
	// and matched by ListOptions.Labels.
	Labels map[string]string
	// Ports are the ports the container listens on.
	Ports []Port
	// Healthcheck says how to tell that the container is healthy.
	Healthcheck *Healthcheck
	// Resources bounds CPU, memory and accelerators.
	Resources Resources
	// Timeout bounds one run: when it elapses the container is stopped as
	// by Stop. Zero means no bound of gantry's own (a cloud backend may
	// still have one).
	Timeout time.Duration
	// StopSignal is the signal Stop sends first; empty means SIGTERM.
	StopSignal string
	// StopTimeout is Stop's default timeout for this container; nil
	// means DefaultStopTimeout.
	StopTimeout *time.Duration
	// Mounts are the volumes mounted into the container.
	Mounts []Mount
	// Secrets are secret values exposed as environment variables or files.
	Secrets []Secret
	// Tty gives the main process a terminal.
	Tty bool
	// OpenStdin keeps the main process's standard input open for Attach.
	OpenStdin bool
	// Sidecars are further containers that run beside the main one and
	// share its network and lifetime.
	Sidecars []Sidecar
	// RestartPolicy says whether the container is started again when it
	// exits, as docker run --restart does. The zero value never restarts.
	RestartPolicy RestartPolicy
}

// The restart policies' names, Docker's.
const (
	// RestartNo never restarts; it is what the empty name means too.
	RestartNo = "no"
	// RestartOnFailure restarts after a non-zero exit code, at most
	// MaxRetries times when MaxRetries is positive.
	RestartOnFailure = "on-failure"
	// RestartAlways restarts after every exit.
	RestartAlways = "always"
	// RestartUnlessStopped restarts after every exit, as RestartAlways;
	// the two differ only when Docker's daemon restarts, which starts
	// "always" containers that were stopped and leaves these stopped.
	RestartUnlessStopped = "unless-stopped"
)

// RestartPolicy is Docker's restart policy. With Docker's semantics, a
// container that exits is started again after a delay that doubles with
// each restart (a backend states its delays in its Capabilities note),
// and Container.RestartCount counts those restarts. A container that
// exits because of Stop, Kill (with any signal) or Spec.Timeout is not
// restarted; Start, or Restart, starts it again and sets RestartCount
// back to 0. While it waits to be restarted, its status is
// StatusRestarting and State.Running stays true, as in Docker: Stop and
// Kill end the wait, leaving it exited.
type RestartPolicy struct {
	// Name is "" or RestartNo, RestartOnFailure, RestartAlways or
	// RestartUnlessStopped.
	Name string
	// MaxRetries bounds the restarts of RestartOnFailure; 0 means no
	// bound. Other policies take none.
	MaxRetries int
}

// Port is a port the container listens on.
type Port struct {
	// Port is the number, 1 to 65535.
	Port int
	// Protocol is "tcp" (the default when empty) or "udp".
	Protocol string
}

// Healthcheck describes a probe. Exactly one of Test, HTTPPath or TCPPort
// is set.
type Healthcheck struct {
	// Test is Docker's form: {"CMD", argv...} or {"CMD-SHELL", script},
	// run in the container as an exec, passing when it exits 0; {"NONE"}
	// turns off the image's healthcheck.
	Test []string
	// HTTPPath probes with an HTTP GET on Port (or the first Spec port),
	// passing on a status from 200 to 399.
	HTTPPath string
	// TCPPort probes by opening a TCP connection.
	TCPPort int
	// Port is the port HTTPPath is served on.
	Port int
	// Interval between probes, Timeout of one probe, StartPeriod during
	// which failures do not count, Retries before unhealthy. Zero means
	// Docker's default: 30s, 30s, none and 3. As in Docker, the first
	// probe runs an Interval after the start, a probe that outlasts
	// Timeout fails, and a probe that passes during the start period
	// makes the container healthy at once.
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Resources bounds what a container may use. Zero means the default.
type Resources struct {
	// CPU is in cores; 0.5 is half a core.
	CPU float64
	// MemoryBytes is the memory limit.
	MemoryBytes int64
	// GPUs is the number of accelerators, of GPUType (for example
	// "nvidia-l4").
	GPUs    int
	GPUType string
}

// MountType is the kind of a Mount.
type MountType string

// The mount kinds. A backend refuses the kinds it cannot provide.
const (
	// MountTmpfs is an in-memory directory; Source is empty.
	MountTmpfs MountType = "tmpfs"
	// MountBind is a host directory; Source is its path.
	MountBind MountType = "bind"
	// MountVolume is a named volume; Source is its name.
	MountVolume MountType = "volume"
	// MountGCS is a Cloud Storage bucket; Source is the bucket name.
	MountGCS MountType = "gcs"
	// MountNFS is an NFS export; Source is "server:/path".
	MountNFS MountType = "nfs"
)

// Mount is a volume mounted into a container.
type Mount struct {
	Type   MountType
	Source string
	// Target is the absolute path inside the container.
	Target   string
	ReadOnly bool
	// SizeBytes bounds a tmpfs; zero means the backend's default.
	SizeBytes int64
}

// Secret exposes one secret (for Google Cloud, a Secret Manager secret) to
// the container, as an environment variable (Env) or a file (Path):
// exactly one of the two.
type Secret struct {
	// Name is the secret: "name" in the backend's project, or a full
	// resource name.
	Name string
	// Version is the version to read; empty means "latest".
	Version string
	// Env is the environment variable that receives the value.
	Env string
	// Path is the absolute path of the file that holds the value.
	Path string
}

// Sidecar is a further container of the same workload.
type Sidecar struct {
	Name       string
	Image      string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Ports      []Port
	Resources  Resources
}

// Status is a container's state, with Docker's values.
type Status string

// Docker's container statuses.
const (
	StatusCreated    Status = "created"
	StatusRunning    Status = "running"
	StatusPaused     Status = "paused"
	StatusRestarting Status = "restarting"
	StatusRemoving   Status = "removing"
	StatusExited     Status = "exited"
	StatusDead       Status = "dead"
)

// State is a container's run state, as docker inspect reports it.
type State struct {
	Status  Status
	Running bool
	Paused  bool
	// ExitCode is the exit code of the last run (0 before any).
	ExitCode int
	// Signal names the signal that ended the last run, if one did.
	Signal     string
	StartedAt  time.Time
	FinishedAt time.Time
	// Error is the platform's explanation of a failed run.
	Error string
	// Health is the result of the spec's Healthcheck, nil for a container
	// without one or that has never started.
	Health *Health
}

// Docker's health statuses.
const (
	// HealthStarting: no probe has passed since the run started, and
	// fewer than Healthcheck.Retries have failed in a row since the end
	// of the start period.
	HealthStarting = "starting"
	// HealthHealthy: the last probe passed, or too few have failed since.
	HealthHealthy = "healthy"
	// HealthUnhealthy: Healthcheck.Retries probes in a row have failed
	// (those of the start period do not count until one passes). A
	// container that is not running reads unhealthy too, as in Docker.
	HealthUnhealthy = "unhealthy"
)

// Health is a container's health, as docker inspect reports it.
type Health struct {
	// Status is HealthStarting, HealthHealthy or HealthUnhealthy.
	Status string
	// FailingStreak counts the probes that have failed in a row (and
	// counted); a passing probe sets it to 0.
	FailingStreak int
}

// Container is what Inspect and List return.
type Container struct {
	ID      string
	Name    string
	Image   string
	Created time.Time
	// Spec is the spec the container was created with (after Rename or
	// Update, the current one).
	Spec   Spec
	Labels map[string]string
	State  State
	// Resource is the backend's name for the thing that runs the
	// container, such as a Cloud Run job's or instance's full resource
	// name.
	Resource string
	// URL is where a served container answers from outside: a Cloud Run
	// instance's URL for its first port. Empty where the backend gives a
	// container no URL of its own (reach its ports with DialPort).
	URL string
	// RestartCount counts the restarts Spec.RestartPolicy made since the
	// container was last started by Start or Restart, as Docker's does:
	// those set it back to 0 and do not count.
	RestartCount int
}
