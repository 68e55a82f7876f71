package cloudlog

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Filter builds a Cloud Logging query as a conjunction of clauses. The zero
// value is an empty filter, which matches everything.
//
//	var f cloudlog.Filter
//	f.Eq("resource.type", "cloud_run_job").
//		Eq("resource.labels.job_name", job).
//		AnyOf("logName", stdoutName, stderrName).
//		Since(t)
//	req.Filter = f.String()
type Filter struct {
	clauses []string
}

// Eq adds field="value". field is a path such as resource.labels.job_name;
// use Label for a key that needs quoting.
func (f *Filter) Eq(field, value string) *Filter {
	f.clauses = append(f.clauses, field+"="+Quote(value))
	return f
}

// AnyOf adds (field="v1" OR field="v2" ...). With one value it is Eq; with
// none it adds nothing.
func (f *Filter) AnyOf(field string, values ...string) *Filter {
	switch len(values) {
	case 0:
		return f
	case 1:
		return f.Eq(field, values[0])
	}
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = field + "=" + Quote(v)
	}
	f.clauses = append(f.clauses, "("+strings.Join(parts, " OR ")+")")
	return f
}

// Logs adds a clause that selects the logs with these IDs (such as
// "run.googleapis.com/stdout") in any project form: a log name carries the
// project ID even when the query names the project by number, so the
// clause tests the name's "/logs/<id>" ending rather than the whole name.
func (f *Filter) Logs(ids ...string) *Filter {
	if len(ids) == 0 {
		return f
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "logName:" + Quote("/logs/"+url.PathEscape(id))
	}
	if len(parts) == 1 {
		f.clauses = append(f.clauses, parts[0])
	} else {
		f.clauses = append(f.clauses, "("+strings.Join(parts, " OR ")+")")
	}
	return f
}

// Since adds timestamp>=t (inclusive), unless t is zero.
func (f *Filter) Since(t time.Time) *Filter {
	if !t.IsZero() {
		f.clauses = append(f.clauses, "timestamp>="+Quote(Timestamp(t)))
	}
	return f
}

// Until adds timestamp<=t (inclusive, as Docker's until), unless t is zero.
func (f *Filter) Until(t time.Time) *Filter {
	if !t.IsZero() {
		f.clauses = append(f.clauses, "timestamp<="+Quote(Timestamp(t)))
	}
	return f
}

// Raw adds a clause as written, in parentheses.
func (f *Filter) Raw(clause string) *Filter {
	f.clauses = append(f.clauses, "("+clause+")")
	return f
}

// Clone returns a copy that can grow apart from f.
func (f *Filter) Clone() *Filter {
	return &Filter{clauses: append([]string(nil), f.clauses...)}
}

// String returns the query: the clauses joined by AND.
func (f *Filter) String() string { return strings.Join(f.clauses, " AND ") }

// Label returns the field path of label key under prefix ("labels" or
// "resource.labels"), quoting the key: labels."run.googleapis.com/x".
func Label(prefix, key string) string { return prefix + "." + Quote(key) }

// Timestamp formats t as the query language and the API expect: RFC 3339
// in UTC with nanoseconds.
func Timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Quote returns s as a string literal of the Logging query language:
// double-quoted, with \" \\ \n \r \t and \uXXXX escapes for quotes,
// backslashes and control characters. Invalid UTF-8 becomes U+FFFD.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// LogName returns the full name of log logID in project, as LogEntry
// carries it: projects/p/logs/run.googleapis.com%2Fstdout.
func LogName(project, logID string) string {
	return "projects/" + project + "/logs/" + url.PathEscape(logID)
}

// LogID returns the log ID of a full log name ("run.googleapis.com/stdout"
// for projects/p/logs/run.googleapis.com%2Fstdout), or "" if logName is not
// one.
func LogID(logName string) string {
	_, id, ok := strings.Cut(logName, "/logs/")
	if !ok {
		return ""
	}
	if u, err := url.PathUnescape(id); err == nil {
		return u
	}
	return id
}
