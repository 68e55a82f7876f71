package docker

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/gantryhq/gantry"
)

// Create validates spec, refuses what Docker cannot do with it, and creates
// the container (status created). Nothing reaches the daemon for a spec
// that is refused.
func (r *Runtime) Create(ctx context.Context, spec gantry.Spec) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, backend, "create", spec.Name)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	opts, err := r.createOptions(&spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	res, err := r.cli.ContainerCreate(ctx, opts)
	if err != nil {
		return nil, r.closedOr(classify(err, "create the container"))
	}
	r.log.Debug("created", zap.String("id", res.ID), zap.String("name", spec.Name), zap.Strings("warnings", res.Warnings))
	c, err := r.inspect(ctx, res.ID)
	return c, r.closedOr(err)
}

// createOptions maps a valid spec to ContainerCreate's request, or refuses
// it with ErrNotSupported (or ErrInvalidArgument, for a label under
// gantry's prefix).
func (r *Runtime) createOptions(spec *gantry.Spec) (client.ContainerCreateOptions, error) {
	var none client.ContainerCreateOptions
	if err := refuse(spec); err != nil {
		return none, err
	}
	rec := newRecord(spec)
	encoded, err := rec.encode()
	if err != nil {
		return none, err
	}
	labels := map[string]string{
		labelManagedBy: managedBy,
		labelSession:   r.cfg.session,
		labelRecord:    encoded,
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Entrypoint: nonEmpty(spec.Entrypoint),
		Cmd:        nonEmpty(spec.Cmd),
		Env:        spec.Env,
		WorkingDir: spec.WorkingDir,
		User:       spec.User,
		Labels:     labels,
		Tty:        spec.Tty,
		OpenStdin:  spec.OpenStdin,
		// As docker run -i: when the attach that feeds stdin ends its
		// input, the main process sees end of file.
		StdinOnce: spec.OpenStdin,
	}
	if spec.StopSignal != "" {
		n, _ := gantry.ParseSignal(spec.StopSignal)
		cfg.StopSignal = gantry.SignalName(n)
	}
	if spec.StopTimeout != nil {
		cfg.StopTimeout = new(seconds(*spec.StopTimeout))
	}
	mode := container.NetworkMode(r.cfg.network)
	var bindings network.PortMap
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		for _, p := range spec.Ports {
			port, err := dockerPort(p.Port, p.Protocol)
			if err != nil {
				return none, err
			}
			cfg.ExposedPorts[port] = struct{}{}
			if publishes(mode) {
				if bindings == nil {
					bindings = network.PortMap{}
				}
				// docker run -p 127.0.0.1::PORT: the daemon picks the
				// host port, on the loopback only.
				bindings[port] = []network.PortBinding{{HostIP: loopback}}
			}
		}
	}
	if h := spec.Healthcheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	}
	host := &container.HostConfig{
		// gantry's semantics are Docker's with an init (docker run
		// --init): signals reach the main process only, an untrapped
		// SIGTERM ends it with 143, and orphans are reaped.
		Init:         new(true),
		NetworkMode:  mode,
		PortBindings: bindings,
		Resources:    resources(spec.Resources),
		RestartPolicy: container.RestartPolicy{
			Name:              container.RestartPolicyMode(spec.RestartPolicy.Name),
			MaximumRetryCount: spec.RestartPolicy.MaxRetries,
		},
	}
	for _, m := range spec.Mounts {
		host.Mounts = append(host.Mounts, dockerMount(m))
	}
	return client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: spec.Name}, nil
}

// refuse returns ErrNotSupported for the first feature of spec Docker
// cannot provide (see Capabilities), and ErrInvalidArgument for a label
// under gantry's own prefix.
func refuse(spec *gantry.Spec) error {
	for k := range spec.Labels {
		if strings.HasPrefix(k, labelPrefix) {
			return &gantry.FieldError{Field: "Labels[" + strconv.Quote(k) + "]", Value: k, Reason: "the prefix " + labelPrefix + " is gantry's own"}
		}
	}
	unsupported := func(field, note string) error {
		return fmt.Errorf("%s: %w: %s", field, gantry.ErrNotSupported, note)
	}
	if spec.Resources.GPUs > 0 {
		return unsupported("Resources.GPUs", noteGPU)
	}
	if len(spec.Secrets) > 0 {
		return unsupported("Secrets", noteSecrets)
	}
	if len(spec.Sidecars) > 0 {
		return unsupported("Sidecars", noteSidecars)
	}
	if h := spec.Healthcheck; h != nil && (h.HTTPPath != "" || h.TCPPort != 0) {
		return unsupported("Healthcheck", noteProbes)
	}
	for i, m := range spec.Mounts {
		switch m.Type {
		case gantry.MountGCS, gantry.MountNFS:
			return unsupported(fmt.Sprintf("Mounts[%d].Type %s", i, m.Type), noteMounts)
		}
	}
	return nil
}

// dockerPort is Docker's form of a spec's port: "8080/tcp".
func dockerPort(n int, proto string) (network.Port, error) {
	if proto == "" {
		proto = "tcp"
	}
	port, err := network.ParsePort(strconv.Itoa(n) + "/" + proto)
	if err != nil {
		return port, fmt.Errorf("%w: port %d/%s: %w", gantry.ErrInvalidArgument, n, proto, err)
	}
	return port, nil
}

// nonEmpty returns nil for an empty argv, which Docker reads as "the
// image's", as gantry does.
func nonEmpty(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	return argv
}

// seconds converts a timeout to Docker's whole seconds: rounded up, so a
// container is never given less time than asked; any negative timeout is
// -1, which Docker reads as "wait forever".
func seconds(d time.Duration) int {
	if d < 0 {
		return -1
	}
	return int((d + time.Second - 1) / time.Second)
}

// resources maps gantry's CPU and memory to Docker's limits.
func resources(res gantry.Resources) container.Resources {
	return container.Resources{
		NanoCPUs: int64(math.Round(res.CPU * 1e9)),
		Memory:   res.MemoryBytes,
	}
}

func dockerMount(m gantry.Mount) mount.Mount {
	dm := mount.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	switch m.Type {
	case gantry.MountTmpfs:
		dm.Type = mount.TypeTmpfs
		if m.SizeBytes > 0 {
			dm.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.SizeBytes}
		}
	case gantry.MountBind:
		dm.Type = mount.TypeBind
	case gantry.MountVolume:
		dm.Type = mount.TypeVolume
	}
	return dm
}
