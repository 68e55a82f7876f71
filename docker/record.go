package docker

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
)

// gantry's own labels live under this prefix, apart from the user's, which
// are Docker labels as they are. Inspect and List never show them in
// Container.Labels, and a spec may not use the prefix.
const labelPrefix = "gantryhq.github.io/"

const (
	// labelManagedBy marks every container gantry creates; List and
	// lookups see only those.
	labelManagedBy = labelPrefix + "managed-by"
	managedBy      = "gantry"
	// labelSession holds the creating Runtime's session (WithSession).
	labelSession = labelPrefix + "session"
	// labelRecord holds the record: the spec as it was given, which
	// Docker's own configuration cannot give back (it merges in the
	// image's defaults).
	labelRecord = labelPrefix + "record"
)

// recordVersion is the version of the record this code writes. A reader
// refuses a record newer than it knows, rather than misread it.
const recordVersion = 1

// record is what gantry stores on a container beyond what Docker keeps.
// It has explicit field names of its own, so that renaming a field of
// gantry.Spec does not strand containers made before. The container's
// name and resources are not in it: they can change (Rename, Update), so
// Docker's current values are read instead. The labels are, because
// Docker's merge in the image's own.
type record struct {
	Version     int               `json:"v"`
	Image       string            `json:"image"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Cmd         []string          `json:"cmd,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Env         []string          `json:"env,omitempty"`
	WorkingDir  string            `json:"workdir,omitempty"`
	User        string            `json:"user,omitempty"`
	Ports       []recordPort      `json:"ports,omitempty"`
	Healthcheck *recordHealth     `json:"health,omitempty"`
	Timeout     time.Duration     `json:"timeout,omitempty"`
	StopSignal  string            `json:"stopSignal,omitempty"`
	StopTimeout *time.Duration    `json:"stopTimeout,omitempty"`
	Mounts      []recordMount     `json:"mounts,omitempty"`
	Tty         bool              `json:"tty,omitempty"`
	OpenStdin   bool              `json:"openStdin,omitempty"`
	// Restart is the restart policy's name as given, which tells "" from
	// "no" where the daemon does not; the policy itself is Docker's.
	Restart string `json:"restart,omitempty"`
}

type recordPort struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

type recordHealth struct {
	Test        []string      `json:"test,omitempty"`
	HTTPPath    string        `json:"httpPath,omitempty"`
	TCPPort     int           `json:"tcpPort,omitempty"`
	Port        int           `json:"port,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

type recordMount struct {
	Type      string `json:"type"`
	Source    string `json:"source,omitempty"`
	Target    string `json:"target"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	SizeBytes int64  `json:"size,omitempty"`
}

// newRecord makes the record of spec.
func newRecord(spec *gantry.Spec) record {
	rec := record{
		Version:     recordVersion,
		Image:       spec.Image,
		Entrypoint:  spec.Entrypoint,
		Cmd:         spec.Cmd,
		Labels:      spec.Labels,
		Env:         spec.Env,
		WorkingDir:  spec.WorkingDir,
		User:        spec.User,
		Timeout:     spec.Timeout,
		StopSignal:  spec.StopSignal,
		StopTimeout: spec.StopTimeout,
		Tty:         spec.Tty,
		OpenStdin:   spec.OpenStdin,
		Restart:     spec.RestartPolicy.Name,
	}
	for _, p := range spec.Ports {
		rec.Ports = append(rec.Ports, recordPort(p))
	}
	if h := spec.Healthcheck; h != nil {
		rec.Healthcheck = &recordHealth{
			Test: h.Test, HTTPPath: h.HTTPPath, TCPPort: h.TCPPort, Port: h.Port,
			Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
	}
	for _, m := range spec.Mounts {
		rec.Mounts = append(rec.Mounts, recordMount{
			Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, SizeBytes: m.SizeBytes,
		})
	}
	return rec
}

// spec rebuilds the spec the record was made from, less what Docker keeps
// (name, resources, restart policy), which the caller fills in.
func (rec *record) spec() gantry.Spec {
	s := gantry.Spec{
		Image:       rec.Image,
		Entrypoint:  rec.Entrypoint,
		Cmd:         rec.Cmd,
		Labels:      maps.Clone(rec.Labels),
		Env:         rec.Env,
		WorkingDir:  rec.WorkingDir,
		User:        rec.User,
		Timeout:     rec.Timeout,
		StopSignal:  rec.StopSignal,
		StopTimeout: rec.StopTimeout,
		Tty:         rec.Tty,
		OpenStdin:   rec.OpenStdin,
	}
	for _, p := range rec.Ports {
		s.Ports = append(s.Ports, gantry.Port(p))
	}
	if h := rec.Healthcheck; h != nil {
		s.Healthcheck = &gantry.Healthcheck{
			Test: h.Test, HTTPPath: h.HTTPPath, TCPPort: h.TCPPort, Port: h.Port,
			Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
	}
	for _, m := range rec.Mounts {
		s.Mounts = append(s.Mounts, gantry.Mount{
			Type: gantry.MountType(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, SizeBytes: m.SizeBytes,
		})
	}
	return s
}

// encode returns the record as the value of labelRecord.
func (rec *record) encode() (string, error) {
	b, err := json.Marshal(rec)
	return string(b), err
}

// decodeRecord reads the record from a container's labels.
func decodeRecord(labels map[string]string) (record, error) {
	var rec record
	v, ok := labels[labelRecord]
	if !ok {
		return rec, fmt.Errorf("the container has no %s label", labelRecord)
	}
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return rec, fmt.Errorf("label %s: %w", labelRecord, err)
	}
	if rec.Version < 1 || rec.Version > recordVersion {
		return rec, fmt.Errorf("label %s: record version %d; this gantry reads versions 1 to %d", labelRecord, rec.Version, recordVersion)
	}
	return rec, nil
}

// userLabels returns a container's labels without gantry's own.
func userLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	maps.DeleteFunc(out, func(k, _ string) bool { return strings.HasPrefix(k, labelPrefix) })
	return out
}
