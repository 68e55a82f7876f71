// Package testregistry is for tests only: it runs go-containerregistry's
// in-memory registry on a loopback port and pushes images to it, so that
// code that reads images from a registry (image configs, the agent image)
// is tested against a real registry protocol without a network.
//
//	host := testregistry.Start(t)                  // "127.0.0.1:PORT", closed when t ends
//	agent := testregistry.AgentImage(t, host)      // "127.0.0.1:PORT/gantry-agent@sha256:…"
//	app := testregistry.PushImage(t, host, "app", testregistry.Image{
//		Entrypoint: []string{"/app"}, Cmd: []string{"serve"},
//	})
//
// Registries on 127.0.0.1 are spoken to in plain HTTP by
// go-containerregistry, so no TLS setup is needed.
package testregistry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/agent/agentimage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Start runs an empty in-memory registry until t ends and returns its
// host, "127.0.0.1:PORT", the registry part of the references pushed to it.
func Start(t testing.TB) string {
	t.Helper()
	return StartHandler(t, nil)
}

// StartHandler is Start with the registry's handler wrapped by wrap (when
// not nil), for tests that count, delay or refuse requests.
func StartHandler(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// built holds each program's image for the host's platform, built once
// per test process: compiling takes a second or two with a warm build
// cache.
var built sync.Map // agentimage.Program -> *program

type program struct {
	once sync.Once
	idx  v1.ImageIndex
	err  error
}

// AgentImage pushes the agent image, holding gantry-agent compiled for the
// platform the test runs on (runtime.GOOS/runtime.GOARCH, so that an
// emulator can run it as a host process), to host as "gantry-agent:latest"
// and returns its digest reference. The agent is compiled and its image
// built once per test process; each call only pushes.
func AgentImage(t testing.TB, host string) string {
	t.Helper()
	return push(t, host, "gantry-agent:latest", agentimage.Agent)
}

// RelayImage is AgentImage for the relay: gantry-relay, as
// "gantry-relay:latest".
func RelayImage(t testing.TB, host string) string {
	t.Helper()
	return push(t, host, "gantry-relay:latest", agentimage.Relay)
}

func push(t testing.TB, host, repo string, prog agentimage.Program) string {
	t.Helper()
	v, _ := built.LoadOrStore(prog, &program{})
	b := v.(*program)
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		platform := runtime.GOOS + "/" + runtime.GOARCH
		bin, err := prog.Compile(ctx, platform)
		if err != nil {
			b.err = err
			return
		}
		b.idx, b.err = prog.Build(map[string][]byte{platform: bin})
	})
	if b.err != nil {
		t.Fatalf("testregistry: %s image: %v", prog.Path, b.err)
	}
	ref, err := agentimage.Push(context.Background(), host+"/"+repo, b.idx)
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return ref
}

// Image is what PushImage and PushIndex put in an image's config. The
// image has no layers.
type Image struct {
	// Platform is "os/arch" or "os/arch/variant"; "linux/amd64" when empty.
	Platform   string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	Env        []string
	// Labels are the image's labels; they also make otherwise equal
	// images differ.
	Labels map[string]string
}

// PushImage pushes a single-platform image (a manifest, not an index) to
// host as repo (with an optional tag, ":latest" when it has none) and
// returns its digest reference "HOST/REPO@sha256:…".
func PushImage(t testing.TB, host, repo string, img Image) string {
	t.Helper()
	tag := parseTag(t, host, repo)
	i := build(t, img)
	if err := remote.Write(tag, i); err != nil {
		t.Fatalf("testregistry: push %s: %v", tag, err)
	}
	d, err := i.Digest()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return tag.Context().Name() + "@" + d.String()
}

// PushIndex pushes a multi-platform image, an index over one image per
// element of imgs in that order, to host as repo (as PushImage does) and
// returns the index's digest reference.
func PushIndex(t testing.TB, host, repo string, imgs ...Image) string {
	t.Helper()
	tag := parseTag(t, host, repo)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range imgs {
		p := platform(t, img.Platform)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        build(t, img),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("testregistry: push %s: %v", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return tag.Context().Name() + "@" + d.String()
}

func parseTag(t testing.TB, host, repo string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(host + "/" + repo)
	if err != nil {
		t.Fatalf("testregistry: repository %q: %v", repo, err)
	}
	return tag
}

func platform(t testing.TB, s string) v1.Platform {
	t.Helper()
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		t.Fatalf("testregistry: platform %q: %v", s, err)
	}
	return *p
}

// build makes the OCI image img describes.
func build(t testing.TB, img Image) v1.Image {
	t.Helper()
	p := platform(t, img.Platform)
	i := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	i = mutate.ConfigMediaType(i, types.OCIConfigJSON)
	cf, err := i.ConfigFile()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Entrypoint = img.Entrypoint
	cf.Config.Cmd = img.Cmd
	cf.Config.WorkingDir = img.WorkingDir
	cf.Config.User = img.User
	cf.Config.Env = img.Env
	cf.Config.Labels = img.Labels
	i, err = mutate.ConfigFile(i, cf)
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	return i
}
