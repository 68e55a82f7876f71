// Package naming makes the IDs and names of the containers the cloud
// backends create, and the resource IDs they are stored under.
//
// A container's ID is 64 lowercase hex digits, as Docker's: 48 random ones
// followed by 16 that name its cloud resource. The resource ID is derived
// from the container's name (a backend's prefix and 16 hex digits of the
// name's SHA-256), so that:
//
//   - two creates racing for one name race for one resource ID, and the
//     cloud lets exactly one win (the other gets ALREADY_EXISTS);
//
//   - a full ID or a name finds its resource with a single read;
//
//   - IDs of successive containers with the same name still differ.
//
//     id := naming.NewID("web")
//     job := naming.ResourceForName("gantry-", "web") // == naming.ResourceForID("gantry-", id)
package naming

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	// IDLen is the length of a full container ID.
	IDLen = 64
	// nameHash is how many hex digits of the name's digest end the ID.
	nameHash = 16
)

func nameDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])[:nameHash]
}

// ResourceForName returns the resource ID, under prefix, of the container
// called name.
func ResourceForName(prefix, name string) string { return prefix + nameDigest(name) }

// ResourceForID returns the resource ID, under prefix, that a full
// container ID points to.
func ResourceForID(prefix, id string) string { return prefix + id[IDLen-nameHash:] }

// NewID returns a fresh container ID for a container called name.
func NewID(name string) string { return RandomHex((IDLen-nameHash)/2) + nameDigest(name) }

// NewName returns a generated container name, for a spec without one.
func NewName() string { return "gantry_" + RandomHex(6) }

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// IsHex reports whether s is a non-empty string of lowercase hex digits.
func IsHex(s string) bool { return s != "" && strings.Trim(s, "0123456789abcdef") == "" }

// IsFullID reports whether s has the shape of a container ID.
func IsFullID(s string) bool { return len(s) == IDLen && IsHex(s) }

// ShortID is the 12-character form of an ID that Docker prints.
func ShortID(id string) string { return id[:min(12, len(id))] }
