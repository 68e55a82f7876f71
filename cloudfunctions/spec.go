package cloudfunctions

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"github.com/distribution/reference"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions/internal/runner"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
)

// Cloud Functions' limits that the mapping checks before any call.
const (
	// MaxTimeout is the longest request an HTTP function serves, and so
	// the longest Spec.Timeout: 60 minutes
	// (https://cloud.google.com/functions/docs/configuring/timeout).
	MaxTimeout = time.Hour

	// recordEnv is the build-time environment variable that holds the
	// container record as JSON. A function has no annotations; its
	// labels are too narrow for the record; a runtime variable would be
	// in every command's environment. Build variables are kept on the
	// function, returned by GetFunction and never reach the instance.
	recordEnv = "GANTRY_CONTAINER"
	// maxRecordBytes bounds the record: Cloud Run's limit on one
	// environment variable's value, 32 KiB, which build variables share.
	maxRecordBytes = 32 << 10

	// concurrency lets the requests that wait for, signal and stop a run
	// reach the instance that runs it. Above 1 needs a whole CPU.
	concurrency = 1000

	mib           = 1 << 20
	defaultMemory = 512 * mib
	minMemory     = 128 * mib
	maxMemory     = 32 << 30
)

// wholeCPUMemory is, for each CPU count Cloud Run accepts from 1 up, the
// least and the most memory an instance may have
// (https://cloud.google.com/run/docs/configuring/services/memory-limits).
var wholeCPUMemory = map[int][2]int64{
	1: {minMemory, 4 << 30},
	2: {minMemory, 8 << 30},
	4: {2 << 30, 16 << 30},
	6: {4 << 30, 24 << 30},
	8: {4 << 30, 32 << 30},
}

// unsupported refuses a Spec feature the capability table declares none.
func unsupported(field, note string) error {
	return fmt.Errorf("%s: %w: %s", field, gantry.ErrNotSupported, note)
}

// runtimeOf returns the Cloud Functions runtime Spec.Image names: a
// runtime ID such as "go125", written as an image with no registry,
// namespace or tag other than latest ("go125", "go125:latest" and
// "docker.io/library/go125:latest" are one runtime).
func runtimeOf(image string) (string, error) {
	named, err := gantry.ParseImage(image)
	if err != nil {
		return "", err
	}
	tagged, _ := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	path := reference.Path(named)
	if reference.Domain(named) != "docker.io" || !strings.HasPrefix(path, "library/") || strings.Count(path, "/") != 1 || digested || tagged == nil || tagged.Tag() != "latest" {
		return "", &gantry.FieldError{Field: "Image", Value: image, Reason: "names the Cloud Functions runtime to build on, such as go125: a runtime ID, not an image"}
	}
	return strings.TrimPrefix(path, "library/"), nil
}

// checkSpec refuses, before any call, what a function cannot honour.
func checkSpec(spec gantry.Spec) error {
	switch {
	case len(spec.Entrypoint) == 0 && len(spec.Cmd) == 0:
		return &gantry.FieldError{Field: "Cmd", Reason: "a runtime has no command of its own: give Entrypoint or Cmd"}
	case spec.User != "":
		return unsupported("User", noteUser)
	case spec.Tty:
		return unsupported("Tty", noteTty)
	case spec.OpenStdin:
		return unsupported("OpenStdin", noteStdin)
	case len(spec.Ports) > 0:
		return unsupported("Ports", notePorts)
	case spec.Healthcheck != nil:
		return unsupported("Healthcheck", noteHealthcheck)
	case spec.RestartPolicy.Name != "" && spec.RestartPolicy.Name != gantry.RestartNo:
		return unsupported("RestartPolicy", noteRestart)
	case len(spec.Mounts) > 0:
		return unsupported("Mounts", noteMounts)
	case len(spec.Sidecars) > 0:
		return unsupported("Sidecars", noteSidecars)
	case spec.Resources.GPUs > 0 || spec.Resources.GPUType != "":
		return unsupported("Resources.GPUs", noteGPU)
	case spec.Timeout > MaxTimeout:
		return &gantry.FieldError{Field: "Timeout", Value: spec.Timeout.String(), Reason: "a function's request lasts at most 60 minutes"}
	}
	for i, s := range spec.Secrets {
		if s.Path != "" {
			return unsupported(fmt.Sprintf("Secrets[%d].Path", i), noteSecrets)
		}
	}
	if _, _, err := resources(spec.Resources); err != nil {
		return err
	}
	return nil
}

// resources maps Spec.Resources to the function's CPU and memory: 1, 2,
// 4, 6 or 8 CPUs (request concurrency needs at least one), memory
// rounded up to whole MiB within what the CPU allows; an unset one is 1
// CPU, and the least memory that fits, at least 512 MiB.
func resources(res gantry.Resources) (cpu string, memory string, err error) {
	n := 1
	if res.CPU != 0 {
		if res.CPU != math.Trunc(res.CPU) || wholeCPUMemory[int(res.CPU)] == [2]int64{} {
			return "", "", &gantry.FieldError{Field: "Resources.CPU", Value: strconv.FormatFloat(res.CPU, 'g', -1, 64), Reason: "a function that serves concurrent requests has 1, 2, 4, 6 or 8 CPUs"}
		}
		n = int(res.CPU)
	}
	bounds := wholeCPUMemory[n]
	mem := res.MemoryBytes
	if mem == 0 {
		mem = max(defaultMemory, bounds[0])
	}
	mem = (mem + mib - 1) / mib * mib
	if mem < bounds[0] || mem > bounds[1] {
		return "", "", &gantry.FieldError{Field: "Resources.MemoryBytes", Value: strconv.FormatInt(res.MemoryBytes, 10), Reason: fmt.Sprintf("%d CPU takes %d MiB to %d MiB", n, bounds[0]/mib, bounds[1]/mib)}
	}
	return strconv.Itoa(n), strconv.FormatInt(mem/mib, 10) + "Mi", nil
}

