package testregistry_test

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func configOf(t *testing.T, ref string, opts ...remote.Option) *v1.ConfigFile {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func TestPushImage(t *testing.T) {
	host := testregistry.Start(t)
	want := testregistry.Image{
		Entrypoint: []string{"/bin/app"},
		Cmd:        []string{"serve", "--port=8080"},
		WorkingDir: "/srv",
		User:       "1000:1000",
		Env:        []string{"PATH=/bin", "MODE=test"},
	}
	ref := testregistry.PushImage(t, host, "team/app:v2", want)
	if !strings.HasPrefix(ref, host+"/team/app@sha256:") {
		t.Errorf("PushImage = %q, want %s/team/app@sha256:…", ref, host)
	}
	for _, r := range []string{ref, host + "/team/app:v2"} {
		cf := configOf(t, r)
		got := testregistry.Image{
			Platform:   cf.OS + "/" + cf.Architecture,
			Entrypoint: cf.Config.Entrypoint,
			Cmd:        cf.Config.Cmd,
			WorkingDir: cf.Config.WorkingDir,
			User:       cf.Config.User,
			Env:        cf.Config.Env,
		}
		want.Platform = "linux/amd64"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: config (-want +got):\n%s", r, diff)
		}
	}
}

func TestPushIndex(t *testing.T) {
	host := testregistry.Start(t)
	ref := testregistry.PushIndex(t, host, "multi",
		testregistry.Image{Cmd: []string{"amd64"}},
		testregistry.Image{Platform: "linux/arm/v7", Cmd: []string{"armv7"}})
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	for i, want := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}} {
		if p := im.Manifests[i].Platform; p == nil || !p.Equals(want) {
			t.Errorf("manifest %d: platform %v, want %v", i, p, want)
		}
	}
	cf := configOf(t, host+"/multi:latest", remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}))
	if diff := cmp.Diff([]string{"armv7"}, cf.Config.Cmd); diff != "" {
		t.Errorf("linux/arm/v7 cmd (-want +got):\n%s", diff)
	}
}

func TestStartHandler(t *testing.T) {
	var n atomic.Int64
	host := testregistry.StartHandler(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	testregistry.PushImage(t, host, "counted", testregistry.Image{})
	if n.Load() == 0 {
		t.Error("the wrapper saw no request")
	}
}

func TestAgentImage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the agent")
	}
	host := testregistry.Start(t)
	ref := testregistry.AgentImage(t, host)
	if !strings.HasPrefix(ref, host+"/gantry-agent@sha256:") {
		t.Errorf("AgentImage = %q, want %s/gantry-agent@sha256:…", ref, host)
	}
	// A second registry gets the same image, built only once.
	other := testregistry.Start(t)
	again := testregistry.AgentImage(t, other)
	if strings.TrimPrefix(again, other) != strings.TrimPrefix(ref, host) {
		t.Errorf("second push = %q, want the digest of %q", again, ref)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithPlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if hdr, err := tr.Next(); err != nil || hdr.Name != "gantry-agent" {
		t.Fatalf("first entry: %v, %v", hdr, err)
	}
	bin, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	// An executable for this platform starts with its magic number.
	magic := map[string][]byte{"linux": []byte("\x7fELF"), "darwin": {0xcf, 0xfa, 0xed, 0xfe}}[runtime.GOOS]
	if magic != nil && !bytes.HasPrefix(bin, magic) {
		t.Errorf("/gantry-agent starts with %q, not an executable for %s", bin[:min(4, len(bin))], runtime.GOOS)
	}
	if len(bin) < 1<<20 {
		t.Errorf("/gantry-agent is %d bytes; too small to be the agent", len(bin))
	}
}
