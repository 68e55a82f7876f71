package agentimage

import (
	"errors"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestGoEnv(t *testing.T) {
	for p, want := range map[string][]string{
		"linux/amd64":    {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"},
		"linux/amd64/v3": {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v3"},
		"linux/arm64/v8": {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"},
		"linux/arm/v7":   {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"},
		"darwin/arm64":   {"CGO_ENABLED=0", "GOOS=darwin", "GOARCH=arm64"},
	} {
		got, err := goEnv(p)
		if err != nil || len(got) != len(want) {
			t.Errorf("goEnv(%q) = %q, %v; want %q", p, got, err, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("goEnv(%q) = %q, want %q", p, got, want)
				break
			}
		}
	}
}

func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "linux", "", "/", "a/b/c/d", "Linux/AMD64", "linux/amd64:10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePlatform(s)
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("parsePlatform(%q) = %v, not an ErrInvalidArgument", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("parsePlatform(%q) = %v, which reads %q", s, p, p.String())
		}
	})
}