// checkRuntime refuses a runtime the API does not list, or one that
// cannot build gantry's runner (which is Go). The list is read once per
// Runtime.
func (r *Runtime) checkRuntime(ctx context.Context, rt string) error {
	r.runtimesMu.Lock()
	defer r.runtimesMu.Unlock()
	if r.runtimes == nil {
		resp, err := r.fns.ListRuntimes(ctx, &functionspb.ListRuntimesRequest{Parent: r.parent}, gcperr.Retry())
		if err != nil {
			return gcperr.Wrap(ctx, err, "list runtimes of %s", r.parent)
		}
		r.runtimes = map[string]bool{}
		for _, x := range resp.GetRuntimes() {
			if x.GetStage() != functionspb.ListRuntimesResponse_DECOMMISSIONED && (x.GetEnvironment() == functionspb.Environment_GEN_2 || x.GetEnvironment() == functionspb.Environment_ENVIRONMENT_UNSPECIFIED) {
				r.runtimes[x.GetName()] = true
			}
		}
	}
	switch {
	case !r.runtimes[rt]:
		return &gantry.FieldError{Field: "Image", Value: rt, Reason: "is not a runtime Cloud Functions lists for " + r.parent}
	case !strings.HasPrefix(rt, "go"):
		return &gantry.FieldError{Field: "Image", Value: rt, Reason: "gantry's runner function is Go: name a Go runtime such as go125"}
	}
	return nil
}

// functionFor maps a container to the function that runs it.
func (r *Runtime) functionFor(rec meta.Record, rt string, src *functionspb.StorageSource) (*functionspb.Function, error) {
	ann, err := rec.Annotations()
	if err != nil {
		return nil, err
	}
	raw := ann[meta.AnnotationRecord]
	if len(raw) > maxRecordBytes {
		return nil, fmt.Errorf("store container record: %w: the spec takes %d bytes as JSON, over the %d a function keeps (large scripts or environments belong in a secret)", gantry.ErrInvalidArgument, len(raw), maxRecordBytes)
	}
	cpu, memory, err := resources(rec.Spec.Resources)
	if err != nil {
		return nil, err
	}
	sc := &functionspb.ServiceConfig{
		// The request that holds a run open lasts as long as a request
		// may; the run's own Timeout is enforced by the runner.
		TimeoutSeconds:                int32(MaxTimeout / time.Second),
		AvailableMemory:               memory,
		AvailableCpu:                  cpu,
		MaxInstanceCount:              1,
		MinInstanceCount:              int32(r.cfg.MinInstances),
		MaxInstanceRequestConcurrency: concurrency,
		ServiceAccountEmail:           r.cfg.ServiceAccount,
		AllTrafficOnLatestRevision:    true,
	}
	for _, s := range rec.Spec.Secrets {
		sev := &functionspb.SecretEnvVar{Key: s.Env, Secret: s.Name, Version: s.Version}
		if p, rest, ok := strings.Cut(strings.TrimPrefix(s.Name, "projects/"), "/secrets/"); ok && strings.HasPrefix(s.Name, "projects/") {
			sev.ProjectId, sev.Secret = p, rest
		}
		if sev.Version == "" {
			sev.Version = "latest"
		}
		sc.SecretEnvironmentVariables = append(sc.SecretEnvironmentVariables, sev)
	}
	return &functionspb.Function{
		Description: "gantry container " + rec.Name,
		Labels:      rec.Labels(meta.System{Session: r.cfg.Session, Labels: r.cfg.Labels}),
		Environment: functionspb.Environment_GEN_2,
		BuildConfig: &functionspb.BuildConfig{
			Runtime:              rt,
			EntryPoint:           runner.EntryPoint,
			Source:               &functionspb.Source{Source: &functionspb.Source_StorageSource{StorageSource: src}},
			EnvironmentVariables: map[string]string{recordEnv: raw},
		},
		ServiceConfig: sc,
	}, nil
}

// runRequest is what the runner is asked to run for a Start of spec.
func runRequest(id string, spec gantry.Spec) runner.Request {
	req := runner.Request{
		ID:         id,
		Argv:       append(append([]string(nil), spec.Entrypoint...), spec.Cmd...),
		Env:        spec.Env,
		Dir:        spec.WorkingDir,
		StopSignal: spec.StopSignal,
	}
	if spec.Timeout > 0 {
		req.TimeoutMillis = ceilMillis(spec.Timeout)
		req.KillAfterMillis = ceilMillis(stopTimeout(spec, nil))
		if req.KillAfterMillis <= 0 {
			// The runner reads zero as its default; a stop timeout of
			// zero kills at once.
			req.KillAfterMillis = 1
		}
	}
	return req
}

// stopTimeout is Docker's: the option's, else the spec's, else 10 s.
func stopTimeout(spec gantry.Spec, opt *time.Duration) time.Duration {
	switch {
	case opt != nil:
		return *opt
	case spec.StopTimeout != nil:
		return *spec.StopTimeout
	}
	return gantry.DefaultStopTimeout
}

func ceilMillis(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
