package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/meta"
)

// findInstance returns the instance of container j in s, or false when
// it is gone (or now belongs to another container of the same name).
func (s snapshot) findInstance(j *job) (*runpb.Instance, bool) {
	pb, ok := s.instances[j.id()]
	if !ok || pb.GetLabels()[meta.LabelID] != j.in.GetLabels()[meta.LabelID] {
		return nil, false
	}
	return pb, true
}

// waitInstanceStopped blocks until the instance of j has stopped and
// returns it as it is then; errVanished if it is deleted first.
func (r *Runtime) waitInstanceStopped(ctx context.Context, j *job) (*runpb.Instance, error) {
	var done *runpb.Instance
	err := r.watch(ctx, func(s snapshot) (bool, error) {
		pb, ok := s.findInstance(j)
		if !ok {
			return true, nil
		}
		if !instanceUp(pb) {
			done = pb
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if done == nil {
		return nil, errVanished
	}
	return done, nil
}

// instanceStatus is the exit status a stopped instance's record gives.
func (r *Runtime) instanceStatus(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	ex, err := r.exitRecord(ctx, j)
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	return gantry.ExitStatus{ExitCode: ex.state.ExitCode, Signal: ex.state.Signal, Error: ex.state.Error}, nil
}

// registerInstanceWait is registerWait for an instance: what the wait
// looks for is fixed now, from the instance and its agent.
func (r *Runtime) registerInstanceWait(ctx context.Context, j *job, cond gantry.WaitCondition) (func(context.Context) (gantry.ExitStatus, error), error) {
	// last is how the last run ended, and base the agent's state now.
	var last gantry.ExitStatus
	var base agent.Status
	up := instanceUp(j.in)
	if up {
		st, err := r.agentStatus(ctx, j)
		switch {
		case err == nil:
			base = st
			last = gantry.ExitStatus{ExitCode: st.ExitCode, Signal: st.Signal}
		case errors.Is(err, gantry.ErrConflict), errors.Is(err, errAgentGone):
			base.State = agent.StateExited
		default:
			return nil, err
		}
	} else {
		st, err := r.instanceStatus(ctx, j)
		if err != nil {
			return nil, err
		}
		last = st
	}
	stopped := func(ctx context.Context) (gantry.ExitStatus, error) {
		pb, err := r.waitInstanceStopped(ctx, j)
		if err != nil {
			return gantry.ExitStatus{}, err
		}
		return r.instanceStatus(ctx, &job{in: pb, rec: j.rec})
	}
	switch cond {
	case gantry.WaitRemoved:
		return func(ctx context.Context) (gantry.ExitStatus, error) {
			st := last
			if up && base.State != agent.StateCreated {
				var err error
				st, err = stopped(ctx)
				if errors.Is(err, errVanished) {
					return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "removed while running"}, nil
				}
				if err != nil {
					return st, err
				}
			}
			err := r.watch(ctx, func(s snapshot) (bool, error) {
				_, ok := s.findInstance(j)
				return !ok, nil
			})
			return st, err
		}, nil
	case gantry.WaitNextExit:
		return func(ctx context.Context) (gantry.ExitStatus, error) {
			return r.waitInstanceNextExit(ctx, j, base, last)
		}, nil
	}
	return func(ctx context.Context) (gantry.ExitStatus, error) {
		if !up || base.State == agent.StateCreated {
			return last, nil
		}
		st, err := stopped(ctx)
		if errors.Is(err, errVanished) {
			return st, fmt.Errorf("%w: the container was removed while it ran", gantry.ErrNotFound)
		}
		return st, err
	}, nil
}

// waitInstanceNextExit returns at the main process's next exit: one the
// agent reports (a run its restart policy restarts, or the last), or the
// instance's stop. Removal first returns last, as moby's does.
func (r *Runtime) waitInstanceNextExit(ctx context.Context, j *job, base agent.Status, last gantry.ExitStatus) (gantry.ExitStatus, error) {
	var done *gantry.ExitStatus
	var stoppedPB *runpb.Instance
	removed := false
	// ran: the main process ran since the call (or was running then).
	ran := instanceUp(j.in) && (base.State == agent.StateRunning || base.State == agent.StateRestarting || base.State == agent.StateExited)
	began := startedAt(j.in)
	createdAtCall := instanceUp(j.in) && base.State == agent.StateCreated
	// checked: a stopped instance whose record says its command never
	// ran, which a later start replaces.
	var checked *runpb.Instance
	var err error
	for {
		err = r.watch(ctx, func(s snapshot) (bool, error) {
			pb, ok := s.findInstance(j)
			if !ok {
				removed = true
				return true, nil
			}
			if !instanceUp(pb) {
				// A stop ends the wait once the command has run: it was
				// running at the call, the instance started again since,
				// or (from created) its record says it ran.
				switch {
				case ran || startedAt(pb).After(began):
				case !createdAtCall, checked != nil && startedAt(pb).Equal(startedAt(checked)):
					return false, nil
				}
				stoppedPB = pb
				return true, nil
			}
			st, err := r.agentStatus(ctx, &job{in: pb, rec: j.rec})
			switch {
			case errors.Is(err, errAgentGone):
				ran = true
				return false, nil
			case err != nil, st.State == agent.StateCreated:
				return false, nil
			}
			ran = true
			if !st.FinishedAt.IsZero() && st.FinishedAt.After(base.FinishedAt) {
				done = &gantry.ExitStatus{ExitCode: st.ExitCode, Signal: st.Signal}
				return true, nil
			}
			return false, nil
		})
		if err != nil || stoppedPB == nil || ran || startedAt(stoppedPB).After(began) {
			break
		}
		ex, rerr := r.exitRecord(ctx, &job{in: stoppedPB, rec: j.rec})
		if rerr != nil {
			return gantry.ExitStatus{}, rerr
		}
		if !ex.never {
			return gantry.ExitStatus{ExitCode: ex.state.ExitCode, Signal: ex.state.Signal, Error: ex.state.Error}, nil
		}
		checked, stoppedPB = stoppedPB, nil
	}
	switch {
	case err != nil:
		return gantry.ExitStatus{}, err
	case removed && ran:
		return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "removed while running"}, nil
	case removed:
		return last, nil
	case done != nil:
		return *done, nil
	}
	return r.instanceStatus(ctx, &job{in: stoppedPB, rec: j.rec})
}

// instanceLogs opens the instance's output in Cloud Logging, as gcloud
// reads an instance's logs: resource type cloud_run_instance, by its
// name and location, without the agent's records. Following ends
// LogGrace after the instance stopped.
func (r *Runtime) instanceLogs(ctx context.Context, id string, j *job, opts gantry.LogsOptions) (gantry.LogReader, error) {
	var f cloudlog.Filter
	f.Eq("resource.type", "cloud_run_instance").
		Eq("resource.labels.instance_name", j.id()).
		Eq("resource.labels.location", r.cfg.Region).
		Raw("NOT " + cloudlog.Label("labels", recordLabel) + `="exit"`)
	notBefore := timeOf(j.in.GetCreateTime())
	if notBefore.IsZero() {
		notBefore = j.rec.Created
	}
	var ended time.Time
	if !instanceUp(j.in) {
		ended = stoppedTime(j.in)
	}
	instanceID := j.id()
	return cloudlog.Open(ctx, cloudlog.Source{
		Client:    r.logs,
		Project:   r.cfg.Project,
		Filter:    &f,
		StdoutLog: stdoutLog,
		StderrLog: stderrLog,
		NotBefore: notBefore,
		Stopped: func(ctx context.Context) (time.Time, error) {
			if !instanceUp(j.in) {
				return stoppedTime(j.in), nil
			}
			pb, err := r.waitInstanceStopped(ctx, j)
			if errors.Is(err, errVanished) {
				return time.Now(), nil
			}
			if err != nil {
				return time.Time{}, err
			}
			return stoppedTime(pb), nil
		},
		Ended:    ended,
		Grace:    r.cfg.LogGrace,
		Settle:   r.cfg.PollInterval,
		Describe: fmt.Sprintf("cloudrun: logs %q", id),
		Tail:     r.tail,
		Match: func(e *loggingpb.LogEntry) bool {
			return e.GetResource().GetType() == "cloud_run_instance" && e.GetResource().GetLabels()["instance_name"] == instanceID && e.GetLabels()[recordLabel] != "exit"
		},
	}, opts)
}
