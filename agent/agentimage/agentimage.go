// Package agentimage builds and publishes the agent image: the image that
// delivers gantry-agent into a container without the user rebuilding their
// own image. The Cloud Run backend runs it as a sidecar that copies the
// static binary into a volume the main container shares.
//
// It needs no Docker engine. Compile cross-compiles the agent with the go
// command, Build wraps binaries into a minimal multi-platform image (one
// layer holding /gantry-agent, nothing else), and Push writes it to a
// registry with go-containerregistry:
//
//	bins := map[string][]byte{}
//	for _, p := range agentimage.DefaultPlatforms {
//		bin, err := agentimage.Compile(ctx, p)
//		...
//		bins[p] = bin
//	}
//	idx, err := agentimage.Build(bins)
//	...
//	ref, err := agentimage.Push(ctx, "europe-docker.pkg.dev/proj/repo/gantry-agent:v1", idx,
//		remote.WithAuthFromKeychain(keychain))
//
// The build is reproducible: the same binaries give the same digest, so
// pushing an unchanged agent again changes nothing in the registry. The
// relay's image (Relay, a Program like Agent) is built the same way.
package agentimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/gantryhq/gantry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Package is the import path of the agent's main package.
	Package = "github.com/gantryhq/gantry/cmd/gantry-agent"
	// BinaryPath is where the image holds the agent, and its entrypoint.
	BinaryPath = "/gantry-agent"
)

// A Program is one of gantry's commands that an image delivers: the
// import path of its main package and where the image holds it (its
// entrypoint). Agent is the agent image's; Relay is the image of the
// relay, which the Cloud Run backend can deploy as a service.
type Program struct {
	Package, Path string
}

var (
	Agent = Program{Package: Package, Path: BinaryPath}
	Relay = Program{Package: "github.com/gantryhq/gantry/cmd/gantry-relay", Path: "/gantry-relay"}
)

// Compile is Agent.Compile.
func Compile(ctx context.Context, platform string) ([]byte, error) {
	return Agent.Compile(ctx, platform)
}

// Build is Agent.Build.
func Build(bins map[string][]byte) (v1.ImageIndex, error) { return Agent.Build(bins) }

// name is the program's binary name, for messages and file names.
func (p Program) name() string { return path.Base(p.Path) }

// DefaultPlatforms are the platforms the agent image is built for: the
// ones Cloud Run runs.
var DefaultPlatforms = []string{"linux/amd64", "linux/arm64"}

// epoch is the modification time of the file in the layer and the
// creation time of the image. A fixed time keeps the build reproducible.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Compile cross-compiles the program for platform ("os/arch", or
// "linux/arm/v7" and the like) into a static binary and returns it. It runs
// the go command found on $PATH in the current directory, which must lie
// inside gantry's module or a module that requires it:
//
//	CGO_ENABLED=0 GOOS=os GOARCH=arch go build -trimpath -ldflags '-s -w' github.com/gantryhq/gantry/cmd/gantry-agent
//
// The go command's build cache makes a repeated compile take a second or two.
func (prog Program) Compile(ctx context.Context, platform string) ([]byte, error) {
	env, err := goEnv(platform)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prog.name()+"-build-")
	if err != nil {
		return nil, fmt.Errorf("compile %s for %s: %w", prog.name(), platform, err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, prog.name())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, prog.Package)
	cmd.Env = append(os.Environ(), env...)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("compile %s for %s: %w", prog.name(), platform, ctx.Err())
		}
		return nil, fmt.Errorf("compile %s for %s: %w: %s", prog.name(), platform, err, oneLine(output.String()))
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("compile %s for %s: %w", prog.name(), platform, err)
	}
	return bin, nil
}

// goEnv returns the environment that makes the go command build for
// platform.
func goEnv(platform string) ([]string, error) {
	p, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture}
	bad := func() ([]string, error) {
		return nil, fmt.Errorf("%w: platform %q: the go command has no variant %q of %s",
			gantry.ErrInvalidArgument, platform, p.Variant, p.Architecture)
	}
	switch {
	case p.Variant == "":
	case p.Architecture == "arm" && slices.Contains([]string{"v5", "v6", "v7"}, p.Variant):
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	case p.Architecture == "amd64" && slices.Contains([]string{"v1", "v2", "v3", "v4"}, p.Variant):
		env = append(env, "GOAMD64="+p.Variant)
	case p.Architecture == "arm64" && p.Variant == "v8":
	default:
		return bad()
	}
	return env, nil
}

