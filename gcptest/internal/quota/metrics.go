package quota

// The quota metrics the emulator counts. Names and identifiers are those
// Google's quota errors carry where one was seen (see RULES.md, "Strict
// mode"); the others follow the same pattern.
const (
	runQuotas     = "https://cloud.google.com/run/quotas#api"
	loggingQuotas = "https://cloud.google.com/logging/quotas#api-limits"
)

var (
	// RunRead counts Cloud Run Admin API reads (Get and List of jobs,
	// executions, tasks and operations) per project and region.
	RunRead = &Metric{
		Service:  "run.googleapis.com",
		Name:     "Read requests",
		ID:       "run.googleapis.com/read_regional",
		Limit:    "Read requests per minute per region",
		LimitID:  "ReadPerMinutePerProjectRegion",
		Regional: true,
		Help:     runQuotas,
	}
	// RunWrite counts Cloud Run Admin API writes (Create, Update and
	// Delete of jobs, Cancel and Delete of executions, Delete of
	// operations) per project and region.
	RunWrite = &Metric{
		Service:  "run.googleapis.com",
		Name:     "Write requests",
		ID:       "run.googleapis.com/write_regional",
		Limit:    "Write requests per minute per region",
		LimitID:  "WritePerMinutePerProjectRegion",
		Regional: true,
		Help:     runQuotas,
	}
	// RunJobRun counts RunJob calls per project and region.
	RunJobRun = &Metric{
		Service:  "run.googleapis.com",
		Name:     "Job run requests",
		ID:       "run.googleapis.com/job_run_requests",
		Limit:    "Job run requests per minute per region",
		LimitID:  "JobRunRequestsPerMinutePerProjectRegion",
		Regional: true,
		Help:     runQuotas,
	}
	// LoggingList counts entries.list (ListLogEntries) calls per project.
	LoggingList = &Metric{
		Service: "logging.googleapis.com",
		Name:    "entries.list requests",
		ID:      "logging.googleapis.com/list_requests",
		Limit:   "entries.list requests per minute",
		LimitID: "ListRequestsPerMinutePerProject",
		Help:    loggingQuotas,
	}
	// LoggingRead counts Cloud Logging reads (ListLogEntries, ListLogs)
	// per project.
	LoggingRead = &Metric{
		Service: "logging.googleapis.com",
		Name:    "Read requests",
		ID:      "logging.googleapis.com/read_requests",
		Limit:   "Read requests per minute",
		LimitID: "ReadRequestsPerMinutePerProject",
		Help:    loggingQuotas,
	}
	// LoggingWrite counts entries.write (WriteLogEntries) calls per
	// project.
	LoggingWrite = &Metric{
		Service: "logging.googleapis.com",
		Name:    "Write requests",
		ID:      "logging.googleapis.com/write_requests",
		Limit:   "Write requests per minute",
		LimitID: "WriteRequestsPerMinutePerProject",
		Help:    loggingQuotas,
	}
	// TailSessions is the number of open TailLogEntries sessions per
	// project, a limit on sessions at once rather than per minute.
	TailSessions = &Metric{
		Service:    "logging.googleapis.com",
		Name:       "Live tailing sessions",
		ID:         "logging.googleapis.com/tail_sessions",
		Limit:      "Open live tailing sessions per project",
		LimitID:    "TailSessionsPerProject",
		Concurrent: true,
		Help:       loggingQuotas,
	}
	// TailEntries counts the entries TailLogEntries returns per project.
	TailEntries = &Metric{
		Service: "logging.googleapis.com",
		Name:    "Live tailing entries",
		ID:      "logging.googleapis.com/tail_entries",
		Limit:   "Live tailing entries returned per minute",
		LimitID: "TailEntriesPerMinutePerProject",
		Help:    loggingQuotas,
	}
)
