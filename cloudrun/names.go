package cloudrun

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// A container's ID is 64 lowercase hex digits, as Docker's: 48 random ones
// followed by the 16 that name its job. The job ID is derived from the
// container's name ("gantry-" and 16 hex digits of the name's SHA-256), so
// that:
//   - two creates racing for one name race for one job ID, and Cloud Run
//     lets exactly one win (the other gets ALREADY_EXISTS: ErrConflict);
//   - a full ID or a name finds its job with a single GetJob;
//   - IDs of successive containers with the same name still differ.
const (
	idLen     = 64
	nameHash  = 16
	jobPrefix = "gantry-"
)

func nameDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])[:nameHash]
}

// jobIDForName returns the Cloud Run job ID of the container called name.
func jobIDForName(name string) string { return jobPrefix + nameDigest(name) }

// jobIDForID returns the job ID a full container ID points to.
func jobIDForID(id string) string { return jobPrefix + id[idLen-nameHash:] }

// newID returns a fresh container ID for a container called name.
func newID(name string) string {
	return randomHex((idLen-nameHash)/2) + nameDigest(name)
}

// newName returns a generated container name, for a spec without one.
func newName() string { return "gantry_" + randomHex(6) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// isFullID reports whether s has the shape of a container ID.
func isFullID(s string) bool { return len(s) == idLen && isHex(s) }

// shortID is the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
