// Package imageconfig reads what an image's own config says to run (its
// ENTRYPOINT, CMD, WORKDIR, USER and ENV) from the image's registry, for
// backends that must know a container's real command when its spec does
// not give one: the Cloud Run backend puts the agent in front of that
// command, so it has to spell the command out.
//
// A Resolver speaks the registry protocol with go-containerregistry,
// finding credentials with Keychain (Google's, for Artifact Registry and
// Container Registry, then the Docker config's, for Docker Hub and the
// rest), and keeps what it read by digest:
//
//	r, err := imageconfig.New()
//	...
//	cfg, err := r.Config(ctx, "busybox", imageconfig.Platform{}) // linux/amd64
//	// cfg.Cmd == ["sh"], cfg.Ref == "docker.io/library/busybox@sha256:…"
//
// A tag costs one HEAD request once its image is known; a digest
// reference costs none. Errors name the image, say why in one line and
// wrap one of gantry's sentinels (ErrNotFound, ErrPermissionDenied,
// ErrInvalidArgument, ErrResourceExhausted, ErrUnavailable) and the
// registry's own error.
package imageconfig

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/gantryhq/gantry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/google"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Keychain finds registry credentials: Google's application default
// credentials for Google's registries (*.pkg.dev, gcr.io), then the Docker
// config (~/.docker/config.json and its credential helpers) for every
// other registry, and anonymous access when neither has any.
var Keychain = authn.NewMultiKeychain(google.Keychain, authn.DefaultKeychain)

// Config is what an image's config says to run, and which image that is.
type Config struct {
	// Ref is the digest reference of what was asked for, such as
	// "docker.io/library/busybox@sha256:…": for a multi-platform image,
	// its index. Running Ref runs exactly the image this Config describes.
	Ref string
	// Digest is the digest of what the reference named: an index or an
	// image manifest.
	Digest string
	// ImageDigest is the digest of the platform's image manifest; the
	// same as Digest when the reference named an image, not an index.
	ImageDigest string
	// Platform is the image's platform as its config gives it (empty
	// fields when the config does not say).
	Platform Platform

	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	// Env is the image's environment, "KEY=value" in the image's order.
	Env []string
}

func (c Config) clone() Config {
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Env = slices.Clone(c.Env)
	return c
}

// cacheSize is how many configs a Resolver keeps: far more images than a
// program runs, and a few hundred kilobytes at most.
const cacheSize = 1024

// A Resolver reads image configs from registries and keeps them. It is
// safe for concurrent use. Two first calls for one image at the same time
// may both read it; after that, the cache answers.
type Resolver struct {
	puller *remote.Puller

	mu    sync.Mutex
	cache map[cacheKey]*list.Element // of *entry
	lru   list.List                  // most recently used at the front
}

// cacheKey names a config: the repository (credentials are per
// repository, so one repository's image is not served to a caller of
// another), the digest the reference resolved to, and the platform.
type cacheKey struct {
	repo, digest, platform string
}

type entry struct {
	key cacheKey
	cfg Config
}

