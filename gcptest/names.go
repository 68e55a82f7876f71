package gcptest

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Wildcard stands for "every job" or "every execution" in the parent of
// ListExecutions and ListTasks.
const wildcard = "-"

// parseName matches name against a pattern of alternating literal
// segments and variables ("projects/{}/locations/{}") and returns the
// variables. A variable may not be empty or contain a slash.
func parseName(name string, literals ...string) ([]string, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 2*len(literals) {
		return nil, false
	}
	vars := make([]string, 0, len(literals))
	for i, lit := range literals {
		if parts[2*i] != lit || parts[2*i+1] == "" {
			return nil, false
		}
		vars = append(vars, parts[2*i+1])
	}
	return vars, true
}

func badName(field, name, format string) error {
	return status.Errorf(codes.InvalidArgument, "%s %q is not a valid resource name: want %s", field, name, format)
}

// location is projects/{project}/locations/{location}.
type location struct{ project, location string }

func (l location) String() string {
	return "projects/" + l.project + "/locations/" + l.location
}

func parseLocation(field, name string) (location, error) {
	v, ok := parseName(name, "projects", "locations")
	if !ok || v[0] == wildcard || v[1] == wildcard {
		return location{}, badName(field, name, "projects/{project}/locations/{location}")
	}
	return location{v[0], v[1]}, nil
}

// jobName is projects/{project}/locations/{location}/jobs/{job}; job may
// be the wildcard where a parent allows it.
type jobName struct {
	location
	job string
}

func (j jobName) String() string { return j.location.String() + "/jobs/" + j.job }

func parseJobName(field, name string, allowWildcard bool) (jobName, error) {
	v, ok := parseName(name, "projects", "locations", "jobs")
	if !ok || v[0] == wildcard || v[1] == wildcard || (!allowWildcard && v[2] == wildcard) {
		return jobName{}, badName(field, name, "projects/{project}/locations/{location}/jobs/{job}")
	}
	return jobName{location{v[0], v[1]}, v[2]}, nil
}

// executionName is .../jobs/{job}/executions/{execution}.
type executionName struct {
	jobName
	execution string
}

func (e executionName) String() string { return e.jobName.String() + "/executions/" + e.execution }

func parseExecutionName(field, name string, allowWildcard bool) (executionName, error) {
	v, ok := parseName(name, "projects", "locations", "jobs", "executions")
	if !ok || v[0] == wildcard || v[1] == wildcard || (!allowWildcard && (v[2] == wildcard || v[3] == wildcard)) {
		return executionName{}, badName(field, name, "projects/{project}/locations/{location}/jobs/{job}/executions/{execution}")
	}
	return executionName{jobName{location{v[0], v[1]}, v[2]}, v[3]}, nil
}

// taskName is .../executions/{execution}/tasks/{task}.
type taskName struct {
	executionName
	task string
}

func parseTaskName(field, name string) (taskName, error) {
	v, ok := parseName(name, "projects", "locations", "jobs", "executions", "tasks")
	if !ok || slices.Contains(v, wildcard) {
		return taskName{}, badName(field, name, "projects/{project}/locations/{location}/jobs/{job}/executions/{execution}/tasks/{task}")
	}
	return taskName{executionName{jobName{location{v[0], v[1]}, v[2]}, v[3]}, v[4]}, nil
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSuffix returns n characters of [a-z0-9], as Cloud Run appends to a
// job's name to name an execution ("sample-job-mdw84").
func randomSuffix(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// newUID returns a random (version 4) UUID, the form of Cloud Run's uid.
func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
