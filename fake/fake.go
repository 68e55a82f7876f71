package fake

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
)

// DefaultLogLimit is the memory a container's kept logs may use when
// WithLogLimit is not given.
const DefaultLogLimit = 16 << 20

// Runtime is an in-memory gantry.Runtime. It implements every optional
// interface of package gantry. Make one with New and Close it when done.
type Runtime struct {
	host         bool
	logLimit     int
	secrets      map[string]string
	restartDelay time.Duration

	mu         sync.Mutex
	images     map[string]Image
	containers map[string]*container // by full ID
	names      map[string]*container
	seq        uint64
	closed     bool
	done       chan struct{} // closed by Close

	state gantry.CloseState

	// wg counts every goroutine the runtime starts (runs, output readers,
	// execs, timeouts). Add is only called under mu while !closed, so it
	// never races with Close's Wait.
	wg sync.WaitGroup
}

// Option configures New.
type Option func(*Runtime)

// WithHostProcesses runs each container's Entrypoint followed by Cmd as a
// process of this host (os/exec) in its own process group, instead of an
// image's Go function. Images are then ignored: any valid reference is
// accepted, and a spec without a command is refused. Bind and tmpfs
// mounts are given by path substitution (see Spec.Mounts in the package
// documentation).
func WithHostProcesses() Option { return func(rt *Runtime) { rt.host = true } }

// WithImage registers img under ref, as RegisterImage does.
func WithImage(ref string, img Image) Option {
	return func(rt *Runtime) { rt.images[imageKey(ref)] = img }
}

// WithLogLimit bounds the memory each container's kept logs use, in bytes
// (line text plus a fixed overhead per line). When a new line would pass
// the bound, the oldest lines are dropped. The default is DefaultLogLimit.
func WithLogLimit(bytes int) Option {
	return func(rt *Runtime) {
		if bytes > 0 {
			rt.logLimit = bytes
		}
	}
}

// WithSecret gives the secret called name the value value, for specs whose
// Secrets name it. Secrets exposed as environment variables receive it;
// secrets exposed as files are refused, as the fake has no file system of
// its own. A spec naming a secret nobody gave is an ErrNotFound at Create.
func WithSecret(name, value string) Option {
	return func(rt *Runtime) { rt.secrets[name] = value }
}

// New returns an empty Runtime.
func New(opts ...Option) *Runtime {
	rt := &Runtime{
		logLimit:     DefaultLogLimit,
		restartDelay: DefaultRestartDelay,
		secrets:      map[string]string{},
		images:       map[string]Image{},
		containers:   map[string]*container{},
		names:        map[string]*container{},
		done:         make(chan struct{}),
	}
	for _, o := range opts {
		o(rt)
	}
	return rt
}

// RegisterImage makes ref available to Create in Go-function mode. A
// reference without a tag or digest means its ":latest".
func (rt *Runtime) RegisterImage(ref string, img Image) {
	rt.mu.Lock()
	rt.images[imageKey(ref)] = img
	rt.mu.Unlock()
}

// imageKey normalises a reference as Docker does, so that "busybox",
// "busybox:latest" and "docker.io/library/busybox:latest" register and
// find one image. A reference that does not parse is kept as it is: Create
// refuses it before looking it up.
func imageKey(ref string) string {
	if n, err := gantry.NormalizeImage(ref); err == nil {
		return n
	}
	return ref
}

// container is one container. Everything but id, seq, created, image and
// logs is guarded by Runtime.mu.
type container struct {
	id      string
	seq     uint64
	created time.Time
	image   Image
	logs    logBuffer

	name        string
	spec        gantry.Spec
	state       gantry.State
	removing    bool // a Remove is under way, as moby's RemovalInProgress
	removed     bool
	run         *run
	exitWait    *waitPoint // woken at the next exit or at removal
	removedWait *waitPoint // woken at removal

	health       *gantry.Health  // nil without a healthcheck, or before the first start
	restartCount int             // restarts by the restart policy since the last Start
	manualStop   bool            // Stop, Kill or a timeout ended the run: no restart
	pending      *pendingRestart // the restart policy's next restart, while it waits
	backoff      time.Duration   // the delay of the latest restart
}

// waitPoint is a one-shot broadcast carrying the status it was woken with.
type waitPoint struct {
	ch     chan struct{}
	status gantry.ExitStatus
}

func (c *container) exitStatus() gantry.ExitStatus {
	return gantry.ExitStatus{ExitCode: c.state.ExitCode, Signal: c.state.Signal, Error: c.state.Error}
}

