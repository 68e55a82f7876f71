package gcptest

import (
	"fmt"
	"time"
)

// Rule names one strict behaviour of the emulator: a limit or a leeway that
// Google's documentation allows and the friendliest reading ignores. Each
// is cited in RULES.md ("Strict mode"). WithStrict turns every rule on,
// Relax turns chosen ones off, and each rule also has its own option with
// parameters.
type Rule string

// The strict rules.
const (
	// RuleQuotas: per-minute API quotas and the limit on open
	// TailLogEntries sessions (WithQuotas).
	RuleQuotas Rule = "quotas"
	// RuleTailRateLimit: TailLogEntries returns at most so many entries
	// a minute per project and reports the rest as suppressed
	// (WithTailRateLimit).
	RuleTailRateLimit Rule = "tail-rate-limit"
	// RuleIngestionDelay: log entries become visible to List and Tail
	// after a random delay, so they arrive out of order
	// (WithIngestionDelay).
	RuleIngestionDelay Rule = "ingestion-delay"
	// RuleUnorderedLists: ListJobs, ListExecutions and ListTasks answer
	// in no particular order (WithUnorderedLists).
	RuleUnorderedLists Rule = "unordered-lists"
	// RuleExecutionReconcile: a job learns of the execution RunJob
	// started only after a delay (WithExecutionReconcileDelay).
	RuleExecutionReconcile Rule = "execution-reconcile"
	// RuleNoExitCodeOnStop: a cancelled or timed-out attempt has no exit
	// code (WithNoExitCodeOnStop).
	RuleNoExitCodeOnStop Rule = "no-exit-code-on-stop"
	// RuleStructuredLogs: a line that is one JSON object is logged as
	// jsonPayload with the special fields lifted (WithStructuredLogs).
	RuleStructuredLogs Rule = "structured-logs"
)

// Rules returns every strict rule.
func Rules() []Rule {
	return []Rule{RuleQuotas, RuleTailRateLimit, RuleIngestionDelay, RuleUnorderedLists,
		RuleExecutionReconcile, RuleNoExitCodeOnStop, RuleStructuredLogs}
}

// ParseRule returns the Rule named s.
func ParseRule(s string) (Rule, error) {
	for _, r := range Rules() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("gcptest: no rule %q (rules: %v)", s, Rules())
}

// Quotas are the limits WithQuotas enforces. A zero field is no limit.
type Quotas struct {
	// Cloud Run Admin API, per project and region, per minute.
	RunReads, RunWrites, RunJobRuns int
	// Cloud Logging, per project, per minute: ListLogEntries calls; read
	// calls (ListLogEntries and ListLogs); WriteLogEntries calls.
	LoggingEntriesLists, LoggingReads, LoggingWrites int
	// Cloud Functions API, per project, per minute: calls that describe
	// or list functions or runtimes; calls that deploy, update or delete
	// a function or generate an upload URL.
	FunctionsReads, FunctionsWrites int
	// TailSessions is how many TailLogEntries sessions may be open at once
	// per project.
	TailSessions int
}

// DefaultQuotas returns Google's default quotas (RULES.md, "Strict mode",
// lists each number with its source).
func DefaultQuotas() Quotas {
	return Quotas{
		RunReads:            1000,
		RunWrites:           180,
		RunJobRuns:          180,
		LoggingEntriesLists: 60,
		LoggingReads:        120,
		LoggingWrites:       120_000,
		FunctionsReads:      1200,
		FunctionsWrites:     60,
		TailSessions:        10,
	}
}

// Google's TailLogEntries rate limit: "Number of live-tailing entries
// returned: 60,000 per minute".
const DefaultTailRateLimit = 60_000

// The strict defaults where Google gives no number (RULES.md says why).
const (
	DefaultIngestionDelayMin     = 250 * time.Millisecond
	DefaultIngestionDelayMax     = 2 * time.Second
	DefaultExecutionReconcileLag = time.Second
)

// strictness is the part of the configuration the rules set. Its zero
// value is today's relaxed emulator.
type strictness struct {
	quotas           *Quotas
	tailRate         int
	ingestMin        time.Duration
	ingestMax        time.Duration
	unorderedLists   bool
	execReconcile    time.Duration
	noExitCodeOnStop bool
	structuredLogs   bool
}

// WithStrict turns on every rule with Google's numbers, or the defaults
// above where Google gives none. Options apply in order, so options after
// it can change a rule's parameters or relax it:
//
//	gcptest.NewServer(gcptest.WithStrict(), gcptest.Relax(gcptest.RuleUnorderedLists))
func WithStrict() Option {
	return func(c *config) {
		q := DefaultQuotas()
		c.strict = strictness{
			quotas:           &q,
			tailRate:         DefaultTailRateLimit,
			ingestMin:        DefaultIngestionDelayMin,
			ingestMax:        DefaultIngestionDelayMax,
			unorderedLists:   true,
			execReconcile:    DefaultExecutionReconcileLag,
			noExitCodeOnStop: true,
			structuredLogs:   true,
		}
	}
}

