package gcptest_test

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc/codes"

	"github.com/gantryhq/gantry/gcptest"
)

// startRegistry serves go-containerregistry's in-memory registry until t
// ends and returns its host.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// appImage is an image holding /app/run.sh, which prints $GREETING and
// its arguments and then ./data.txt, and /app/data.txt; its config runs
// run.sh with CMD "default" in /app, with GREETING=hello and a PATH no
// host has.
func appImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name, body string
		mode       int64
	}{
		{"app/", "", 0o755},
		{"app/run.sh", "#!/bin/sh\necho \"greeting=$GREETING args=$*\"\ncat ./data.txt\n", 0o755},
		{"app/data.txt", "from the image\n", 0o644},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/app/run.sh"}
	cf.Config.Cmd = []string{"default"}
	cf.Config.Env = []string{"PATH=/nowhere/bin", "GREETING=hello"}
	cf.Config.WorkingDir = "/app"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestImageFromRegistry runs containers from an image of a registry the
// Server pulls from: the image's ENTRYPOINT, CMD, ENV and WORKDIR apply
// by Cloud Run's rules and its files are there; an image that is not in
// the registry fails the task; an image of another registry runs its
// command on the host as before.
func TestImageFromRegistry(t *testing.T) {
	host := startRegistry(t)
	push(t, host+"/app:v1", appImage(t, runtime.GOARCH))
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithImageRegistry(host))
	job := func(c *runpb.Container) *runpb.Job {
		j := shJob("")
		j.Template.Template.Containers = []*runpb.Container{c}
		return j
	}
	app := host + "/app:v1"
	for _, tc := range []struct {
		name      string
		container *runpb.Container
		overrides *runpb.RunJobRequest_Overrides
		want      []string
	}{
		{"the image's entrypoint and cmd", &runpb.Container{Image: app}, nil,
			[]string{"greeting=hello args=default", "from the image"}},
		{"args replace cmd", &runpb.Container{Image: app, Args: []string{"a", "b"}}, nil,
			[]string{"greeting=hello args=a b", "from the image"}},
		{"overridden args replace cmd", &runpb.Container{Image: app}, &runpb.RunJobRequest_Overrides{
			ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Args: []string{"x"}}},
		}, []string{"greeting=hello args=x", "from the image"}},
		{"the container's env over the image's", &runpb.Container{Image: app, Env: []*runpb.EnvVar{{Name: "GREETING", Values: &runpb.EnvVar_Value{Value: "bye"}}}}, nil,
			[]string{"greeting=bye args=default", "from the image"}},
		{"command replaces entrypoint and cmd", &runpb.Container{Image: app, Command: []string{"/app/run.sh"}}, nil,
			[]string{"greeting=hello args=", "from the image"}},
		{"a host command in the image's workdir", &runpb.Container{Image: app, Command: []string{"sh", "-c", `cat data.txt; echo "$GREETING"`}}, nil,
			[]string{"from the image", "hello"}},
		{"an image of another registry", &runpb.Container{Image: "busybox", Command: []string{"echo", "on the host"}}, nil,
			[]string{"on the host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			id = strings.ReplaceAll(id, "'", "")
			e.createJob(t, id, job(tc.container))
			_, tasks, err := e.runToEnd(t, id, tc.overrides)
			if err != nil {
				t.Fatalf("execution: %v (last attempt %v)", err, tasks[0].GetLastAttemptResult())
			}
			var got []string
			for _, le := range e.listLogs(t, `resource.labels.job_name="`+id+`"`) {
				got = append(got, le.GetTextPayload())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}

	e.createJob(t, "missing", job(&runpb.Container{Image: host + "/missing:v1"}))
	_, tasks, err := e.runToEnd(t, "missing", nil)
	r := tasks[0].GetLastAttemptResult()
	if codeOf(err) != codes.FailedPrecondition || codes.Code(r.GetStatus().GetCode()) != codes.NotFound || r.GetStatus().GetMessage() != "Image '"+host+"/missing:v1' not found." {
		t.Errorf("a missing image: %v, last attempt %v", err, r)
	}
}

// TestImageIndexNeedsAMD64 runs an image whose index lacks linux/amd64,
// which Cloud Run refuses.
func TestImageIndexNeedsAMD64(t *testing.T) {
	host := startRegistry(t)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        appImage(t, "s390x"),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}},
	})
	r, err := name.ParseReference(host + "/odd:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithImageRegistry(host))
	j := shJob("")
	j.Template.Template.Containers = []*runpb.Container{{Image: host + "/odd:v1"}}
	e.createJob(t, "odd", j)
	_, tasks, err := e.runToEnd(t, "odd", nil)
	if msg := tasks[0].GetLastAttemptResult().GetStatus().GetMessage(); err == nil || !strings.Contains(msg, "does not include linux/amd64") {
		t.Errorf("an index without linux/amd64: %v, %q", err, msg)
	}
}
