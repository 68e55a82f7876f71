package gantry

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FieldError is the ErrInvalidArgument a validation returns: it names the
// field (as a Go selector from the Spec, such as "Ports[1].Port") and the
// value it refused.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid argument: %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidArgument }

// MaxDuration is the longest duration a Spec may carry; anything longer is
// taken for a unit mistake (nanoseconds given as seconds, say).
const MaxDuration = 365 * 24 * time.Hour

var (
	// Docker's container name rule (moby daemon/names).
	nameRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
	versionRE = regexp.MustCompile(`^(?:latest|[1-9][0-9]*)$`)
)

// ValidName reports whether name follows Docker's container name rule.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Validate checks the spec as every backend does before any other work.
// The first problem found is returned as a *FieldError, which is an
// ErrInvalidArgument.
func (s *Spec) Validate() error {
	v := validator{}
	if s.Name != "" && !ValidName(s.Name) {
		v.fail("Name", s.Name, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule)")
	}
	if v.err == nil {
		if err := ValidateImage(s.Image); err != nil {
			return err
		}
	}
	v.argv("Entrypoint", s.Entrypoint)
	v.argv("Cmd", s.Cmd)
	envKeys := v.env("Env", s.Env)
	if s.WorkingDir != "" {
		v.absPath("WorkingDir", s.WorkingDir)
	}
	if s.User != "" && !userRE.MatchString(s.User) {
		v.fail("User", s.User, "must be user, uid, user:group or uid:gid")
	}
	for k, val := range s.Labels {
		switch {
		case k == "":
			v.fail("Labels[]", k, "label key is empty")
		case !utf8.ValidString(k) || strings.ContainsAny(k, "\x00\n\r\t "):
			v.fail("Labels["+strconv.Quote(k)+"]", k, "label key must be valid UTF-8 without whitespace or NUL")
		case !utf8.ValidString(val) || strings.ContainsRune(val, 0):
			v.fail("Labels["+k+"]", val, "label value must be valid UTF-8 without NUL")
		}
	}
	v.ports("Ports", s.Ports)
	if s.Healthcheck != nil {
		v.healthcheck(s.Healthcheck)
	}
	v.resources("Resources", s.Resources)
	v.duration("Timeout", s.Timeout, false)
	if s.StopSignal != "" {
		if _, err := ParseSignal(s.StopSignal); err != nil {
			v.fail("StopSignal", s.StopSignal, "unknown signal")
		}
	}
	if s.StopTimeout != nil {
		v.duration("StopTimeout", *s.StopTimeout, true)
	}
	v.mounts(s.Mounts)
	v.secrets(s.Secrets, envKeys)
	v.restartPolicy(s.RestartPolicy)
	sidecarNames := map[string]bool{}
	for i, sc := range s.Sidecars {
		f := fmt.Sprintf("Sidecars[%d]", i)
		switch {
		case !ValidName(sc.Name):
			v.fail(f+".Name", sc.Name, "a sidecar needs a name matching [a-zA-Z0-9][a-zA-Z0-9_.-]+")
		case sidecarNames[sc.Name]:
			v.fail(f+".Name", sc.Name, "two sidecars have this name")
		}
		sidecarNames[sc.Name] = true
		if v.err == nil {
			if err := ValidateImage(sc.Image); err != nil {
				fe := err.(*FieldError)
				fe.Field = f + ".Image"
				v.err = fe
			}
		}
		v.argv(f+".Entrypoint", sc.Entrypoint)
		v.argv(f+".Cmd", sc.Cmd)
		v.env(f+".Env", sc.Env)
		v.ports(f+".Ports", sc.Ports)
		v.resources(f+".Resources", sc.Resources)
	}
	return v.err
}

// Validate checks an exec request as every backend does before running it.
func (c *ExecConfig) Validate() error {
	v := validator{}
	if len(c.Cmd) == 0 || c.Cmd[0] == "" {
		v.fail("Cmd", strings.Join(c.Cmd, " "), "exec needs a command")
	}
	v.argv("Cmd", c.Cmd)
	v.env("Env", c.Env)
	if c.WorkingDir != "" {
		v.absPath("WorkingDir", c.WorkingDir)
	}
	if c.User != "" && !userRE.MatchString(c.User) {
		v.fail("User", c.User, "must be user, uid, user:group or uid:gid")
	}
	if c.Resize != nil && !c.Tty {
		v.fail("Resize", "set", "resizing needs Tty")
	}
	return v.err
}

