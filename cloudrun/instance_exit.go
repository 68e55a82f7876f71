package cloudrun

import (
	"context"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/protobuf/encoding/protojson"
)

// instanceExit is how a stopped instance's last run ended, from the
// agent's record: Cloud Run reports no exit code for an instance.
type instanceExit struct {
	state    gantry.State
	restarts int
	// never: the agent never ran the command (the container was created
	// and its instance stopped before Start).
	never bool
}

// clockSlack is how far the agent's clock and Cloud Run's may differ
// when a record is matched to the start it ends.
const clockSlack = time.Second

// exitRecord returns how the stopped instance's last run ended: the
// agent's signed record of it in Cloud Logging (the newest on its stderr
// that began after the instance's containers last started). Cloud
// Logging ingests seconds late, so it looks again, backing off, until
// LogGrace after the stop; a record that is not in by then reads as a
// run killed without one (137, with an error that says so). Results are
// cached: a stopped run never changes.
func (r *Runtime) exitRecord(ctx context.Context, j *job) (instanceExit, error) {
	began, stopped := startedAt(j.in), stoppedTime(j.in)
	key := j.in.GetName() + "@" + began.Format(time.RFC3339Nano)
	if ex, ok := r.instanceExits.get(key); ok {
		return ex, nil
	}
	secret, _ := hasAgent(j)
	f := r.recordFilter(j)
	f.Since(began.Add(-clockSlack))
	pause := 250 * time.Millisecond
	for {
		rec, ok, err := r.findRecord(ctx, f.String(), []byte(secret), j.rec.ID, began)
		if err != nil {
			return instanceExit{}, err
		}
		if ok {
			ex := exitOf(rec)
			r.instanceExits.put(key, ex)
			return ex, nil
		}
		if time.Since(stopped) > r.cfg.LogGrace {
			ex := instanceExit{state: gantry.State{
				Status:     gantry.StatusExited,
				ExitCode:   128 + 9,
				Signal:     "SIGKILL",
				StartedAt:  began,
				FinishedAt: stopped,
				Error:      "the instance stopped and the agent's exit record did not reach Cloud Logging within LogGrace: the agent was killed, or its record was lost",
			}}
			r.instanceExits.put(key, ex)
			return ex, nil
		}
		if err := gax.Sleep(ctx, pause); err != nil {
			return instanceExit{}, err
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// recordFilter selects the agent's records of instance j.
func (r *Runtime) recordFilter(j *job) *cloudlog.Filter {
	var f cloudlog.Filter
	f.Eq("resource.type", "cloud_run_instance").
		Eq("resource.labels.instance_name", j.id()).
		Eq("resource.labels.location", r.cfg.Region).
		Logs(stderrLog).
		Raw(cloudlog.Label("labels", recordLabel) + `="exit"`)
	return &f
}

// previousInstanceFinish returns when the run before the instance's
// current one ended (zero when there was none): the FinishedAt Docker
// keeps while a container runs again. The Runtime that started the
// instance again knows it from the record it read then; another reads
// the newest record from before the current run began, once per run.
func (r *Runtime) previousInstanceFinish(ctx context.Context, j *job, runStarted time.Time) (time.Time, error) {
	if v, ok := r.restarted.Load(restartKey{j.in.GetName(), j.rec.ID}); ok {
		return v.(time.Time), nil
	}
	key := "before:" + j.in.GetName() + "@" + runStarted.Format(time.RFC3339Nano)
	if ex, ok := r.instanceExits.get(key); ok {
		return ex.state.FinishedAt, nil
	}
	secret, _ := hasAgent(j)
	f := r.recordFilter(j)
	f.Until(runStarted)
	rec, ok, err := r.findRecord(ctx, f.String(), []byte(secret), j.rec.ID, time.Time{})
	if err != nil {
		return time.Time{}, err
	}
	var ex instanceExit
	if ok {
		ex.state.FinishedAt = rec.FinishedAt
	}
	r.instanceExits.put(key, ex)
	return ex.state.FinishedAt, nil
}

// restartKey names a container's instance in Runtime.restarted.
type restartKey struct{ instance, id string }

// findRecord lists the newest records filter selects and returns the
// first that the container's agent signed and that began after began.
func (r *Runtime) findRecord(ctx context.Context, filter string, secret []byte, id string, began time.Time) (agent.Record, bool, error) {
	it := r.logs.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{
		ResourceNames: []string{"projects/" + r.cfg.Project},
		Filter:        filter,
		OrderBy:       "timestamp desc",
		PageSize:      10,
	}, gcperr.Retry())
	for n := 0; n < 10; n++ {
		e, err := it.Next()
		if isDone(err) {
			break
		}
		if err != nil {
			return agent.Record{}, false, gcperr.Wrap(ctx, err, "read the exit record of instance %s", id)
		}
		raw, err := protojson.Marshal(e.GetJsonPayload())
		if err != nil {
			continue
		}
		rec, err := agent.ParseRecord(raw)
		if err != nil || !rec.Verify(secret, id) {
			continue
		}
		if !began.IsZero() && !rec.StartedAt.IsZero() && rec.StartedAt.Before(began.Add(-clockSlack)) {
			continue
		}
		return rec, true, nil
	}
	return agent.Record{}, false, nil
}

// exitOf is the state a record describes.
func exitOf(rec agent.Record) instanceExit {
	if rec.StartedAt.IsZero() && rec.FinishedAt.IsZero() && rec.ExitCode == 0 {
		return instanceExit{never: true}
	}
	st := gantry.State{
		Status:     gantry.StatusExited,
		ExitCode:   rec.ExitCode,
		StartedAt:  rec.StartedAt,
		FinishedAt: rec.FinishedAt,
	}
	if rec.Signal > 0 {
		st.Signal = gantry.SignalName(rec.Signal)
	}
	if rec.Health != "" {
		st.Health = &gantry.Health{Status: gantry.HealthUnhealthy, FailingStreak: rec.FailingStreak}
	}
	return instanceExit{state: st, restarts: rec.Restarts}
}