// Relax turns the given rules off.
func Relax(rules ...Rule) Option {
	return func(c *config) {
		for _, r := range rules {
			switch r {
			case RuleQuotas:
				c.strict.quotas = nil
			case RuleTailRateLimit:
				c.strict.tailRate = 0
			case RuleIngestionDelay:
				c.strict.ingestMin, c.strict.ingestMax = 0, 0
			case RuleUnorderedLists:
				c.strict.unorderedLists = false
			case RuleExecutionReconcile:
				c.strict.execReconcile = 0
			case RuleNoExitCodeOnStop:
				c.strict.noExitCodeOnStop = false
			case RuleStructuredLogs:
				c.strict.structuredLogs = false
			default:
				c.errs = append(c.errs, fmt.Errorf("gcptest: Relax(%q): no such rule", r))
			}
		}
	}
}

// Relaxed turns every rule off: instant log ingestion, no quotas, lists
// in a fixed order, a job that knows its new execution at once, an exit
// code on every attempt and every line as textPayload.
func Relaxed() Option { return Relax(Rules()...) }

// WithQuotas enforces q (RuleQuotas): a call past a per-minute quota, or a
// TailLogEntries session past the limit on open sessions, fails with
// RESOURCE_EXHAUSTED and the details Google sends. Calls are counted over
// a rolling minute of the Server's clock (WithClock).
func WithQuotas(q Quotas) Option {
	return func(c *config) { c.strict.quotas = &q }
}

// WithTailRateLimit makes TailLogEntries return at most n entries a minute
// per project (RuleTailRateLimit); the entries past it are dropped and
// counted in the stream's suppression_info with reason RATE_LIMIT. n <= 0
// turns the limit off.
func WithTailRateLimit(n int) Option {
	return func(c *config) { c.strict.tailRate = max(n, 0) }
}

// WithIngestionDelay makes each log entry visible to ListLogEntries and
// TailLogEntries only after a delay drawn uniformly from [lo, hi]
// (RuleIngestionDelay), so entries arrive in another order than their
// timestamps. The draws come from the Server's seed (WithSeed). A hi of 0
// turns the delay off.
func WithIngestionDelay(lo, hi time.Duration) Option {
	return func(c *config) {
		if lo < 0 || hi < lo {
			c.errs = append(c.errs, fmt.Errorf("gcptest: WithIngestionDelay(%s, %s): want 0 <= lo <= hi", lo, hi))
			return
		}
		c.strict.ingestMin, c.strict.ingestMax = lo, hi
	}
}

// WithUnorderedLists makes ListJobs, ListExecutions and ListTasks answer
// in an order shuffled for each new listing (RuleUnorderedLists); the
// pages of one listing still hold each resource once.
func WithUnorderedLists() Option {
	return func(c *config) { c.strict.unorderedLists = true }
}

// WithExecutionReconcileDelay makes a job record the execution RunJob
// started (execution_count, latest_created_execution) only d after the
// call, with reconciling set meanwhile (RuleExecutionReconcile). 0 records
// it at once.
func WithExecutionReconcileDelay(d time.Duration) Option {
	return func(c *config) { c.strict.execReconcile = max(d, 0) }
}

// WithNoExitCodeOnStop leaves last_attempt_result.exit_code unset for an
// attempt that was cancelled or timed out (RuleNoExitCodeOnStop):
// term_signal is still set when a signal ended the container, and neither
// is when it exited by itself after SIGTERM.
func WithNoExitCodeOnStop() Option {
	return func(c *config) { c.strict.noExitCodeOnStop = true }
}

// WithStructuredLogs logs a line that is one JSON object as Cloud Run
// does (RuleStructuredLogs): as jsonPayload, with severity, the time,
// httpRequest and the logging.googleapis.com/ fields moved to the entry.
func WithStructuredLogs() Option {
	return func(c *config) { c.strict.structuredLogs = true }
}

// WithSeed seeds the Server's random choices: ingestion delays and the
// order of unordered lists. Without it the seed is random; Seed reports
// it, so that a failing test can log it and be replayed.
func WithSeed(seed uint64) Option {
	return func(c *config) { c.seed, c.seedSet = seed, true }
}

// WithProjectNumber tells the Server that project id has the number
// number, as every Google project has both. Requests may then name the
// project either way: Cloud Run and Logging answer with the ID in every
// resource and log name, as Cloud Logging documents for logName ("the
// project number is translated to its corresponding PROJECT_ID
// internally"), and quota errors name the consumer by number.
func WithProjectNumber(id, number string) Option {
	return func(c *config) {
		if id == "" || !isProjectNumber(number) {
			c.errs = append(c.errs, fmt.Errorf("gcptest: WithProjectNumber(%q, %q): want a project ID and a number", id, number))
			return
		}
		if c.projectNumbers == nil {
			c.projectNumbers = map[string]string{}
		}
		c.projectNumbers[number] = id
	}
}

func isProjectNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
