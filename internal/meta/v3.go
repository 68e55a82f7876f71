package meta

import (
	"time"

	"github.com/gantryhq/gantry"
)

// recordV3 is version 3 of the stored record, the one gantry writes:
// version 2 with the spec's restart policy.
type recordV3 struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Spec    specV3    `json:"spec"`
}

// specV3 is version 2's spec, whose fields encoding/json promotes, and
// the restart policy.
type specV3 struct {
	specV2
	RestartPolicy restartPolicyV3 `json:"restartPolicy,omitzero"`
}

type restartPolicyV3 struct {
	Name       string `json:"name,omitempty"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

func readV3(raw string) (Record, error) {
	var r recordV3
	if err := decodeStrict(raw, &r); err != nil {
		return Record{}, err
	}
	return Record{ID: r.ID, Name: r.Name, Created: r.Created, Spec: r.Spec.spec()}, nil
}

// toV3 is the writer while version 3 is recordVersion; a later version's
// writer replaces it, and readV3 stays.
func toV3(r Record) recordV3 {
	return recordV3{V: recordVersion, ID: r.ID, Name: r.Name, Created: r.Created.UTC(), Spec: specToV3(r.Spec)}
}

func specToV3(s gantry.Spec) specV3 {
	return specV3{
		specV2:        specToV2(s),
		RestartPolicy: restartPolicyV3{Name: s.RestartPolicy.Name, MaxRetries: s.RestartPolicy.MaxRetries},
	}
}

func (s specV3) spec() gantry.Spec {
	out := s.specV2.spec()
	out.RestartPolicy = gantry.RestartPolicy{Name: s.RestartPolicy.Name, MaxRetries: s.RestartPolicy.MaxRetries}
	return out
}
