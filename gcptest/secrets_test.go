package gcptest_test

import (
	"strings"
	"testing"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"

	"github.com/gantryhq/gantry/gcptest"
)

// secretEnv is an environment variable read from a secret version.
func secretEnv(name, secret, version string) *runpb.EnvVar {
	return &runpb.EnvVar{Name: name, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{
		SecretKeyRef: &runpb.SecretKeySelector{Secret: secret, Version: version},
	}}}
}

func TestSecretEnv(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(),
		gcptest.WithSecret("api-key", "1", "one"),
		gcptest.WithSecret("api-key", "2", "two"),
		gcptest.WithSecret("projects/proj/secrets/db", "latest", "db-latest"),
		gcptest.WithSecret("projects/proj/secrets/db", "9", "db-nine"),
		gcptest.WithSecret("projects/other/secrets/elsewhere", "1", "not ours"),
	)
	for _, tc := range []struct {
		id      string
		secret  string
		version string
		want    string
	}{
		{"by-number", "api-key", "1", "one"},
		{"latest-is-highest", "api-key", "latest", "two"},
		{"no-version-is-latest", "api-key", "", "two"},
		{"full-name-of-short", "projects/proj/secrets/api-key", "2", "two"},
		{"latest-given", "db", "latest", "db-latest"},
		{"number-beside-latest", "projects/proj/secrets/db", "9", "db-nine"},
	} {
		job := shJob(`printf '[%s]\n' "$S"`)
		job.Template.Template.Containers[0].Env = []*runpb.EnvVar{secretEnv("S", tc.secret, tc.version)}
		e.createJob(t, tc.id, job)
		_, _, opErr := e.runToEnd(t, tc.id, nil)
		if opErr != nil {
			t.Errorf("%s: RunJob operation: %v", tc.id, opErr)
			continue
		}
		var got []string
		for _, le := range e.listLogs(t, `resource.labels.job_name="`+tc.id+`"`) {
			got = append(got, le.GetTextPayload())
		}
		if want := "[" + tc.want + "]"; len(got) != 1 || got[0] != want {
			t.Errorf("%s: secret %s version %q printed %q, want %q", tc.id, tc.secret, tc.version, got, want)
		}
	}
}

func TestSecretEnvUnknownFailsTask(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(),
		gcptest.WithSecret("api-key", "1", "one"),
		gcptest.WithSecret("projects/other/secrets/elsewhere", "1", "not ours"),
	)
	for _, tc := range []struct {
		id      string
		secret  string
		version string
		message string
	}{
		{"no-such-secret", "nope", "latest", "secret projects/proj/secrets/nope not found or has no versions"},
		{"other-project", "elsewhere", "1", "secret projects/proj/secrets/elsewhere not found or has no versions"},
		{"no-such-version", "api-key", "2", "secret version projects/proj/secrets/api-key/versions/2 not found"},
	} {
		job := shJob(`echo ran`)
		job.Template.Template.Containers[0].Env = []*runpb.EnvVar{secretEnv("S", tc.secret, tc.version)}
		e.createJob(t, tc.id, job)
		ex, tasks, opErr := e.runToEnd(t, tc.id, nil)
		if opErr == nil {
			t.Errorf("%s: RunJob operation succeeded, want a failure", tc.id)
		}
		r := tasks[0].GetLastAttemptResult()
		if r.GetStatus().GetCode() != int32(codes.Internal) || !strings.Contains(r.GetStatus().GetMessage(), tc.message) {
			t.Errorf("%s: last attempt status %v, want INTERNAL mentioning %q", tc.id, r.GetStatus(), tc.message)
		}
		if tasks[0].StartTime != nil {
			t.Errorf("%s: the task has start time %v; it should not have started", tc.id, tasks[0].StartTime.AsTime())
		}
		if got := countsOf(ex); got != (counts{Failed: 1}) {
			t.Errorf("%s: counts %+v, want one failed task", tc.id, got)
		}
		if les := e.listLogs(t, `resource.labels.job_name="`+tc.id+`"`); len(les) != 0 {
			t.Errorf("%s: the task logged %d entries; it should not have run", tc.id, len(les))
		}
	}
}

func TestWithSecretRefusesBadNames(t *testing.T) {
	for _, tc := range []struct{ name, version string }{
		{"", "1"},
		{"has/slash", "1"},
		{"projects/p/secrets/", "1"},
		{"projects/p/secrets/s/versions/1", "1"},
		{"s", ""},
		{"s", "0"},
		{"s", "first"},
	} {
		srv, err := gcptest.NewServer(gcptest.WithSecret(tc.name, tc.version, "v"))
		if err == nil {
			srv.Close()
			t.Errorf("NewServer(WithSecret(%q, %q)) succeeded, want an error", tc.name, tc.version)
		}
	}
}