// New returns a Resolver that talks to registries with opts, which are
// go-containerregistry's remote options (a transport, a user agent, retry
// settings, credentials). Unless opts carry credentials of their own
// (remote.WithAuth or remote.WithAuthFromKeychain), it finds them with
// Keychain.
func New(opts ...remote.Option) (*Resolver, error) {
	p, err := remote.NewPuller(append([]remote.Option{remote.WithAuthFromKeychain(Keychain)}, opts...)...)
	if err != nil {
		// The only way adding a keychain fails is opts holding an
		// authenticator already: use it alone.
		p, err = remote.NewPuller(opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("imageconfig: %w", err)
	}
	return &Resolver{puller: p, cache: map[cacheKey]*list.Element{}}, nil
}

// Config returns the config of the image ref names for platform (the zero
// Platform is DefaultPlatform, linux/amd64). ref is a Docker reference,
// normalised as Docker does ("busybox" is
// "docker.io/library/busybox:latest"). When ref names an index, Config
// reads the image the index lists for platform; when it names a single
// image whose config declares another platform, that is an ErrNotFound,
// as it is for an index without the platform.
func (r *Resolver) Config(ctx context.Context, ref string, platform Platform) (Config, error) {
	p, err := platform.normalize()
	if err != nil {
		return Config{}, &Error{Image: ref, Err: err}
	}
	named, nref, err := parseRef(ref)
	if err != nil {
		return Config{}, err
	}
	var digest string
	if d, ok := nref.(name.Digest); ok {
		digest = d.DigestStr()
	} else {
		desc, err := r.puller.Head(ctx, nref)
		if err != nil && headUnusable(ctx, err) {
			var got *remote.Descriptor
			if got, err = r.puller.Get(ctx, nref); err == nil {
				desc = &got.Descriptor
			}
		}
		if err != nil {
			return Config{}, r.registryError(ctx, ref, err)
		}
		digest = desc.Digest.String()
	}
	key := cacheKey{repo: nref.Context().Name(), digest: digest, platform: p.matchKey()}
	if c, ok := r.get(key); ok {
		return c, nil
	}
	c, err := r.fetch(ctx, ref, nref.Context().Digest(digest), p)
	if err != nil {
		return Config{}, err
	}
	c.Ref = reference.TrimNamed(named).String() + "@" + digest
	r.put(key, c)
	return c.clone(), nil
}

// headUnusable reports whether err, from a HEAD request for a manifest,
// is a registry answering HEAD without what it should (a digest header, a
// length), rather than a refusal or a network failure; a GET may succeed.
func headUnusable(ctx context.Context, err error) bool {
	var te *transport.Error
	var ne net.Error
	return ctx.Err() == nil && !errors.As(err, &te) && !errors.As(err, &ne)
}

// parseRef reads ref with Docker's grammar and defaults, then as
// go-containerregistry's reference. A bad reference is a
// *gantry.FieldError, an ErrInvalidArgument that names it.
func parseRef(ref string) (reference.Named, name.Reference, error) {
	named, err := gantry.ParseImage(ref)
	if err != nil {
		return nil, nil, err
	}
	s := named.String()
	if c, ok := named.(reference.Canonical); ok {
		// A digest decides; a tag beside it says nothing more.
		s = reference.TrimNamed(named).String() + "@" + c.Digest().String()
	}
	nref, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		return nil, nil, &gantry.FieldError{Field: "Image", Value: ref, Reason: err.Error()}
	}
	return named, nref, nil
}

// fetch reads the config of the image dref (a manifest or an index) has
// for platform p.
func (r *Resolver) fetch(ctx context.Context, ref string, dref name.Digest, p Platform) (Config, error) {
	desc, err := r.puller.Get(ctx, dref)
	if err != nil {
		return Config{}, r.registryError(ctx, ref, err)
	}
	c := Config{Digest: desc.Digest.String()}
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return Config{}, r.registryError(ctx, ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Config{}, r.registryError(ctx, ref, err)
		}
		child, err := choose(im, p)
		if err != nil {
			return Config{}, &Error{Image: ref, Platform: p.String(), Kind: gantry.ErrNotFound, Reason: err.Error()}
		}
		if !child.MediaType.IsImage() {
			return Config{}, &Error{Image: ref, Platform: p.String(), Kind: gantry.ErrInvalidArgument,
				Reason: fmt.Sprintf("its index lists a %s for the platform, not an image manifest", child.MediaType)}
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return Config{}, r.registryError(ctx, ref, err)
		}
		c.ImageDigest = child.Digest.String()
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return Config{}, r.registryError(ctx, ref, err)
		}
		c.ImageDigest = c.Digest
	default:
		return Config{}, &Error{Image: ref, Kind: gantry.ErrInvalidArgument,
			Reason: fmt.Sprintf("not a container image: its manifest is a %s", desc.MediaType)}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Config{}, r.registryError(ctx, ref, err)
	}
	c.Platform = Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if desc.MediaType.IsImage() && cf.OS != "" && cf.Architecture != "" && c.Platform.matchKey() != p.matchKey() {
		return Config{}, &Error{Image: ref, Platform: p.String(), Kind: gantry.ErrNotFound,
			Reason: "the image is for " + c.Platform.String() + " only"}
	}
	c.Entrypoint = cf.Config.Entrypoint
	c.Cmd = cf.Config.Cmd
	c.WorkingDir = cf.Config.WorkingDir
	c.User = cf.Config.User
	c.Env = cf.Config.Env
	return c, nil
}

// choose returns the first image im lists for p, or an error that says
// which platforms it has.
func choose(im *v1.IndexManifest, p Platform) (v1.Descriptor, error) {
	want := p.matchKey()
	var has []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		dp := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
		if dp.matchKey() == want {
			return d, nil
		}
		if s := dp.String(); dp.OS != "unknown" && !slices.Contains(has, s) {
			has = append(has, s)
		}
	}
	if len(has) == 0 {
		return v1.Descriptor{}, errors.New("its index lists no platform")
	}
	return v1.Descriptor{}, fmt.Errorf("its index has no image for the platform, only for %s", strings.Join(has, ", "))
}

