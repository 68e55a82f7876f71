package gantry

import (
	"fmt"
	"io"
	"strings"
)

// Level is how far a backend supports a feature.
type Level int

// The support levels.
const (
	// None: the operation returns ErrNotSupported at once, with no side
	// effect; the field is refused by Create.
	None Level = iota
	// Partial: it works with the limits the capability's Note states.
	Partial
	// Full: it behaves as Docker does.
	Full
)

// String returns "none", "partial" or "full".
func (l Level) String() string {
	switch l {
	case None:
		return "none"
	case Partial:
		return "partial"
	case Full:
		return "full"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// With returns a Capability of level l that says note, for the rows of a
// backend's table: gantry.Partial.With("resources are recorded, not
// enforced").
func (l Level) With(note string) Capability { return Capability{Level: l, Note: note} }

// Feature names an operation or a Spec feature in the capability table.
type Feature string

// The features every backend declares. Operations come first, then Spec
// features, in the order of Features.
const (
	FeatureCreate        Feature = "create"
	FeatureStart         Feature = "start"
	FeatureStop          Feature = "stop"
	FeatureKill          Feature = "kill"
	FeatureRemove        Feature = "remove"
	FeatureWait          Feature = "wait"
	FeatureLogs          Feature = "logs"
	FeatureLogsFollow    Feature = "logs-follow"
	FeatureExec          Feature = "exec"
	FeatureExecTTY       Feature = "exec-tty"
	FeatureInspect       Feature = "inspect"
	FeatureList          Feature = "list"
	FeatureRestart       Feature = "restart"
	FeaturePause         Feature = "pause"
	FeatureRename        Feature = "rename"
	FeatureUpdate        Feature = "update"
	FeatureAttach        Feature = "attach"
	FeatureTop           Feature = "top"
	FeatureStats         Feature = "stats"
	FeaturePortForward   Feature = "port-forward"
	FeatureSignals       Feature = "signals"
	FeatureStopTimeout   Feature = "stop-timeout"
	FeaturePorts         Feature = "ports"
	FeatureHealthcheck   Feature = "healthcheck"
	FeatureRestartPolicy Feature = "restart-policy"
	FeatureResources     Feature = "resources"
	FeatureGPU           Feature = "gpu"
	FeatureTimeout       Feature = "timeout"
	FeatureMounts        Feature = "mounts"
	FeatureSecrets       Feature = "secrets"
	FeatureUser          Feature = "user"
	FeatureTty           Feature = "tty"
	FeatureStdin         Feature = "stdin"
	FeatureSidecars      Feature = "sidecars"
)

var featureOrder = []Feature{
	FeatureCreate, FeatureStart, FeatureStop, FeatureKill, FeatureRemove,
	FeatureWait, FeatureLogs, FeatureLogsFollow, FeatureExec, FeatureExecTTY,
	FeatureInspect, FeatureList, FeatureRestart, FeaturePause, FeatureRename,
	FeatureUpdate, FeatureAttach, FeatureTop, FeatureStats, FeaturePortForward,
	FeatureSignals, FeatureStopTimeout, FeaturePorts, FeatureHealthcheck,
	FeatureRestartPolicy, FeatureResources, FeatureGPU, FeatureTimeout,
	FeatureMounts, FeatureSecrets, FeatureUser, FeatureTty, FeatureStdin,
	FeatureSidecars,
}

// Features returns every feature, in table order.
func Features() []Feature { return append([]Feature(nil), featureOrder...) }

// Capability is one row of the table.
type Capability struct {
	Level Level
	// Note says what is missing (for Partial and None) or how the
	// feature is provided, in one line.
	Note string
}

// Capabilities is a backend's table. A feature with no row is None.
type Capabilities map[Feature]Capability

// Level returns f's support level.
func (c Capabilities) Level(f Feature) Level { return c[f].Level }

// Supported reports whether f is supported at all (Partial or Full).
func (c Capabilities) Supported(f Feature) bool { return c[f].Level > None }

// Markdown writes the table as a Markdown table with one row per feature.
func (c Capabilities) Markdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| feature | support | note |\n|---|---|---|\n")
	for _, f := range featureOrder {
		cp := c[f]
		fmt.Fprintf(&b, "| %s | %s | %s |\n", f, cp.Level, strings.ReplaceAll(cp.Note, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
