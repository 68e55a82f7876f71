// Package naming makes the IDs and names of the containers the cloud
// backends create and the resource IDs they are stored under, and finds a
// container from what a caller names it by (Lookup).
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
	"fmt"
	"strings"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
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

// Lookup finds the container that id names, as Docker does: a full ID,
// then a name (Docker's leading slash allowed), then a unique ID prefix.
// get reads the one resource a full ID or a name points to (under
// prefix), reporting false when there is none or it is not gantry's; list
// returns every container with its record, for a prefix search. An empty
// id or an ambiguous prefix is gantry.ErrInvalidArgument, no match
// gantry.ErrNotFound.
func Lookup[T any](id, prefix string, get func(resource string) (T, meta.Record, bool, error), list func() ([]T, []meta.Record, error)) (T, error) {
	var none T
	if id == "" {
		return none, fmt.Errorf("%w: empty container ID or name", gantry.ErrInvalidArgument)
	}
	if name, ok := strings.CutPrefix(id, "/"); ok && gantry.ValidName(name) {
		id = name
	}
	try := func(resource string, match func(meta.Record) bool) (T, bool, error) {
		v, rec, ok, err := get(resource)
		if err != nil || !ok || !match(rec) {
			return none, false, err
		}
		return v, true, nil
	}
	if IsFullID(id) {
		if v, ok, err := try(ResourceForID(prefix, id), func(rec meta.Record) bool { return rec.ID == id }); ok || err != nil {
			return v, err
		}
	}
	if gantry.ValidName(id) {
		if v, ok, err := try(ResourceForName(prefix, id), func(rec meta.Record) bool { return rec.Name == id }); ok || err != nil {
			return v, err
		}
	}
	if IsHex(id) && len(id) < IDLen {
		all, recs, err := list()
		if err != nil {
			return none, err
		}
		found := -1
		for i, rec := range recs {
			if !strings.HasPrefix(rec.ID, id) {
				continue
			}
			if found >= 0 {
				return none, fmt.Errorf("%w: ID prefix %q matches more than one container", gantry.ErrInvalidArgument, id)
			}
			found = i
		}
		if found >= 0 {
			return all[found], nil
		}
	}
	if !IsHex(id) && !gantry.ValidName(id) {
		return none, fmt.Errorf("%w: no such container: %q is neither a container ID nor a valid name", gantry.ErrNotFound, id)
	}
	return none, fmt.Errorf("%w: no such container: %s", gantry.ErrNotFound, id)
}