// ValidateEnv checks KEY=VALUE entries as Spec.Validate does; field names
// the slice in the error.
func ValidateEnv(field string, env []string) error {
	v := validator{}
	v.env(field, env)
	return v.err
}

// validator keeps the first failure, so checks read as a flat list.
type validator struct{ err error }

func (v *validator) fail(field, value, reason string) {
	if v.err == nil {
		v.err = &FieldError{Field: field, Value: value, Reason: reason}
	}
}

func (v *validator) argv(field string, argv []string) {
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			v.fail(fmt.Sprintf("%s[%d]", field, i), a, "contains a NUL byte")
		}
	}
}

func (v *validator) env(field string, env []string) map[string]bool {
	keys := make(map[string]bool, len(env))
	for i, kv := range env {
		f := fmt.Sprintf("%s[%d]", field, i)
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			v.fail(f, kv, "must be KEY=VALUE")
		case !envKeyRE.MatchString(k):
			v.fail(f, kv, "variable name must be letters, digits and _, not starting with a digit")
		case strings.ContainsRune(kv, 0):
			v.fail(f, kv, "contains a NUL byte")
		}
		keys[k] = true
	}
	return keys
}

func (v *validator) absPath(field, p string) {
	if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
		v.fail(field, p, "must be an absolute path")
	}
}

func (v *validator) ports(field string, ports []Port) {
	seen := map[Port]bool{}
	for i, p := range ports {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch p.Protocol {
		case "", "tcp", "udp":
		default:
			v.fail(f+".Protocol", p.Protocol, `must be "tcp" or "udp"`)
		}
		if p.Port < 1 || p.Port > 65535 {
			v.fail(f+".Port", strconv.Itoa(p.Port), "must be 1 to 65535")
		}
		key := Port{Port: p.Port, Protocol: p.Protocol}
		if key.Protocol == "" {
			key.Protocol = "tcp"
		}
		if seen[key] {
			v.fail(f+".Port", strconv.Itoa(p.Port), "listed twice")
		}
		seen[key] = true
	}
}

func (v *validator) duration(field string, d time.Duration, negativeOK bool) {
	switch {
	case d < 0 && !negativeOK:
		v.fail(field, d.String(), "must not be negative")
	case d > MaxDuration:
		v.fail(field, d.String(), "is longer than a year; is the unit right?")
	}
}

func (v *validator) healthcheck(h *Healthcheck) {
	kinds := 0
	for _, set := range []bool{len(h.Test) > 0, h.HTTPPath != "", h.TCPPort != 0} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		v.fail("Healthcheck", fmt.Sprint(kinds), "set exactly one of Test, HTTPPath and TCPPort")
		return
	}
	switch {
	case len(h.Test) == 0:
	case h.Test[0] == "NONE":
		if len(h.Test) != 1 {
			v.fail("Healthcheck.Test", strings.Join(h.Test, " "), "NONE takes no arguments")
		}
	case h.Test[0] == "CMD":
		if len(h.Test) < 2 {
			v.fail("Healthcheck.Test", strings.Join(h.Test, " "), "CMD needs a command")
		}
	case h.Test[0] == "CMD-SHELL":
		if len(h.Test) != 2 {
			v.fail("Healthcheck.Test", strings.Join(h.Test, " "), "CMD-SHELL takes exactly one script")
		}
	default:
		v.fail("Healthcheck.Test[0]", h.Test[0], "must be CMD, CMD-SHELL or NONE")
	}
	if h.HTTPPath != "" && !strings.HasPrefix(h.HTTPPath, "/") {
		v.fail("Healthcheck.HTTPPath", h.HTTPPath, "must start with /")
	}
	if h.TCPPort < 0 || h.TCPPort > 65535 {
		v.fail("Healthcheck.TCPPort", strconv.Itoa(h.TCPPort), "must be 1 to 65535")
	}
	if h.Port < 0 || h.Port > 65535 {
		v.fail("Healthcheck.Port", strconv.Itoa(h.Port), "must be 1 to 65535")
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}} {
		v.duration("Healthcheck."+d.field, d.d, false)
		if d.d > 0 && d.d < time.Millisecond {
			v.fail("Healthcheck."+d.field, d.d.String(), "must be at least 1ms (Docker's minimum)")
		}
	}
	if h.Retries < 0 {
		v.fail("Healthcheck.Retries", strconv.Itoa(h.Retries), "must not be negative")
	}
}

