package gcptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"

	"github.com/gantryhq/gantry"
)

// containerNameLabel is the entry label naming the container of a task
// with more than one that wrote a line.
const containerNameLabel = "run.googleapis.com/container_name"

// attemptPlan is what one task attempt runs: its containers, the host
// directories of its volumes, and the probe ports it holds.
type attemptPlan struct {
	containers []*attemptContainer
	dir        string // the attempt's volumes, removed when it ends
	ports      []int
}

// planAttempt prepares one attempt of a task: a fresh host directory for
// each of its in-memory volumes, each container's image pulled when it
// comes from a registry the Server pulls from, and the containers' specs
// with the environment Cloud Run sets for jobs and secrets read. An
// error is why the attempt cannot start; the caller records it.
func (s *Server) planAttempt(ctx context.Context, en executionName, taskID string, t *runpb.Task, index, attempt, taskCount int) (_ *attemptPlan, err error) {
	plan := &attemptPlan{}
	defer func() {
		if err != nil {
			plan.cleanup()
		}
	}()
	volumes := map[string]*runpb.Volume{}
	for _, v := range t.Volumes {
		volumes[v.Name] = v
	}
	byName := map[string]int{}
	for i, c := range t.Containers {
		byName[c.Name] = i
	}
	for i, c := range t.Containers {
		img, err := s.images.get(ctx, c.Image)
		if err != nil {
			return nil, err
		}
		mounts, err := s.volumeMounts(plan, taskID, attempt, c, volumes)
		if err != nil {
			return nil, err
		}
		spec, err := s.containerSpec(en, taskID, c, img, mounts, index, attempt, taskCount)
		if err != nil {
			return nil, err
		}
		if len(t.Containers) > 1 {
			spec.Name += "-" + c.Name
		}
		logs := jobTaskLogTarget(en.location, en.job, en.execution, index, attempt)
		if len(t.Containers) > 1 {
			logs.labels[containerNameLabel] = c.Name
		}
		ac := &attemptContainer{name: c.Name, w: workload{spec: spec, logs: logs}, probe: startupProbe(c)}
		if i == 0 && ac.name == "" {
			ac.name = en.job
		}
		for _, d := range c.DependsOn {
			ac.deps = append(ac.deps, byName[d])
		}
		if ac.probe != nil && !slices.Contains(plan.ports, ac.probe.port) {
			plan.ports = append(plan.ports, ac.probe.port)
		}
		plan.containers = append(plan.containers, ac)
	}
	return plan, nil
}

