package imageconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseRef(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ in, registry, repo, id string }{
		{"busybox", "index.docker.io", "library/busybox", "latest"},
		{"docker.io/library/busybox:1.36", "index.docker.io", "library/busybox", "1.36"},
		{"someone/app", "index.docker.io", "someone/app", "latest"},
		{"europe-docker.pkg.dev/proj/repo/app:v2", "europe-docker.pkg.dev", "proj/repo/app", "v2"},
		{"localhost:5000/app@" + digest, "localhost:5000", "app", digest},
		{"busybox:1.36@" + digest, "index.docker.io", "library/busybox", digest},
	} {
		_, ref, err := parseRef(tc.in)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tc.in, err)
			continue
		}
		if ref.Context().RegistryStr() != tc.registry || ref.Context().RepositoryStr() != tc.repo || ref.Identifier() != tc.id {
			t.Errorf("parseRef(%q) = %s %s %s; want %s %s %s", tc.in,
				ref.Context().RegistryStr(), ref.Context().RepositoryStr(), ref.Identifier(), tc.registry, tc.repo, tc.id)
		}
	}
}

// FuzzParseRef: any string is refused as an ErrInvalidArgument or gives
// a reference whose repository and identifier read back to themselves.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"busybox", "a/b:c", "localhost:5000/x@sha256:" + strings.Repeat("0", 64),
		"busybox:1@sha256:" + strings.Repeat("1", 64), "", ":", "@", "UPPER", "a//b", "[::1]:5000/x", "x:" + strings.Repeat("t", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		named, ref, err := parseRef(s)
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("parseRef(%q) = %v, not an ErrInvalidArgument", s, err)
			}
			return
		}
		if named == nil || ref == nil {
			t.Fatalf("parseRef(%q) gave nil without an error", s)
		}
		again, err := name.ParseReference(ref.Name(), name.StrictValidation)
		if err != nil || again.Name() != ref.Name() {
			t.Fatalf("parseRef(%q) = %q, which reads back as %v, %v", s, ref.Name(), again, err)
		}
	})
}

// FuzzParsePlatform: a platform that parses prints as a string that
// parses to itself.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "Linux/X86_64", "", "/", "linux", "a/b/c/d", "linux/arm64/", "linux/amd64:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("ParsePlatform(%q) = %v, not an ErrInvalidArgument", s, err)
			}
			return
		}
		again, err := ParsePlatform(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePlatform(%q) = %v; its String %q parses to %v, %v", s, p, p.String(), again, err)
		}
		if p.matchKey() == "" {
			t.Fatalf("ParsePlatform(%q) = %v, which has no match key", s, p)
		}
	})
}

// FuzzChoose: any index a registry serves gives a matching image or an
// error, never a panic or a mismatch.
func FuzzChoose(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`), "linux/amd64")
	f.Add([]byte(`{"manifests":[{"platform":{"os":"linux","architecture":"arm","variant":"7"}},{"platform":null}]}`), "linux/arm")
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, platform string) {
		p, err := ParsePlatform(platform)
		if err != nil {
			return
		}
		im, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
		if err != nil {
			return
		}
		d, err := choose(im, p)
		if err != nil {
			return
		}
		got := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
		if got.matchKey() != p.matchKey() {
			t.Fatalf("choose(%s) = %v", p, got)
		}
	})
}
