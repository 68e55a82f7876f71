package meta

import (
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
)

// Sweep is what a backend's Sweep deletes: gantry's resources of a
// session, or older than an age, whichever matches. Backends check it and
// select with it, so the rule is the same on every cloud.
type Sweep struct {
	session   string
	olderThan time.Duration
	now       time.Time // when the sweep began, for olderThan
}

// NewSweep checks a sweep's conditions: at least one must be set, and a
// session must be a label value.
func NewSweep(session string, olderThan time.Duration) (Sweep, error) {
	switch {
	case session == "" && olderThan <= 0:
		return Sweep{}, fmt.Errorf("%w: set Session or a positive OlderThan; sweeping everything is not offered", gantry.ErrInvalidArgument)
	case session != "" && !ValidValue(session):
		return Sweep{}, fmt.Errorf("%w: session %q is not a label value", gantry.ErrInvalidArgument, session)
	}
	return Sweep{session: session, olderThan: olderThan, now: time.Now()}, nil
}

// Selects reports whether a resource of gantry's with these labels,
// created at created, is to be swept.
func (s Sweep) Selects(labels map[string]string, created time.Time) bool {
	bySession := s.session != "" && labels[LabelSession] == s.session
	byAge := s.olderThan > 0 && created.Before(s.now.Add(-s.olderThan))
	return bySession || byAge
}