// lookup finds a container as Docker does: full ID, then exact name, then
// unique ID prefix. Call with rt.mu held.
func (rt *Runtime) lookup(id string) (*container, error) {
	if rt.closed {
		return nil, gantry.ErrClosed
	}
	if c, ok := rt.containers[id]; ok {
		return c, nil
	}
	if c, ok := rt.names[id]; ok {
		return c, nil
	}
	// Docker's names carry a leading slash, which lookups accept.
	if name, ok := strings.CutPrefix(id, "/"); ok && gantry.ValidName(name) {
		if c, ok := rt.names[name]; ok {
			return c, nil
		}
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty container ID or name", gantry.ErrInvalidArgument)
	}
	var found *container
	for full, c := range rt.containers {
		if strings.HasPrefix(full, id) {
			if found != nil {
				return nil, fmt.Errorf("%w: ID prefix matches more than one container", gantry.ErrInvalidArgument)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no such container: %s", gantry.ErrNotFound, id)
	}
	return found, nil
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create makes a container from spec, after validating it. In Go-function
// mode the image must have been registered; in host-process mode the spec
// must name a command.
func (rt *Runtime) Create(ctx context.Context, spec gantry.Spec) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "fake", "create", "")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := rt.checkSupported(&spec); err != nil {
		return nil, err
	}
	if rt.host && len(spec.Entrypoint)+len(spec.Cmd) == 0 {
		return nil, &gantry.FieldError{Field: "Cmd", Value: "", Reason: "no command specified"}
	}
	c := &container{id: newID(), spec: cloneSpec(spec), created: time.Now()}
	c.logs.limit = rt.logLimit
	c.state.Status = gantry.StatusCreated

	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, gantry.ErrClosed
	}
	if !rt.host {
		img, ok := rt.images[imageKey(spec.Image)]
		if !ok {
			return nil, fmt.Errorf("%w: no such image: %s (register it with RegisterImage or WithImage, or make the Runtime with WithHostProcesses to run commands on this host)", gantry.ErrNotFound, spec.Image)
		}
		c.image = img
	}
	for i, s := range spec.Secrets {
		if _, ok := rt.secrets[s.Name]; !ok {
			return nil, fmt.Errorf("%w: Secrets[%d] names no such secret: %s (give it with WithSecret)", gantry.ErrNotFound, i, s.Name)
		}
	}
	name := spec.Name
	if name == "" {
		name = rt.generateName()
	} else if other, taken := rt.names[name]; taken {
		return nil, fmt.Errorf("%w: the container name %q is already in use by container %s", gantry.ErrConflict, name, other.id)
	}
	c.name = name
	c.spec.Name = name
	rt.seq++
	c.seq = rt.seq
	rt.containers[c.id] = c
	rt.names[name] = c
	return c.snapshot(), nil
}

// checkSupported refuses the Spec features the capability table declares
// None, before anything is created.
func (rt *Runtime) checkSupported(spec *gantry.Spec) error {
	refuse := func(field, why string) error {
		return fmt.Errorf("%s: %w: %s", field, gantry.ErrNotSupported, why)
	}
	if err := rt.checkMounts(spec.Mounts); err != nil {
		return err
	}
	switch {
	case len(spec.Sidecars) > 0:
		return refuse("Sidecars", noteSidecars)
	case spec.Resources.GPUs > 0:
		return refuse("Resources.GPUs", noteGPU)
	}
	if h := spec.Healthcheck; h != nil && h.HTTPPath != "" && httpProbePort(spec) == 0 {
		return &gantry.FieldError{Field: "Healthcheck.Port", Value: "0", Reason: "an HTTPPath probe needs Port, or a TCP port in Spec.Ports"}
	}
	for i, s := range spec.Secrets {
		if s.Path != "" {
			return refuse(fmt.Sprintf("Secrets[%d].Path", i), "secrets are given only as environment variables: the fake has no file system of its own")
		}
	}
	return nil
}

// snapshot returns the container's description. Call with rt.mu held.
func (c *container) snapshot() *gantry.Container {
	spec := cloneSpec(c.spec)
	st := c.state
	if c.health != nil {
		h := *c.health
		st.Health = &h
	}
	return &gantry.Container{
		ID:           c.id,
		Name:         c.name,
		Image:        c.spec.Image,
		Created:      c.created,
		Spec:         spec,
		Labels:       spec.Labels,
		State:        st,
		Resource:     "fake/containers/" + c.id,
		RestartCount: c.restartCount,
	}
}

// cloneSpec copies the parts of a Spec a caller could change under us.
func cloneSpec(s gantry.Spec) gantry.Spec {
	s.Entrypoint = slices.Clone(s.Entrypoint)
	s.Cmd = slices.Clone(s.Cmd)
	s.Env = slices.Clone(s.Env)
	s.Labels = maps.Clone(s.Labels)
	s.Ports = slices.Clone(s.Ports)
	if s.Healthcheck != nil {
		h := *s.Healthcheck
		h.Test = slices.Clone(h.Test)
		s.Healthcheck = &h
	}
	if s.StopTimeout != nil {
		d := *s.StopTimeout
		s.StopTimeout = &d
	}
	s.Mounts = slices.Clone(s.Mounts)
	s.Secrets = slices.Clone(s.Secrets)
	s.Sidecars = slices.Clone(s.Sidecars)
	return s
}

