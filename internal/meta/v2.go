package meta

import (
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
)

// recordV2 is version 2 of the stored record, which version 3 extends. Its
// field names are meta's own, written out in tags, so that renaming a
// field of gantry.Spec changes the Go code that converts it and not what
// is stored. A field at its zero value is left out: zero means unset
// throughout gantry.Spec, and an empty list or map is stored as no list or
// map at all (read back as nil), which gantry treats as the same spec.
// Durations are Go duration strings ("1m30s"): exact for every
// time.Duration, readable in the console, and safe from JSON tools that
// read numbers as float64, which cannot hold every nanosecond count.
//
// The envelope (v, id, name, created) is version 1's, so that a reader
// finds the version in the same place in every record.
type recordV2 struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Spec    specV2    `json:"spec"`
}

type specV2 struct {
	Name        string            `json:"name,omitempty"`
	Image       string            `json:"image,omitempty"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Cmd         []string          `json:"cmd,omitempty"`
	Env         []string          `json:"env,omitempty"`
	WorkingDir  string            `json:"workingDir,omitempty"`
	User        string            `json:"user,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Ports       []portV2          `json:"ports,omitempty"`
	Healthcheck *healthcheckV2    `json:"healthcheck,omitempty"`
	Resources   resourcesV2       `json:"resources,omitzero"`
	Timeout     duration          `json:"timeout,omitempty"`
	StopSignal  string            `json:"stopSignal,omitempty"`
	// StopTimeout is a pointer so that an explicit zero ("0s", stop
	// without waiting) stays apart from unset (DefaultStopTimeout).
	StopTimeout *duration   `json:"stopTimeout,omitempty"`
	Mounts      []mountV2   `json:"mounts,omitempty"`
	Secrets     []secretV2  `json:"secrets,omitempty"`
	Tty         bool        `json:"tty,omitempty"`
	OpenStdin   bool        `json:"openStdin,omitempty"`
	Sidecars    []sidecarV2 `json:"sidecars,omitempty"`
}

type portV2 struct {
	Port     int    `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

type healthcheckV2 struct {
	Test        []string `json:"test,omitempty"`
	HTTPPath    string   `json:"httpPath,omitempty"`
	TCPPort     int      `json:"tcpPort,omitempty"`
	Port        int      `json:"port,omitempty"`
	Interval    duration `json:"interval,omitempty"`
	Timeout     duration `json:"timeout,omitempty"`
	StartPeriod duration `json:"startPeriod,omitempty"`
	Retries     int      `json:"retries,omitempty"`
}

type resourcesV2 struct {
	CPU         float64 `json:"cpu,omitempty"`
	MemoryBytes int64   `json:"memoryBytes,omitempty"`
	GPUs        int     `json:"gpus,omitempty"`
	GPUType     string  `json:"gpuType,omitempty"`
}

type mountV2 struct {
	Type      string `json:"type,omitempty"`
	Source    string `json:"source,omitempty"`
	Target    string `json:"target,omitempty"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	SizeBytes int64  `json:"sizeBytes,omitempty"`
}

type secretV2 struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Env     string `json:"env,omitempty"`
	Path    string `json:"path,omitempty"`
}

type sidecarV2 struct {
	Name       string      `json:"name,omitempty"`
	Image      string      `json:"image,omitempty"`
	Entrypoint []string    `json:"entrypoint,omitempty"`
	Cmd        []string    `json:"cmd,omitempty"`
	Env        []string    `json:"env,omitempty"`
	Ports      []portV2    `json:"ports,omitempty"`
	Resources  resourcesV2 `json:"resources,omitzero"`
}

// duration is a time.Duration stored as its String form, which
// time.ParseDuration reads back exactly for every value.
type duration time.Duration

func (d duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = duration(v)
	return nil
}

func readV2(raw string) (Record, error) {
	var r recordV2
	if err := decodeStrict(raw, &r); err != nil {
		return Record{}, err
	}
	return Record{ID: r.ID, Name: r.Name, Created: r.Created, Spec: r.Spec.spec()}, nil
}

