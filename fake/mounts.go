package fake

import (
	"cmp"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/gantryhq/gantry"
)

// A host process has no mount namespace of its own, so the fake gives it
// Spec.Mounts by path substitution: for a mount with Target T and host
// directory S, every argument of the command, every value of the spec's
// environment variables and the working directory that is T, or starts
// with T followed by "/", is rewritten to S followed by the rest. Only a
// whole argument's (or value's) prefix is rewritten: "/data/f" becomes
// "S/f", but "--out=/data/f", "a:/data" and a shell script that names
// /data inside it are passed unchanged. Where mounts nest, the longest
// target wins. A bind mount's S is its Source; a tmpfs mount's S is a
// directory the fake makes for each run and removes once the run has
// ended. ReadOnly and SizeBytes are not enforced.

// noteMountsHost is the capability note of mounts on host processes.
const noteMountsHost = "bind and tmpfs mounts by path substitution: an argument, a spec environment value or the working directory that is the target, or begins with the target and \"/\", is rewritten to the host directory (a tmpfs is a fresh directory for each run); paths inside arguments are not, and ReadOnly and SizeBytes are not enforced; volume, gcs and nfs mounts are refused"

// mountPoint maps one container path to a host path.
type mountPoint struct {
	target string // a clean absolute path in the container
	source string // the host path it stands for
}

// mountTable is a container's mounts, longest target first.
type mountTable []mountPoint

// newMountTable orders points so that nested targets take precedence.
func newMountTable(points []mountPoint) mountTable {
	t := mountTable(points)
	slices.SortStableFunc(t, func(a, b mountPoint) int { return cmp.Compare(len(b.target), len(a.target)) })
	return t
}

// path rewrites p when it is a mount's target or lies under one.
func (t mountTable) path(p string) string {
	for _, m := range t {
		switch rest, ok := strings.CutPrefix(p, m.target); {
		case !ok:
		case rest == "":
			return m.source
		case m.target == "/":
			return strings.TrimRight(m.source, "/") + p
		case rest[0] == '/':
			return m.source + rest
		}
	}
	return p
}

// args rewrites each argument of argv.
func (t mountTable) args(argv []string) []string {
	if len(t) == 0 {
		return argv
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = t.path(a)
	}
	return out
}

// envEntry rewrites the value of one KEY=VALUE entry.
func (t mountTable) envEntry(e string) string {
	k, v, ok := strings.Cut(e, "=")
	if !ok || len(t) == 0 {
		return e
	}
	return k + "=" + t.path(v)
}

// processEnv is the environment of a host process of c: containerEnv,
// with the values of the spec's own variables and of extra (an exec's)
// rewritten through t. The fake's base (PATH, HOME, HOSTNAME) describes
// this host and secrets are values, so neither is rewritten. Call with
// rt.mu held.
func (rt *Runtime) processEnv(c *container, t mountTable, extra []string) []string {
	env := rt.containerEnv(c)
	base := len(env) - len(c.spec.Env) - len(c.spec.Secrets)
	for i := base; i < base+len(c.spec.Env); i++ {
		env[i] = t.envEntry(env[i])
	}
	for _, e := range extra {
		env = append(env, t.envEntry(e))
	}
	return env
}

// checkMounts refuses the mounts a Runtime cannot give: every mount in
// Go-function mode, and in host-process mode every kind but bind and
// tmpfs, and a bind mount whose source does not exist (as docker create
// --mount does).
func (rt *Runtime) checkMounts(mounts []gantry.Mount) error {
	for i, m := range mounts {
		field := fmt.Sprintf("Mounts[%d]", i)
		if !rt.host {
			return fmt.Errorf("%s: %w: %s", field, gantry.ErrNotSupported, noteMounts)
		}
		switch m.Type {
		case gantry.MountTmpfs:
		case gantry.MountBind:
			if _, err := os.Stat(m.Source); err != nil {
				return &gantry.FieldError{Field: field + ".Source", Value: m.Source, Reason: "bind source path does not exist"}
			}
		default:
			return fmt.Errorf("%s.Type: %w: %s mounts: %s", field, gantry.ErrNotSupported, m.Type, noteMountsHost)
		}
	}
	return nil
}

// hostMounts makes the mount table of one run: a tmpfs mount gets a new
// directory, returned in made so that the caller removes it when the run
// ends (or fails to start).
func hostMounts(mounts []gantry.Mount) (t mountTable, made []string, err error) {
	points := make([]mountPoint, 0, len(mounts))
	for _, m := range mounts {
		src := m.Source
		if m.Type == gantry.MountTmpfs {
			if src, err = os.MkdirTemp("", "fake-tmpfs-"); err != nil {
				removeAll(made)
				return nil, nil, err
			}
			made = append(made, src)
		}
		points = append(points, mountPoint{target: cleanTarget(m.Target), source: src})
	}
	return newMountTable(points), made, nil
}

// cleanTarget is a target in its clean form, without a trailing slash.
func cleanTarget(p string) string { return path.Clean(p) }

func removeAll(dirs []string) {
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}
