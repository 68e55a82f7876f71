package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
)

// idRE is what a container reference can be: an ID or a prefix of one, a
// name, or a name with Docker's leading "/". Anything else is refused
// before it reaches the daemon, since the client builds the request path
// from it.
var idRE = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// resolve looks id up as Docker does (full ID, then name, then unique ID
// prefix; "/name" as "name") and returns the container if gantry made it.
// Every operation on one container starts here, so it acts on the full
// ID the daemon resolved, and never on a container gantry did not make.
func (r *Runtime) resolve(ctx context.Context, id string) (container.InspectResponse, error) {
	var none container.InspectResponse
	if !idRE.MatchString(id) {
		return none, fmt.Errorf("%w: no container has the ID or name %q", gantry.ErrNotFound, id)
	}
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return none, r.closedOr(classify(err, "inspect"))
	}
	c := res.Container
	if c.Config == nil || c.State == nil || c.HostConfig == nil {
		return none, fmt.Errorf("%w: the daemon described container %s without its configuration or state", gantry.ErrUnavailable, id)
	}
	if c.Config.Labels[labelManagedBy] != managedBy {
		return none, fmt.Errorf("%w: container %s was not made by gantry (it has no %s=%s label)", gantry.ErrNotFound, id, labelManagedBy, managedBy)
	}
	return c, nil
}

// Inspect returns the container's current description.
func (r *Runtime) Inspect(ctx context.Context, id string) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, backend, "inspect", id)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	return r.inspect(ctx, id)
}

func (r *Runtime) inspect(ctx context.Context, id string) (*gantry.Container, error) {
	c, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	return describe(c)
}

// describe builds gantry's view of an inspected container.
func describe(c container.InspectResponse) (*gantry.Container, error) {
	rec, err := decodeRecord(c.Config.Labels)
	if err != nil {
		return nil, fmt.Errorf("%w: container %s: %w", gantry.ErrUnavailable, c.ID, err)
	}
	created, err := parseTime(c.Created)
	if err != nil {
		return nil, fmt.Errorf("%w: container %s: Created: %w", gantry.ErrUnavailable, c.ID, err)
	}
	out := &gantry.Container{
		ID:      c.ID,
		Name:    strings.TrimPrefix(c.Name, "/"),
		Image:   rec.Image,
		Created: created,
		// Docker's labels: the spec's, over the image's.
		Labels:       userLabels(c.Config.Labels),
		State:        state(c.State),
		Resource:     c.ID,
		RestartCount: c.RestartCount,
	}
	out.Spec = rec.spec()
	out.Spec.Name = out.Name
	out.Spec.Resources.CPU = float64(c.HostConfig.NanoCPUs) / 1e9
	out.Spec.Resources.MemoryBytes = c.HostConfig.Memory
	out.Spec.RestartPolicy = restartPolicy(c.HostConfig.RestartPolicy, rec.Restart)
	return out, nil
}

// restartPolicy is the container's restart policy: Docker's, which
// docker update can change, named as the spec named it when Docker's
// means the same ("" and "no" both never restart, and a daemon may store
// either).
func restartPolicy(p container.RestartPolicy, given string) gantry.RestartPolicy {
	name := string(p.Name)
	never := func(n string) bool { return n == "" || n == gantry.RestartNo }
	if never(name) && never(given) {
		name = given
	}
	return gantry.RestartPolicy{Name: name, MaxRetries: p.MaximumRetryCount}
}

// state maps Docker's state. Docker keeps no signal, only the exit code,
// which its init sets to 128+N when signal N ended the main process; the
// signal is read back from that (see exitSignal).
func state(s *container.State) gantry.State {
	st := gantry.State{
		Status:   gantry.Status(s.Status),
		Running:  s.Running,
		Paused:   s.Paused,
		ExitCode: s.ExitCode,
		Error:    s.Error,
	}
	st.StartedAt, _ = parseTime(s.StartedAt)
	st.FinishedAt, _ = parseTime(s.FinishedAt)
	if h := s.Health; h != nil && h.Status != container.NoHealthcheck {
		st.Health = &gantry.Health{Status: string(h.Status), FailingStreak: h.FailingStreak}
	}
	if !s.Running && st.Status != gantry.StatusCreated {
		st.Signal = exitSignal(s.ExitCode)
	}
	return st
}

// exitSignal names the signal an exit code of 128+N reports. Docker's init
// exits so when signal N kills the main process, and Docker itself records
// 137 for its own SIGKILL; a process that exits 130 on its own reads the
// same, as it does to a shell.
func exitSignal(code int) string {
	if code <= 128 {
		return ""
	}
	return gantry.SignalName(code - 128)
}

// parseTime reads Docker's RFC 3339 times; Docker's zero time is gantry's
// zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() <= 1 {
		return time.Time{}, nil
	}
	return t, nil
}

