package meta

import (
	"time"

	"github.com/gantryhq/gantry"
)

// recordV1 is version 1 of the stored record, which gantry wrote before
// version 2: gantry.Spec as encoding/json marshalled it then, so with the
// Go field names of that time, no field left out, and durations as integer
// nanoseconds. The shape is copied here, tags and all, so that it no longer
// moves with gantry.Spec; gantry only reads it now, and nothing in it may
// change, or containers created by those releases become unreadable.
type recordV1 struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Spec    specV1    `json:"spec"`
}

type specV1 struct {
	Name        string            `json:"Name"`
	Image       string            `json:"Image"`
	Entrypoint  []string          `json:"Entrypoint"`
	Cmd         []string          `json:"Cmd"`
	Env         []string          `json:"Env"`
	WorkingDir  string            `json:"WorkingDir"`
	User        string            `json:"User"`
	Labels      map[string]string `json:"Labels"`
	Ports       []portV1          `json:"Ports"`
	Healthcheck *healthcheckV1    `json:"Healthcheck"`
	Resources   resourcesV1       `json:"Resources"`
	Timeout     int64             `json:"Timeout"`
	StopSignal  string            `json:"StopSignal"`
	StopTimeout *int64            `json:"StopTimeout"`
	Mounts      []mountV1         `json:"Mounts"`
	Secrets     []secretV1        `json:"Secrets"`
	Tty         bool              `json:"Tty"`
	OpenStdin   bool              `json:"OpenStdin"`
	Sidecars    []sidecarV1       `json:"Sidecars"`
}

type portV1 struct {
	Port     int    `json:"Port"`
	Protocol string `json:"Protocol"`
}

type healthcheckV1 struct {
	Test        []string `json:"Test"`
	HTTPPath    string   `json:"HTTPPath"`
	TCPPort     int      `json:"TCPPort"`
	Port        int      `json:"Port"`
	Interval    int64    `json:"Interval"`
	Timeout     int64    `json:"Timeout"`
	StartPeriod int64    `json:"StartPeriod"`
	Retries     int      `json:"Retries"`
}

type resourcesV1 struct {
	CPU         float64 `json:"CPU"`
	MemoryBytes int64   `json:"MemoryBytes"`
	GPUs        int     `json:"GPUs"`
	GPUType     string  `json:"GPUType"`
}

type mountV1 struct {
	Type      string `json:"Type"`
	Source    string `json:"Source"`
	Target    string `json:"Target"`
	ReadOnly  bool   `json:"ReadOnly"`
	SizeBytes int64  `json:"SizeBytes"`
}

type secretV1 struct {
	Name    string `json:"Name"`
	Version string `json:"Version"`
	Env     string `json:"Env"`
	Path    string `json:"Path"`
}

type sidecarV1 struct {
	Name       string      `json:"Name"`
	Image      string      `json:"Image"`
	Entrypoint []string    `json:"Entrypoint"`
	Cmd        []string    `json:"Cmd"`
	Env        []string    `json:"Env"`
	Ports      []portV1    `json:"Ports"`
	Resources  resourcesV1 `json:"Resources"`
}

func readV1(raw string) (Record, error) {
	var r recordV1
	if err := decodeStrict(raw, &r); err != nil {
		return Record{}, err
	}
	return Record{ID: r.ID, Name: r.Name, Created: r.Created, Spec: r.Spec.spec()}, nil
}

func (s specV1) spec() gantry.Spec {
	out := gantry.Spec{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Labels:     s.Labels,
		Ports:      convert(s.Ports, portV1.port),
		Resources:  s.Resources.resources(),
		Timeout:    time.Duration(s.Timeout),
		StopSignal: s.StopSignal,
		Mounts:     convert(s.Mounts, mountV1.mount),
		Secrets:    convert(s.Secrets, secretV1.secret),
		Tty:        s.Tty,
		OpenStdin:  s.OpenStdin,
		Sidecars:   convert(s.Sidecars, sidecarV1.sidecar),
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

func (p portV1) port() gantry.Port { return gantry.Port{Port: p.Port, Protocol: p.Protocol} }

func (r resourcesV1) resources() gantry.Resources {
	return gantry.Resources{CPU: r.CPU, MemoryBytes: r.MemoryBytes, GPUs: r.GPUs, GPUType: r.GPUType}
}

func (m mountV1) mount() gantry.Mount {
	return gantry.Mount{Type: gantry.MountType(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, SizeBytes: m.SizeBytes}
}

func (s secretV1) secret() gantry.Secret {
	return gantry.Secret{Name: s.Name, Version: s.Version, Env: s.Env, Path: s.Path}
}

func (s sidecarV1) sidecar() gantry.Sidecar {
	return gantry.Sidecar{
		Name:       s.Name,
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		Ports:      convert(s.Ports, portV1.port),
		Resources:  s.Resources.resources(),
	}
}
