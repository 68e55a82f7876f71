package agentimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent/agentimage"
	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var fakeBins = map[string][]byte{
	"linux/arm64": []byte("\x7fELF fake arm64 agent"),
	"linux/amd64": []byte("\x7fELF fake amd64 agent"),
}

// agentFile reads the one file the image's single layer must hold and
// checks its header.
func agentFile(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	mt, err := layers[0].MediaType()
	if err != nil {
		t.Fatal(err)
	}
	if mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	if hdr.Name != "gantry-agent" || hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 ||
		hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("layer entry = %q type %c mode %o uid %d gid %d mtime %v; want gantry-agent, regular, 0755, 0, 0, 2000-01-01",
			hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("layer holds more than the agent (next: %v)", err)
	}
	return data
}

// checkIndex checks that idx is the agent image for bins.
func checkIndex(t *testing.T, idx v1.ImageIndex, bins map[string][]byte) {
	t.Helper()
	// Digests, diff IDs and sizes all agree with the bytes.
	if err := validate.Index(idx); err != nil {
		t.Fatalf("invalid index: %v", err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	if mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		p := d.Platform.String()
		got = append(got, p)
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", p, d.MediaType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if diff := cmp.Diff([]string{"/gantry-agent"}, cf.Config.Entrypoint); diff != "" {
			t.Errorf("%s: entrypoint (-want +got):\n%s", p, diff)
		}
		if len(cf.Config.Cmd) != 0 {
			t.Errorf("%s: cmd = %q, want none", p, cf.Config.Cmd)
		}
		if !bytes.Equal(agentFile(t, img), bins[p]) {
			t.Errorf("%s: /gantry-agent differs from the binary given", p)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, got); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestBuild(t *testing.T) {
	idx, err := agentimage.Build(fakeBins)
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, idx, fakeBins)
}

func TestBuildIsReproducible(t *testing.T) {
	digest := func(bins map[string][]byte) v1.Hash {
		t.Helper()
		idx, err := agentimage.Build(bins)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest(fakeBins)
	copied := map[string][]byte{}
	for p, b := range fakeBins {
		copied[p] = bytes.Clone(b)
	}
	if again := digest(copied); again != first {
		t.Errorf("the same binaries gave %s, then %s", first, again)
	}
	copied["linux/arm64"] = []byte("another arm64 agent")
	if other := digest(copied); other == first {
		t.Errorf("a different binary gave the same digest %s", other)
	}
}

func TestBuildRefuses(t *testing.T) {
	for name, bins := range map[string]map[string][]byte{
		"no binaries":  nil,
		"empty binary": {"linux/amd64": nil},
		"no arch":      {"linux": []byte("x")},
		"empty part":   {"linux//v7": []byte("x")},
		"too long":     {"linux/arm/v7/extra": []byte("x")},
		"upper case":   {"Linux/amd64": []byte("x")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := agentimage.Build(bins)
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("Build = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// readBack checks that ref (a digest reference) names idx in the registry,
// and what the registry serves is the agent image for bins.
func readBack(t *testing.T, ref string, idx v1.ImageIndex, bins map[string][]byte) {
	t.Helper()
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatalf("Push returned %q: %v", ref, err)
	}
	if d.DigestStr() != want.String() {
		t.Errorf("Push returned digest %s, want %s", d.DigestStr(), want)
	}
	got, err := remote.Index(d)
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, got, bins)
}

func TestPushReadBack(t *testing.T) {
	host := testregistry.Start(t)
	idx, err := agentimage.Build(fakeBins)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := agentimage.Push(ctx, host+"/tools/gantry-agent:v1", idx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, host+"/tools/gantry-agent@sha256:") {
		t.Errorf("Push = %q, want %s/tools/gantry-agent@sha256:…", ref, host)
	}
	readBack(t, ref, idx, fakeBins)

	// The tag names the same index, and an untagged push goes to latest.
	if again, err := agentimage.Push(ctx, host+"/tools/gantry-agent", idx); err != nil || again != ref {
		t.Fatalf("Push without a tag = %q, %v; want %q", again, err, ref)
	}
	for _, tag := range []string{host + "/tools/gantry-agent:v1", host + "/tools/gantry-agent:latest"} {
		desc, err := remote.Head(mustTag(t, tag))
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := idx.Digest(); desc.Digest != want {
			t.Errorf("%s = %s, want %s", tag, desc.Digest, want)
		}
	}

	// One platform's image, chosen as a runtime would.
	img, err := remote.Image(mustTag(t, host+"/tools/gantry-agent:v1"),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(agentFile(t, img), fakeBins["linux/arm64"]) {
		t.Error("the linux/arm64 image does not hold the arm64 binary")
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestPushRefuses(t *testing.T) {
	host := testregistry.Start(t)
	idx, err := agentimage.Build(fakeBins)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ref := range []string{
		"",
		host + "/Upper/case",
		host + "/gantry-agent@sha256:" + strings.Repeat("a", 64),
	} {
		if _, err := agentimage.Push(ctx, ref, idx); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Push(%q) = %v, want ErrInvalidArgument", ref, err)
		}
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := agentimage.Push(canceled, host+"/gantry-agent", idx); !errors.Is(err, context.Canceled) {
		t.Errorf("Push with a canceled context = %v, want context.Canceled", err)
	}
}

func TestCompileRefusesPlatform(t *testing.T) {
	for _, p := range []string{"linux", "linux/amd64/v9", "linux/arm64/v7", "linux/riscv64/x", "LINUX/amd64"} {
		if _, err := agentimage.Compile(context.Background(), p); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Compile(%q) = %v, want ErrInvalidArgument", p, err)
		}
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := agentimage.Compile(canceled, "linux/amd64"); !errors.Is(err, context.Canceled) {
		t.Errorf("Compile with a canceled context = %v, want context.Canceled", err)
	}
}

// TestCompileBuildPush does it all for real: compiles the agent for both
// default platforms, pushes the image, reads it back, and runs the binary
// for the host when it can.
func TestCompileBuildPush(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the agent twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	bins := map[string][]byte{}
	for _, p := range agentimage.DefaultPlatforms {
		bin, err := agentimage.Compile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: not an ELF binary: %v", p, err)
		}
		if f.Machine != machines[p] {
			t.Errorf("%s: ELF machine %v, want %v", p, f.Machine, machines[p])
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: the binary asks for a dynamic loader; want a static binary", p)
			}
		}
		if syms, _ := f.Symbols(); len(syms) != 0 {
			t.Errorf("%s: the binary has %d symbols; want it stripped", p, len(syms))
		}
		bins[p] = bin
	}
	idx, err := agentimage.Build(bins)
	if err != nil {
		t.Fatal(err)
	}
	host := testregistry.Start(t)
	ref, err := agentimage.Push(ctx, host+"/gantry-agent", idx)
	if err != nil {
		t.Fatal(err)
	}
	readBack(t, ref, idx, bins)

	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("cannot run a linux/amd64 binary on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	img, err := remote.Image(mustTag(t, host+"/gantry-agent:latest"))
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "gantry-agent")
	if err := os.WriteFile(exe, agentFile(t, img), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, exe, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("gantry-agent -h: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "usage: gantry-agent") {
		t.Errorf("gantry-agent -h printed %q, want its usage", out)
	}
}

// TestBuildRelay: the relay's image holds /gantry-relay as its entrypoint,
// and nothing else.
func TestBuildRelay(t *testing.T) {
	idx, err := agentimage.Relay.Build(map[string][]byte{"linux/amd64": []byte("relay")})
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/gantry-relay"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdr, err := tar.NewReader(rc).Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "gantry-relay" || hdr.Mode != 0o755 {
		t.Errorf("layer holds %s mode %o, want gantry-relay 755", hdr.Name, hdr.Mode)
	}
}