func (r *Resolver) get(k cacheKey) (Config, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.cache[k]
	if !ok {
		return Config{}, false
	}
	r.lru.MoveToFront(el)
	return el.Value.(*entry).cfg.clone(), true
}

func (r *Resolver) put(k cacheKey, c Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.cache[k]; ok {
		el.Value.(*entry).cfg = c
		r.lru.MoveToFront(el)
		return
	}
	r.cache[k] = r.lru.PushFront(&entry{key: k, cfg: c})
	for r.lru.Len() > cacheSize {
		el := r.lru.Back()
		r.lru.Remove(el)
		delete(r.cache, el.Value.(*entry).key)
	}
}

// registryError classifies an error from reading ref.
func (r *Resolver) registryError(ctx context.Context, ref string, err error) error {
	e := &Error{Image: ref, Err: err}
	if ctx.Err() != nil {
		e.Kind = ctx.Err()
		return e
	}
	f := classify(err)
	e.Kind, e.Reason = f.kind, f.reason
	return e
}

// failure is which of gantry's sentinels an error is, and why in words.
type failure struct {
	kind   error
	reason string
}

// classify says what failure err is.
func classify(err error) failure {
	var te *transport.Error
	if errors.As(err, &te) {
		code := func(codes ...transport.ErrorCode) bool {
			for _, d := range te.Errors {
				if slices.Contains(codes, d.Code) {
					return true
				}
			}
			return false
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || code(transport.UnauthorizedErrorCode):
			return failure{gantry.ErrPermissionDenied, "unauthorized: the registry wants credentials it was not given or refused the ones it got;" +
				" some registries say this of a repository that does not exist too"}
		case te.StatusCode == http.StatusForbidden || code(transport.DeniedErrorCode):
			return failure{gantry.ErrPermissionDenied, "denied: these credentials may not pull this image"}
		case te.StatusCode == http.StatusNotFound ||
			code(transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
			return failure{gantry.ErrNotFound, "the registry has no such repository, tag or digest"}
		case te.StatusCode == http.StatusTooManyRequests || code(transport.TooManyRequestsErrorCode):
			return failure{gantry.ErrResourceExhausted, "the registry's rate limit was reached"}
		case te.StatusCode == http.StatusBadRequest ||
			code(transport.NameInvalidErrorCode, transport.TagInvalidErrorCode, transport.DigestInvalidErrorCode):
			return failure{gantry.ErrInvalidArgument, "the registry refused the reference"}
		}
		return failure{gantry.ErrUnavailable, "the registry failed"}
	}
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	switch {
	case errors.Is(err, remote.ErrSchema1):
		return failure{gantry.ErrInvalidArgument, "a Docker schema 1 image, which is not supported; push it again with a current tool"}
	case errors.As(err, &se) || errors.As(err, &ue):
		return failure{gantry.ErrInvalidArgument, "the image's manifest or config is malformed"}
	}
	var ne net.Error // *url.Error is one too
	if errors.As(err, &ne) {
		return failure{gantry.ErrUnavailable, "cannot reach the registry"}
	}
	return failure{gantry.ErrUnavailable, "reading it from the registry failed"}
}

// Error is the error Config returns: which image (and platform), what
// kind of failure, and why.
type Error struct {
	// Image is the reference as the caller gave it.
	Image string
	// Platform is set when the failure concerns the platform.
	Platform string
	// Kind is one of gantry's sentinels, or the context's error when the
	// context ended; nil when Err is itself a gantry error that says which.
	Kind error
	// Reason says why in words; it may be empty.
	Reason string
	// Err is the underlying error, such as the registry's
	// *transport.Error; it may be nil.
	Err error
}

// maxDetail bounds how much of the underlying error a message repeats:
// a registry's error body can be a whole HTML page.
const maxDetail = 300

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "image %q", e.Image)
	if e.Platform != "" {
		b.WriteString(" for " + e.Platform)
	}
	if e.Kind != nil {
		b.WriteString(": " + e.Kind.Error())
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Err != nil {
		detail := strings.Join(strings.Fields(e.Err.Error()), " ")
		if len(detail) > maxDetail {
			detail = strings.ToValidUTF8(detail[:maxDetail], "") + "…"
		}
		if e.Reason == "" {
			b.WriteString(": " + detail)
		} else {
			b.WriteString(" (" + detail + ")")
		}
	}
	return b.String()
}

// Unwrap returns the kind and the underlying error, for errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