// Inspect returns the container's current description.
func (rt *Runtime) Inspect(ctx context.Context, id string) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "fake", "inspect", id)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return nil, err
	}
	return c.snapshot(), nil
}

// List returns the containers that match opts, newest first. Without All,
// Status or Limit it lists running (and paused) containers only, as docker
// ps does; a positive Limit includes every state, as docker ps -n.
func (rt *Runtime) List(ctx context.Context, opts gantry.ListOptions) (_ []*gantry.Container, err error) {
	defer gantry.WrapOp(&err, "fake", "list", "")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil, gantry.ErrClosed
	}
	all := make([]*container, 0, len(rt.containers))
	for _, c := range rt.containers {
		all = append(all, c)
	}
	// Creation order breaks ties between equal creation times.
	slices.SortFunc(all, func(a, b *container) int { return cmp.Compare(b.seq, a.seq) })
	snaps := make([]*gantry.Container, len(all))
	for i, c := range all {
		snaps[i] = c.snapshot()
	}
	rt.mu.Unlock()
	return gantry.SelectContainers(opts, snaps, nil)
}

// Remove deletes the container and its logs. A running or paused
// container is an ErrConflict unless opts.Force, which kills it first.
// While a forced removal waits for the container to die, the container is
// marked for removal, as moby's RemovalInProgress: a second Remove, Start,
// Restart and Logs are ErrConflict, and once it has stopped its status is
// "removing". The removal does not depend on ctx, as moby's does not on
// the request: when ctx ends first, Remove returns ctx's error and the
// container is removed as soon as it has died.
func (rt *Runtime) Remove(ctx context.Context, id string, opts gantry.RemoveOptions) (err error) {
	defer gantry.WrapOp(&err, "fake", "remove", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	switch {
	case err != nil:
		rt.mu.Unlock()
		return err
	case c.removing:
		rt.mu.Unlock()
		return fmt.Errorf("%w: removal of container %s is already in progress", gantry.ErrConflict, c.id)
	case c.pending != nil && !opts.Force:
		rt.mu.Unlock()
		return fmt.Errorf("%w: cannot remove a restarting container: stop it first, or use Force", gantry.ErrConflict)
	case c.run == nil:
		cancelRestart(c)
		rt.delete(c)
		rt.mu.Unlock()
		return nil
	case !opts.Force && c.run.paused:
		rt.mu.Unlock()
		return fmt.Errorf("%w: cannot remove a paused container: unpause and then stop it, or use Force", gantry.ErrConflict)
	case !opts.Force:
		rt.mu.Unlock()
		return fmt.Errorf("%w: cannot remove a running container: stop it first, or use Force", gantry.ErrConflict)
	}
	c.removing = true
	r := c.run
	rt.signal(r, sigKILL)
	removed := make(chan struct{})
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		<-r.done
		rt.mu.Lock()
		rt.delete(c)
		rt.mu.Unlock()
		close(removed)
	}()
	rt.mu.Unlock()
	select {
	case <-removed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// delete forgets c, which is not running, and wakes its waiters. Call
// with rt.mu held.
func (rt *Runtime) delete(c *container) {
	c.removed = true
	c.state.Status = gantry.StatusRemoving
	delete(rt.containers, c.id)
	delete(rt.names, c.name)
	status := c.exitStatus()
	for _, w := range []*waitPoint{c.exitWait, c.removedWait} {
		if w != nil {
			w.status = status
			close(w.ch)
		}
	}
	c.exitWait, c.removedWait = nil, nil
	c.logs.remove()
}

// Close runs the functions given to BeforeClose, then kills every running
// container with SIGKILL and waits until all the goroutines and processes
// it started have ended. Afterwards every method returns gantry.ErrClosed
// at once; a second Close returns nil.
//
// A Go image that ignores its context after SIGKILL keeps Close waiting:
// the fake cannot stop a goroutine from outside.
func (rt *Runtime) Close() error {
	return rt.state.Close(func() error {
		rt.mu.Lock()
		rt.closed = true
		close(rt.done)
		for _, c := range rt.containers {
			if c.run != nil {
				rt.signal(c.run, sigKILL)
			}
		}
		rt.mu.Unlock()
		rt.wg.Wait()
		return nil
	})
}

// BeforeClose arranges for f to run at the start of Close, while the
// Runtime still works (see gantry.BeforeCloser).
func (rt *Runtime) BeforeClose(f func()) (stop func() bool, err error) {
	return rt.state.BeforeClose(f)
}
