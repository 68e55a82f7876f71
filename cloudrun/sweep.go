package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
	"go.uber.org/zap"
)

// SweepOptions selects what Sweep deletes. A job or instance is deleted
// when it matches either condition; at least one must be set.
type SweepOptions struct {
	// Session deletes what the Runtime with this Config.Session created.
	Session string
	// OlderThan deletes gantry's jobs created more than this long ago.
	OlderThan time.Duration
}

// Sweep deletes what gantry left behind in the Runtime's project and
// region: jobs and instances with gantry's managed-by label that match
// opts (running executions are cancelled first; Cloud Run stops an
// instance as it deletes it). Nothing without that label is ever
// touched. It returns the IDs of the containers it removed, and joins the
// errors of those it could not.
func (r *Runtime) Sweep(ctx context.Context, opts SweepOptions) (_ []string, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "sweep", "")
	sweep, err := meta.NewSweep(opts.Session, opts.OlderThan)
	if err != nil {
		return nil, err
	}
	all, err := r.listAll(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, j := range all {
		if j.in != nil {
			created := timeOf(j.in.GetCreateTime())
			if created.IsZero() {
				created = j.rec.Created
			}
			if !sweep.Selects(j.in.GetLabels(), created) {
				continue
			}
			if err := r.deleteInstance(ctx, j); err != nil {
				errs = append(errs, fmt.Errorf("container %s: %w", j.rec.Name, err))
				continue
			}
			r.log.Info("swept", zap.String("id", j.rec.ID), zap.String("name", j.rec.Name), zap.String("instance", j.in.GetName()))
			removed = append(removed, j.rec.ID)
			continue
		}
		created := timeOf(j.pb.GetCreateTime())
		if created.IsZero() {
			created = j.rec.Created
		}
		if !sweep.Selects(j.pb.GetLabels(), created) {
			continue
		}
		if j.running() {
			if err := r.cancel(ctx, j, j.latest().GetName()); err != nil {
				errs = append(errs, fmt.Errorf("container %s: %w", j.rec.Name, err))
				continue
			}
		}
		if err := r.deleteJob(ctx, j); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", j.rec.Name, err))
			continue
		}
		r.log.Info("swept", zap.String("id", j.rec.ID), zap.String("name", j.rec.Name), zap.String("job", j.pb.GetName()))
		removed = append(removed, j.rec.ID)
	}
	return removed, errors.Join(errs...)
}