// restartPolicy checks a policy as Docker's daemon does, with its words.
func (v *validator) restartPolicy(p RestartPolicy) {
	switch p.Name {
	case "", RestartNo, RestartOnFailure, RestartAlways, RestartUnlessStopped:
	default:
		v.fail("RestartPolicy.Name", p.Name, "must be no, on-failure, always or unless-stopped")
		return
	}
	switch {
	case p.MaxRetries < 0:
		v.fail("RestartPolicy.MaxRetries", strconv.Itoa(p.MaxRetries), "maximum retry count cannot be negative")
	case p.MaxRetries > 0 && p.Name != RestartOnFailure:
		name := p.Name
		if name == "" {
			name = RestartNo
		}
		v.fail("RestartPolicy.MaxRetries", strconv.Itoa(p.MaxRetries), "maximum retry count cannot be used with restart policy '"+name+"'")
	}
}

// ValidatePort checks a port number given to DialPort or ForwardPort.
func ValidatePort(port int) error {
	if port < 1 || port > 65535 {
		return &FieldError{Field: "port", Value: strconv.Itoa(port), Reason: "must be 1 to 65535"}
	}
	return nil
}

func (v *validator) resources(field string, r Resources) {
	if r.CPU < 0 || math.IsNaN(r.CPU) || math.IsInf(r.CPU, 0) {
		v.fail(field+".CPU", strconv.FormatFloat(r.CPU, 'g', -1, 64), "must be a non-negative number of cores")
	}
	if r.MemoryBytes < 0 {
		v.fail(field+".MemoryBytes", strconv.FormatInt(r.MemoryBytes, 10), "must not be negative")
	} else if r.MemoryBytes > 0 && r.MemoryBytes < 6<<20 {
		v.fail(field+".MemoryBytes", strconv.FormatInt(r.MemoryBytes, 10), "is below Docker's minimum of 6 MiB")
	}
	if r.GPUs < 0 {
		v.fail(field+".GPUs", strconv.Itoa(r.GPUs), "must not be negative")
	}
	if r.GPUType != "" && r.GPUs == 0 {
		v.fail(field+".GPUType", r.GPUType, "is set but GPUs is 0")
	}
}

func (v *validator) mounts(mounts []Mount) {
	targets := map[string]bool{}
	for i, m := range mounts {
		f := fmt.Sprintf("Mounts[%d]", i)
		switch m.Type {
		case MountTmpfs:
			if m.Source != "" {
				v.fail(f+".Source", m.Source, "a tmpfs mount has no source")
			}
		case MountBind:
			v.absPath(f+".Source", m.Source)
		case MountVolume, MountGCS, MountNFS:
			if m.Source == "" {
				v.fail(f+".Source", m.Source, "a "+string(m.Type)+" mount needs a source")
			}
		default:
			v.fail(f+".Type", string(m.Type), "must be tmpfs, bind, volume, gcs or nfs")
		}
		if m.Type == MountNFS && !strings.Contains(m.Source, ":/") {
			v.fail(f+".Source", m.Source, "an NFS source is server:/path")
		}
		if m.SizeBytes < 0 || (m.SizeBytes > 0 && m.Type != MountTmpfs) {
			v.fail(f+".SizeBytes", strconv.FormatInt(m.SizeBytes, 10), "only a tmpfs mount has a size, and it is not negative")
		}
		v.absPath(f+".Target", m.Target)
		if targets[path.Clean(m.Target)] {
			v.fail(f+".Target", m.Target, "two mounts share this target")
		}
		targets[path.Clean(m.Target)] = true
	}
}

func (v *validator) secrets(secrets []Secret, envKeys map[string]bool) {
	for i, s := range secrets {
		f := fmt.Sprintf("Secrets[%d]", i)
		if s.Name == "" {
			v.fail(f+".Name", s.Name, "a secret needs a name")
		}
		if s.Version != "" && !versionRE.MatchString(s.Version) {
			v.fail(f+".Version", s.Version, `must be "latest" or a version number`)
		}
		switch {
		case (s.Env == "") == (s.Path == ""):
			v.fail(f, s.Name, "set exactly one of Env and Path")
		case s.Env != "" && !envKeyRE.MatchString(s.Env):
			v.fail(f+".Env", s.Env, "variable name must be letters, digits and _, not starting with a digit")
		case s.Env != "" && envKeys[s.Env]:
			v.fail(f+".Env", s.Env, "Env already sets this variable")
		case s.Path != "":
			v.absPath(f+".Path", s.Path)
		}
		if s.Env != "" {
			envKeys[s.Env] = true
		}
	}
}
