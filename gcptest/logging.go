package gcptest

import (
	"strconv"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest/internal/logsvc"
)

// logTarget is where and how a workload's output is logged: the monitored
// resource and entry labels Cloud Run gives it.
type logTarget struct {
	project  string
	resource *monitoredres.MonitoredResource
	labels   map[string]string
}

// jobTaskLogTarget is how Cloud Run logs a job's task attempt: resource
// type cloud_run_job with project_id, location and job_name; entry labels
// naming the execution, the task index and the attempt.
func jobTaskLogTarget(loc location, job, execution string, taskIndex, attempt int) logTarget {
	return logTarget{
		project: loc.project,
		resource: &monitoredres.MonitoredResource{
			Type: "cloud_run_job",
			Labels: map[string]string{
				"project_id": loc.project,
				"location":   loc.location,
				"job_name":   job,
			},
		},
		labels: map[string]string{
			"run.googleapis.com/execution_name": execution,
			"run.googleapis.com/task_index":     strconv.Itoa(taskIndex),
			"run.googleapis.com/task_attempt":   strconv.Itoa(attempt),
		},
	}
}

// logEntry turns one line of container output into the entry Cloud Run
// writes: the log run.googleapis.com/stdout or /stderr (URL-escaped in
// logName), the line as textPayload and the time the line was written.
// With structured set, a line that is one JSON object is a jsonPayload
// instead (structuredPayload). The Logging service gives the entry a
// unique insertId, unless the line set one, and its receive time.
func (t logTarget) logEntry(e gantry.LogEntry, structured bool) *loggingpb.LogEntry {
	logID := "run.googleapis.com%2Fstdout"
	if e.Stream == gantry.Stderr {
		logID = "run.googleapis.com%2Fstderr"
	}
	labels := make(map[string]string, len(t.labels))
	for k, v := range t.labels {
		labels[k] = v
	}
	le := &loggingpb.LogEntry{
		LogName:   "projects/" + t.project + "/logs/" + logID,
		Resource:  clone(t.resource),
		Labels:    labels,
		Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: e.Line},
		Timestamp: timestamppb.New(e.Time),
	}
	if structured {
		structuredPayload(le, e.Line)
	}
	return le
}

// logWiring connects the emulator to its Cloud Logging service.
type logWiring struct {
	svc *logsvc.Service
}

// registerLogging starts the Cloud Logging v2 service with the Server's
// rules and serves it on the Server's gRPC server.
func registerLogging(s *Server) *logWiring {
	st := s.cfg.strict
	opts := []logsvc.Option{
		logsvc.WithClock(s.cfg.now),
		logsvc.WithProjectNumbers(s.cfg.projectNumbers),
		logsvc.WithTailRateLimit(st.tailRate, s.limiter),
		logsvc.WithIngestionDelay(st.ingestMin, st.ingestMax, s.cfg.seed),
	}
	if st.quotas != nil {
		opts = append(opts, logsvc.WithTailSessionLimit(st.quotas.TailSessions))
	}
	svc := logsvc.New(opts...)
	svc.Register(s.grpc)
	return &logWiring{svc: svc}
}

// ingestLog writes one line of a workload's output to Cloud Logging. The
// entry is well formed by construction, so Ingest cannot refuse it.
func (s *Server) ingestLog(w workload, e gantry.LogEntry) {
	s.logs.svc.Ingest(w.logs.logEntry(e, s.cfg.strict.structuredLogs))
}

func (l *logWiring) close() { l.svc.Close() }
