package imageconfig

import (
	"fmt"
	"strings"

	"github.com/gantryhq/gantry"
)

// Platform names an operating system and CPU, as an image index lists
// them: "linux/amd64", "linux/arm64", "linux/arm/v7".
type Platform struct {
	OS           string
	Architecture string
	// Variant is the CPU variant, such as "v7" for arm; empty means the
	// architecture's default (v7 for arm, v8 for arm64, v1 for amd64).
	Variant string
}

// DefaultPlatform is the platform Cloud Run runs, and the one a zero
// Platform stands for.
var DefaultPlatform = Platform{OS: "linux", Architecture: "amd64"}

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch" or "os/arch/variant", as Docker's
// --platform does, in any case and with the usual aliases (x86_64 for
// amd64, aarch64 for arm64). The empty string is DefaultPlatform. A bad
// platform is an ErrInvalidArgument.
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		return DefaultPlatform, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("%w: platform %q: want os/arch or os/arch/variant, such as linux/amd64",
			gantry.ErrInvalidArgument, s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Platform{}, fmt.Errorf("%w: platform %q: the variant after the second / is empty",
				gantry.ErrInvalidArgument, s)
		}
		p.Variant = parts[2]
	}
	return p.normalize()
}

// normalize returns p in lower case with the architecture's usual name,
// or DefaultPlatform for the zero Platform, or an error when p cannot name
// a platform.
func (p Platform) normalize() (Platform, error) {
	if p == (Platform{}) {
		return DefaultPlatform, nil
	}
	for _, part := range []string{p.OS, p.Architecture, p.Variant} {
		if strings.IndexFunc(part, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) >= 0 {
			return Platform{}, fmt.Errorf("%w: platform %q: each part is letters, digits, _ and -",
				gantry.ErrInvalidArgument, p.String())
		}
	}
	if p.OS == "" || p.Architecture == "" {
		return Platform{}, fmt.Errorf("%w: platform %q: an OS and an architecture are both needed",
			gantry.ErrInvalidArgument, p.String())
	}
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "i386":
		p.Architecture = "386"
	}
	return p, nil
}

// matchKey is what two platforms must share to match: the variant is
// spelled out ("v8", not "8" or "") so that an index entry
// linux/arm64/v8 serves a request for linux/arm64, and the reverse.
func (p Platform) matchKey() string {
	n, err := p.normalize()
	if err != nil {
		return ""
	}
	v := n.Variant
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		v = "v" + v
	}
	if v == "" {
		v = map[string]string{"amd64": "v1", "arm": "v7", "arm64": "v8"}[n.Architecture]
	}
	return n.OS + "/" + n.Architecture + "/" + v
}
