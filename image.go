package gantry

import (
	"errors"
	"strings"

	"github.com/distribution/reference"
)

// ValidateImage checks an image reference with the grammar of the
// distribution project, which Docker itself uses:
// [registry[:port]/]repository[:tag][@digest], with a lowercase repository.
// It returns a *FieldError for field "Image".
func ValidateImage(ref string) error {
	_, err := ParseImage(ref)
	return err
}

// ParseImage parses an image reference as Docker does, filling in what
// Docker fills in: the docker.io registry, the library/ namespace of an
// official image and the latest tag when there is no tag or digest. A
// malformed reference is a *FieldError for field "Image".
func ParseImage(ref string) (reference.Named, error) {
	bad := func(reason string) error { return &FieldError{Field: "Image", Value: ref, Reason: reason} }
	if ref == "" {
		return nil, bad("an image is required")
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, bad(imageReason(err))
	}
	return reference.TagNameOnly(named), nil
}

// imageReason says in words what the distribution grammar refused.
func imageReason(err error) string {
	switch {
	case errors.Is(err, reference.ErrNameContainsUppercase):
		return "the repository must be lowercase"
	case errors.Is(err, reference.ErrTagInvalidFormat):
		return "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -"
	case errors.Is(err, reference.ErrDigestInvalidFormat):
		return "a digest is algorithm:hex, such as sha256: and 64 hex digits"
	case errors.Is(err, reference.ErrNameTooLong):
		return "the repository name is longer than 255 characters"
	case errors.Is(err, reference.ErrNameEmpty):
		return "the repository name is empty"
	}
	return "not a valid reference: want [registry[:port]/]repository[:tag][@digest], " +
		"with path components of lowercase letters and digits separated by ., _, __ or -" +
		" (" + strings.TrimPrefix(err.Error(), "invalid reference format: ") + ")"
}

// NormalizeImage returns the reference Docker would pull for ref, such as
// "docker.io/library/busybox:latest" for "busybox". Two specs name the same
// image when their normalised references are equal.
func NormalizeImage(ref string) (string, error) {
	named, err := ParseImage(ref)
	if err != nil {
		return "", err
	}
	return named.String(), nil
}