// cleanup removes the attempt's volumes.
func (p *attemptPlan) cleanup() {
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// volumeMounts gives a container its volume mounts: an in-memory (or
// disk) volume is a directory of the attempt on this host, made at its
// first mount and shared by every container that mounts it. Other kinds
// of volume cannot be emulated, and a mount of one keeps the attempt
// from starting.
func (s *Server) volumeMounts(plan *attemptPlan, taskID string, attempt int, c *runpb.Container, volumes map[string]*runpb.Volume) ([]gantry.Mount, error) {
	var ms []gantry.Mount
	for _, m := range c.VolumeMounts {
		v := volumes[m.GetName()]
		if v.GetEmptyDir() == nil {
			return nil, fmt.Errorf("volume %q: gcptest mounts only in-memory (empty_dir) volumes", m.GetName())
		}
		if plan.dir == "" {
			dir, err := os.MkdirTemp(s.work, fmt.Sprintf("%s-a%d-", taskID, attempt))
			if err != nil {
				return nil, err
			}
			plan.dir = dir
		}
		src := filepath.Join(plan.dir, "volumes", v.Name)
		if sp := m.GetSubPath(); sp != "" {
			src = filepath.Join(src, filepath.FromSlash(sp))
		}
		if err := os.MkdirAll(src, 0o777); err != nil {
			return nil, err
		}
		target := m.GetMountPath()
		ms = append(ms, gantry.Mount{Type: gantry.MountBind, Source: src, Target: target})
	}
	return ms, nil
}

// containerSpec is one container of an attempt: the container as
// containerBase gives it, with the environment Cloud Run sets for jobs.
func (s *Server) containerSpec(en executionName, taskID string, c *runpb.Container, img *pulledImage, mounts []gantry.Mount, index, attempt, taskCount int) (gantry.Spec, error) {
	spec, err := s.containerBase(en.project, c, img, mounts)
	if err != nil {
		return gantry.Spec{}, err
	}
	spec.Env = append(spec.Env,
		"CLOUD_RUN_JOB="+en.job,
		"CLOUD_RUN_EXECUTION="+en.execution,
		"CLOUD_RUN_TASK_INDEX="+strconv.Itoa(index),
		"CLOUD_RUN_TASK_ATTEMPT="+strconv.Itoa(attempt),
		"CLOUD_RUN_TASK_COUNT="+strconv.Itoa(taskCount),
	)
	spec.Name = fmt.Sprintf("%s-a%d", taskID, attempt)
	spec.Labels = map[string]string{
		"gcptest.job":        en.jobName.String(),
		"gcptest.execution":  en.execution,
		"gcptest.task_index": strconv.Itoa(index),
	}
	if c.Name != "" {
		spec.Labels["gcptest.container"] = c.Name
	}
	return spec, nil
}

// containerBase is what every container the Server runs (a job's or a
// service's) starts from: its command and args as given, or from its
// pulled image (img) by Cloud Run's rules, GCE_METADATA_HOST naming the
// Server's metadata server, the image's environment and then the
// container's, secret variables read from the Server's secrets of
// project, and its volumes mounted.
func (s *Server) containerBase(project string, c *runpb.Container, img *pulledImage, mounts []gantry.Mount) (gantry.Spec, error) {
	entrypoint, cmd, workdir := c.Command, c.Args, c.WorkingDir
	// The container's own env, or the image's, may override it.
	env := []string{"GCE_METADATA_HOST=" + s.MetadataHost()}
	if img != nil {
		cfg := img.config
		if len(c.Command) == 0 {
			entrypoint = cfg.Entrypoint
			if len(c.Args) == 0 {
				cmd = cfg.Cmd
			}
		}
		if workdir == "" {
			workdir = cfg.WorkingDir
		}
		for _, e := range cfg.Env {
			if !strings.HasPrefix(e, "PATH=") {
				env = append(env, e)
			}
		}
		entries, err := img.rootEntries()
		if err != nil {
			return gantry.Spec{}, err
		}
		for _, e := range entries {
			target := "/" + e
			if slices.ContainsFunc(mounts, func(m gantry.Mount) bool { return strings.TrimRight(m.Target, "/") == target }) {
				continue
			}
			mounts = append(mounts, gantry.Mount{Type: gantry.MountBind, Source: filepath.Join(img.root, e), Target: target})
		}
	}
	for _, e := range c.Env {
		v := e.GetValue()
		if ref := e.GetValueSource().GetSecretKeyRef(); ref != nil {
			var err error
			if v, err = s.secrets.resolve(project, ref.GetSecret(), ref.GetVersion()); err != nil {
				return gantry.Spec{}, fmt.Errorf("environment variable %s: %w", e.GetName(), err)
			}
		}
		env = append(env, e.GetName()+"="+v)
	}
	return gantry.Spec{
		Image:      c.Image,
		Entrypoint: entrypoint,
		Cmd:        cmd,
		Env:        env,
		WorkingDir: workdir,
		Mounts:     mounts,
	}, nil
}

// portTable holds the startup-probe ports of the attempts that run. On
// Cloud Run each instance has a network of its own; here every task
// shares this host's, so two attempts that probe the same port must not
// run at once (RULES.md, "Containers of a task").
type portTable struct {
	mu      sync.Mutex
	held    map[int]bool
	changed chan struct{} // closed and replaced at each release
}

func newPortTable() *portTable {
	return &portTable{held: map[int]bool{}, changed: make(chan struct{})}
}

// portRecheck is how often a wait for ports that some other process of
// this host listens on looks again.
const portRecheck = 20 * time.Millisecond

// acquire takes every port of ports at once, waiting while another
// attempt holds one, or while some process of this host listens on one,
// until stop closes or ctx ends (false).
func (pt *portTable) acquire(ctx context.Context, stop <-chan struct{}, ports []int) bool {
	if len(ports) == 0 {
		return true
	}
	recheck := time.NewTimer(portRecheck)
	defer recheck.Stop()
	for {
		pt.mu.Lock()
		changed := pt.changed
		free := true
		for _, p := range ports {
			free = free && !pt.held[p]
		}
		if free && portsBindable(ports) {
			for _, p := range ports {
				pt.held[p] = true
			}
			pt.mu.Unlock()
			return true
		}
		pt.mu.Unlock()
		recheck.Reset(portRecheck)
		select {
		case <-changed:
		case <-recheck.C:
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release frees ports taken by acquire.
func (pt *portTable) release(ports []int) {
	if len(ports) == 0 {
		return
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, p := range ports {
		delete(pt.held, p)
	}
	close(pt.changed)
	pt.changed = make(chan struct{})
}

// portsBindable reports whether no process of this host listens on any
// of ports.
func portsBindable(ports []int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