// List returns gantry's containers on this daemon that match opts, newest
// first. The daemon lists gantry's containers (and those with the label
// filters of opts); gantry.SelectContainers then applies opts exactly as
// on every backend, once on the list's summaries and once more on the
// inspected survivors, whose creation times are exact to the nanosecond
// (a summary's are whole seconds, too coarse to order by).
func (r *Runtime) List(ctx context.Context, opts gantry.ListOptions) (_ []*gantry.Container, err error) {
	defer gantry.WrapOp(&err, backend, "list", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	filters := client.Filters{}.Add("label", labelManagedBy+"="+managedBy)
	for _, l := range opts.Labels {
		filters.Add("label", l)
	}
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return nil, r.closedOr(classify(err, "list containers"))
	}
	var rough []*gantry.Container
	for _, s := range res.Items {
		if c, ok := summarize(s); ok {
			rough = append(rough, c)
		}
	}
	// The first pass filters only: a limit cut on whole-second times could
	// keep the wrong containers. A limit implies All, so All stands in.
	pre := opts
	if pre.Limit > 0 {
		pre.All, pre.Limit = true, 0
	}
	kept, err := gantry.SelectContainers(pre, rough, nil)
	if err != nil {
		return nil, err
	}
	exact, err := r.inspectAll(ctx, kept)
	if err != nil {
		return nil, r.closedOr(err)
	}
	return gantry.SelectContainers(opts, exact, nil)
}

// summarize makes a container from a list entry, with what filtering needs:
// ID, name, image, labels, status and a creation time to the second. An
// entry without a readable record is left out, as a container made by
// something else that borrowed gantry's label.
func summarize(s container.Summary) (*gantry.Container, bool) {
	rec, err := decodeRecord(s.Labels)
	if err != nil {
		return nil, false
	}
	name := s.ID
	if len(s.Names) > 0 {
		name = strings.TrimPrefix(s.Names[0], "/")
	}
	st := gantry.Status(s.State)
	return &gantry.Container{
		ID:      s.ID,
		Name:    name,
		Image:   rec.Image,
		Created: time.Unix(s.Created, 0),
		Labels:  userLabels(s.Labels),
		State:   gantry.State{Status: st, Running: st == gantry.StatusRunning || st == gantry.StatusPaused || st == gantry.StatusRestarting},
	}, true
}

// listParallel bounds the inspections List runs at once.
const listParallel = 8

// inspectAll inspects the containers, a few at a time. One removed since
// the list was taken is left out, as if the list had been taken later.
func (r *Runtime) inspectAll(ctx context.Context, cs []*gantry.Container) ([]*gantry.Container, error) {
	out := make([]*gantry.Container, len(cs))
	errs := make([]error, len(cs))
	sem := make(chan struct{}, listParallel)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = r.inspect(ctx, c.ID)
		})
	}
	wg.Wait()
	var found []*gantry.Container
	for i, c := range out {
		switch {
		case errs[i] == nil:
			found = append(found, c)
		case !isNotFound(errs[i]):
			return nil, errs[i]
		}
	}
	return found, nil
}

// Top lists the processes of a running container, as docker top does.
func (r *Runtime) Top(ctx context.Context, id string) (_ gantry.TopResult, err error) {
	defer gantry.WrapOp(&err, backend, "top", id)
	if err := r.state.Err(); err != nil {
		return gantry.TopResult{}, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return gantry.TopResult{}, err
	}
	res, err := r.cli.ContainerTop(ctx, c.ID, client.ContainerTopOptions{})
	if err != nil {
		return gantry.TopResult{}, r.closedOr(classify(err, "list processes"))
	}
	return gantry.TopResult{Titles: res.Titles, Processes: res.Processes}, nil
}

// Stats takes one sample of a container's resource usage. A container that
// is not running has none: Docker answers with zeros, which Stats
// returns as they are.
func (r *Runtime) Stats(ctx context.Context, id string) (_ gantry.Stats, err error) {
	defer gantry.WrapOp(&err, backend, "stats", id)
	if err := r.state.Err(); err != nil {
		return gantry.Stats{}, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return gantry.Stats{}, err
	}
	res, err := r.cli.ContainerStats(ctx, c.ID, client.ContainerStatsOptions{})
	if err != nil {
		return gantry.Stats{}, r.closedOr(classify(err, "read stats"))
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return gantry.Stats{}, r.closedOr(classify(err, "decode stats"))
	}
	return gantry.Stats{
		Time:        s.Read,
		CPUTime:     time.Duration(s.CPUStats.CPUUsage.TotalUsage),
		MemoryBytes: int64(memoryInUse(s.MemoryStats)),
		PIDs:        int(s.PidsStats.Current),
	}, nil
}

// memoryInUse is the figure docker stats shows: usage less the inactive
// page cache, which the kernel can reclaim at once (cgroup v1 names it
// total_inactive_file, v2 inactive_file).
func memoryInUse(m container.MemoryStats) uint64 {
	cache, ok := m.Stats["total_inactive_file"]
	if !ok {
		cache = m.Stats["inactive_file"]
	}
	if cache > m.Usage {
		return 0
	}
	return m.Usage - cache
}
