package cloudfunctions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
	"go.uber.org/zap"
)

// SweepOptions selects what Sweep deletes. A function is deleted when it
// matches either condition; at least one must be set.
type SweepOptions struct {
	// Session deletes what the Runtime with this Config.Session created.
	Session string
	// OlderThan deletes gantry's functions created more than this long
	// ago.
	OlderThan time.Duration
}

// Sweep deletes what gantry left behind in the Runtime's project and
// region: functions with gantry's managed-by label that match opts. A
// running command is killed first, so that a waiter on it learns its
// exit status rather than losing the instance. Functions without that
// label are never touched. It returns the IDs of the containers it
// removed, and joins the errors of those it could not.
func (r *Runtime) Sweep(ctx context.Context, opts SweepOptions) (_ []string, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "sweep", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	sweep, err := meta.NewSweep(opts.Session, opts.OlderThan)
	if err != nil {
		return nil, err
	}
	all, err := r.listFunctions(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, f := range all {
		created := timeOf(f.pb)
		if created.IsZero() {
			created = f.rec.Created
		}
		if !sweep.Selects(f.pb.GetLabels(), created) {
			continue
		}
		if err := r.sweepOne(ctx, f); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", f.rec.Name, err))
			continue
		}
		r.log.Info("swept", zap.String("id", f.rec.ID), zap.String("name", f.rec.Name), zap.String("function", f.pb.GetName()))
		removed = append(removed, f.rec.ID)
	}
	return removed, errors.Join(errs...)
}

// sweepOne kills f's running command, if any, and deletes f. A function
// that is not serving (a failed deployment) has no command to kill.
func (r *Runtime) sweepOne(ctx context.Context, f *fn) error {
	if serving(f) == nil {
		st, ok, err := r.latest(ctx, f)
		switch {
		case errors.Is(err, errRemoved):
			return nil
		case err != nil:
			return err
		case ok && st.Running:
			if err := r.stopRun(ctx, f, st.ID, gantry.StopOptions{Signal: "SIGKILL", Timeout: new(time.Duration)}); err != nil {
				return err
			}
		}
	}
	return r.deleteFunction(ctx, f)
}
