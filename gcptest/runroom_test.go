package gcptest_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/option"
)

// Helpers the tests of services and instances share.

// newClient returns a client of e's Server made by newC (such as
// run.NewServicesClient), closed when the test ends.
func newClient[C interface{ Close() error }](t *testing.T, e *env, newC func(context.Context, ...option.ClientOption) (C, error)) C {
	t.Helper()
	c, err := newC(context.Background(), e.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stdoutLines polls for the stdout lines logged under filter (a
// resource's type and name) until there are n, for 5 s at most, and
// returns the last ones read; an entry that check refuses fails the
// test.
func (e *env) stdoutLines(t *testing.T, filter string, n int, check func(*loggingpb.LogEntry) bool) []string {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		lines = lines[:0]
		for _, le := range e.listLogs(t, filter+` AND logName="projects/proj/logs/run.googleapis.com%2Fstdout"`) {
			if !check(le) {
				t.Fatalf("entry %v", le)
			}
			lines = append(lines, le.GetTextPayload())
		}
		if len(lines) == n {
			break
		}
	}
	return lines
}

// conditionOf returns a service's or an instance's condition of type
// typ, the terminal one or another, or nil.
func conditionOf[R interface {
	GetTerminalCondition() *runpb.Condition
	GetConditions() []*runpb.Condition
}](r R, typ string) *runpb.Condition {
	if r.GetTerminalCondition().GetType() == typ {
		return r.GetTerminalCondition()
	}
	for _, c := range r.GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}