// parsePlatform reads "os/arch[/variant]".
func parsePlatform(s string) (v1.Platform, error) {
	bad := func(why string) (v1.Platform, error) {
		return v1.Platform{}, fmt.Errorf("%w: platform %q: %s", gantry.ErrInvalidArgument, s, why)
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("want os/arch or os/arch/variant, such as linux/amd64")
	}
	for _, part := range parts {
		if part == "" || strings.IndexFunc(part, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
		}) >= 0 {
			return bad("each part is lowercase letters, digits and _")
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// Build makes the program's image from bins, which maps a platform
// ("linux/amd64") to the program's binary for it: an index with one image per
// platform, in the order of their names. Each image is a single layer
// holding the program at its Path (mode 0755, owned by root) as its
// entrypoint, and nothing else: no shell, no libc. Building it again from
// the same binaries gives the same digest.
func (prog Program) Build(bins map[string][]byte) (v1.ImageIndex, error) {
	if len(bins) == 0 {
		return nil, fmt.Errorf("build %s image: %w: no binaries", prog.name(), gantry.ErrInvalidArgument)
	}
	platforms := make([]string, 0, len(bins))
	for p := range bins {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, ps := range platforms {
		p, err := parsePlatform(ps)
		if err != nil {
			return nil, fmt.Errorf("build %s image: %w", prog.name(), err)
		}
		if len(bins[ps]) == 0 {
			return nil, fmt.Errorf("build %s image: %w: the binary for %s is empty", prog.name(), gantry.ErrInvalidArgument, ps)
		}
		img, err := prog.platformImage(p, bins[ps])
		if err != nil {
			return nil, fmt.Errorf("build %s image for %s: %w", prog.name(), ps, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	// Compute the index now, so that a mistake shows here, not at Push.
	if _, err := idx.Digest(); err != nil {
		return nil, fmt.Errorf("build %s image: %w", prog.name(), err)
	}
	return idx, nil
}

// platformImage is the image for one platform.
func (prog Program) platformImage(p v1.Platform, bin []byte) (v1.Image, error) {
	al, err := newAgentLayer(prog.Path, bin)
	if err != nil {
		return nil, err
	}
	layer, err := partial.CompressedToLayer(al)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "gantry agentimage: " + prog.Path,
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS = p.OS
	cf.Architecture = p.Architecture
	cf.Variant = p.Variant
	cf.Config.Entrypoint = []string{prog.Path}
	cf.Config.Cmd = nil
	return mutate.ConfigFile(img, cf)
}

// agentLayer is the layer holding BinaryPath alone, gzipped in memory
// once, with both of its digests computed as it is made (so nothing
// decompresses it again to learn its diff ID).
type agentLayer struct {
	gz             []byte
	digest, diffID v1.Hash
}

// newAgentLayer writes the layer. Go's gzip writes no time or name into
// its header, so equal binaries give equal bytes. BestSpeed costs a tenth
// more bytes than the best compression and a fraction of the time.
func newAgentLayer(file string, bin []byte) (*agentLayer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tarSum := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, tarSum))
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(file, "/"),
		Mode:     0o755,
		Uname:    "root",
		Gname:    "root",
		Size:     int64(len(bin)),
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	l := &agentLayer{gz: gz.Bytes()}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(tarSum.Sum(nil))}
	sum := sha256.Sum256(l.gz)
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return l, nil
}

func (l *agentLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *agentLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *agentLayer) Size() (int64, error)     { return int64(len(l.gz)), nil }
func (l *agentLayer) MediaType() (types.MediaType, error) {
	return types.OCILayer, nil
}
func (l *agentLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}

// Push writes idx to the registry under ref, a repository with an optional
// tag (":latest" when it has none), and returns the digest reference that
// names exactly what was pushed, such as
// "europe-docker.pkg.dev/proj/repo/gantry-agent@sha256:…". opts go to
// go-containerregistry's remote.WriteIndex: pass credentials there (for
// example remote.WithAuthFromKeychain); without them the push is anonymous.
func Push(ctx context.Context, ref string, idx v1.ImageIndex, opts ...remote.Option) (string, error) {
	named, err := gantry.ParseImage(ref)
	if err != nil {
		return "", fmt.Errorf("push image: %w", err)
	}
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("push image: %w: %q has a digest; name a repository and optionally a tag",
			gantry.ErrInvalidArgument, ref)
	}
	tag, err := name.NewTag(named.String())
	if err != nil {
		return "", fmt.Errorf("push image: %w: %q: %v", gantry.ErrInvalidArgument, ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("push image to %s: %w", named, err)
	}
	all := append([]remote.Option{remote.WithContext(ctx)}, opts...)
	if err := remote.WriteIndex(tag, idx, all...); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return "", fmt.Errorf("push image to %s: %w", named, err)
	}
	return reference.TrimNamed(named).String() + "@" + d.String(), nil
}

// oneLine joins the lines of s, for an error message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