func specToV2(s gantry.Spec) specV2 {
	out := specV2{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Labels:     s.Labels,
		Ports:      convert(s.Ports, portToV2),
		Resources:  resourcesToV2(s.Resources),
		Timeout:    duration(s.Timeout),
		StopSignal: s.StopSignal,
		Mounts:     convert(s.Mounts, mountToV2),
		Secrets:    convert(s.Secrets, secretToV2),
		Tty:        s.Tty,
		OpenStdin:  s.OpenStdin,
		Sidecars:   convert(s.Sidecars, sidecarToV2),
	}
	if h := s.Healthcheck; h != nil {
		out.Healthcheck = &healthcheckV2{
			Test:        h.Test,
			HTTPPath:    h.HTTPPath,
			TCPPort:     h.TCPPort,
			Port:        h.Port,
			Interval:    duration(h.Interval),
			Timeout:     duration(h.Timeout),
			StartPeriod: duration(h.StartPeriod),
			Retries:     h.Retries,
		}
	}
	if s.StopTimeout != nil {
		d := duration(*s.StopTimeout)
		out.StopTimeout = &d
	}
	return out
}

func (s specV2) spec() gantry.Spec {
	out := gantry.Spec{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Labels:     s.Labels,
		Ports:      convert(s.Ports, portV2.port),
		Resources:  s.Resources.resources(),
		Timeout:    time.Duration(s.Timeout),
		StopSignal: s.StopSignal,
		Mounts:     convert(s.Mounts, mountV2.mount),
		Secrets:    convert(s.Secrets, secretV2.secret),
		Tty:        s.Tty,
		OpenStdin:  s.OpenStdin,
		Sidecars:   convert(s.Sidecars, sidecarV2.sidecar),
	}
	if h := s.Healthcheck; h != nil {
		out.Healthcheck = &gantry.Healthcheck{
			Test:        h.Test,
			HTTPPath:    h.HTTPPath,
			TCPPort:     h.TCPPort,
			Port:        h.Port,
			Interval:    time.Duration(h.Interval),
			Timeout:     time.Duration(h.Timeout),
			StartPeriod: time.Duration(h.StartPeriod),
			Retries:     h.Retries,
		}
	}
	if s.StopTimeout != nil {
		d := time.Duration(*s.StopTimeout)
		out.StopTimeout = &d
	}
	return out
}

func portToV2(p gantry.Port) portV2 { return portV2{Port: p.Port, Protocol: p.Protocol} }

func (p portV2) port() gantry.Port { return gantry.Port{Port: p.Port, Protocol: p.Protocol} }

func resourcesToV2(r gantry.Resources) resourcesV2 {
	return resourcesV2{CPU: r.CPU, MemoryBytes: r.MemoryBytes, GPUs: r.GPUs, GPUType: r.GPUType}
}

func (r resourcesV2) resources() gantry.Resources {
	return gantry.Resources{CPU: r.CPU, MemoryBytes: r.MemoryBytes, GPUs: r.GPUs, GPUType: r.GPUType}
}

func mountToV2(m gantry.Mount) mountV2 {
	return mountV2{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, SizeBytes: m.SizeBytes}
}

func (m mountV2) mount() gantry.Mount {
	return gantry.Mount{Type: gantry.MountType(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, SizeBytes: m.SizeBytes}
}

func secretToV2(s gantry.Secret) secretV2 {
	return secretV2{Name: s.Name, Version: s.Version, Env: s.Env, Path: s.Path}
}

func (s secretV2) secret() gantry.Secret {
	return gantry.Secret{Name: s.Name, Version: s.Version, Env: s.Env, Path: s.Path}
}

func sidecarToV2(s gantry.Sidecar) sidecarV2 {
	return sidecarV2{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		Ports:      convert(s.Ports, portToV2),
		Resources:  resourcesToV2(s.Resources),
	}
}

func (s sidecarV2) sidecar() gantry.Sidecar {
	return gantry.Sidecar{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		Ports:      convert(s.Ports, portV2.port),
		Resources:  s.Resources.resources(),
	}
}
