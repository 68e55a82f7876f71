package imageconfig_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/imageconfig"
	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// counter is an http.RoundTripper that records the requests that reach
// the registry, as "METHOD /path".
type counter struct {
	mu   sync.Mutex
	reqs []string
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// since returns the requests made since the last call.
func (c *counter) since() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

func newResolver(t *testing.T, opts ...remote.Option) (*imageconfig.Resolver, *counter) {
	t.Helper()
	c := &counter{}
	r, err := imageconfig.New(append([]remote.Option{remote.WithTransport(c)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func digestOf(ref string) string { return ref[strings.LastIndex(ref, "@")+1:] }

var app = testregistry.Image{
	Entrypoint: []string{"/bin/app", "--config=/etc/app.yaml"},
	Cmd:        []string{"serve"},
	WorkingDir: "/srv",
	User:       "app:app",
	Env:        []string{"PATH=/usr/bin:/bin", "APP_MODE=prod"},
}

func TestConfigSingleImage(t *testing.T) {
	host := testregistry.Start(t)
	ref := testregistry.PushImage(t, host, "team/app:v1", app)
	r, _ := newResolver(t)
	for _, asked := range []string{host + "/team/app:v1", ref} {
		got, err := r.Config(context.Background(), asked, imageconfig.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		want := imageconfig.Config{
			Ref:         ref,
			Digest:      digestOf(ref),
			ImageDigest: digestOf(ref),
			Platform:    imageconfig.Platform{OS: "linux", Architecture: "amd64"},
			Entrypoint:  app.Entrypoint,
			Cmd:         app.Cmd,
			WorkingDir:  app.WorkingDir,
			User:        app.User,
			Env:         app.Env,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Config(%q) (-want +got):\n%s", asked, diff)
		}
	}
}

func TestConfigIndex(t *testing.T) {
	host := testregistry.Start(t)
	ref := testregistry.PushIndex(t, host, "multi:v1",
		testregistry.Image{Platform: "linux/arm64/v8", Cmd: []string{"arm64"}},
		testregistry.Image{Platform: "linux/amd64", Cmd: []string{"amd64"}, Env: []string{"A=1"}},
		testregistry.Image{Platform: "linux/arm/v7", Cmd: []string{"armv7"}},
		testregistry.Image{Platform: "linux/arm/v6", Cmd: []string{"armv6"}},
	)
	r, _ := newResolver(t)
	for platform, cmd := range map[string]string{
		"":               "amd64",
		"linux/amd64":    "amd64",
		"linux/x86_64":   "amd64",
		"linux/arm64":    "arm64",
		"linux/aarch64":  "arm64",
		"linux/arm64/v8": "arm64",
		"linux/arm":      "armv7",
		"linux/arm/7":    "armv7",
		"linux/arm/v6":   "armv6",
	} {
		p, err := imageconfig.ParsePlatform(platform)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Config(context.Background(), host+"/multi:v1", p)
		if err != nil {
			t.Fatalf("%s: %v", platform, err)
		}
		if len(got.Cmd) != 1 || got.Cmd[0] != cmd {
			t.Errorf("%s: Cmd = %q, want [%s]", platform, got.Cmd, cmd)
		}
		if got.Ref != ref || got.Digest != digestOf(ref) {
			t.Errorf("%s: Ref, Digest = %q, %q; want the index, %q", platform, got.Ref, got.Digest, ref)
		}
		if got.ImageDigest == got.Digest || !strings.HasPrefix(got.ImageDigest, "sha256:") {
			t.Errorf("%s: ImageDigest = %q, want the platform's manifest", platform, got.ImageDigest)
		}
	}
	amd, err := r.Config(context.Background(), ref, imageconfig.DefaultPlatform)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=1"}, amd.Env); diff != "" {
		t.Errorf("linux/amd64 Env (-want +got):\n%s", diff)
	}
}

// TestConfigCache proves what the cache saves, by the requests that reach
// the registry.
func TestConfigCache(t *testing.T) {
	host := testregistry.Start(t)
	ref := testregistry.PushIndex(t, host, "cached:v1",
		testregistry.Image{Cmd: []string{"one"}},
		testregistry.Image{Platform: "linux/arm64", Cmd: []string{"one-arm"}})
	r, c := newResolver(t)
	ctx := context.Background()
	tag := host + "/cached:v1"

	if _, err := r.Config(ctx, tag, imageconfig.Platform{}); err != nil {
		t.Fatal(err)
	}
	first := c.since()
	if len(first) < 4 {
		t.Fatalf("first Config made %d requests (%q); want the tag, the index, the manifest and the config", len(first), first)
	}

	if _, err := r.Config(ctx, tag, imageconfig.Platform{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"HEAD /v2/cached/manifests/v1"}, c.since()); diff != "" {
		t.Errorf("a known tag: requests (-want +got):\n%s", diff)
	}

	if _, err := r.Config(ctx, ref, imageconfig.Platform{}); err != nil {
		t.Fatal(err)
	}
	if got := c.since(); len(got) != 0 {
		t.Errorf("a known digest made requests %q; want none", got)
	}

	// Another platform of the same index is another config, read without
	// asking for the tag.
	got, err := r.Config(ctx, ref, imageconfig.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmd[0] != "one-arm" {
		t.Errorf("arm64 Cmd = %q", got.Cmd)
	}
	for _, req := range c.since() {
		if strings.HasPrefix(req, "HEAD ") {
			t.Errorf("a digest reference made %s", req)
		}
	}

	// The cache is by digest: a tag moved to another image is read anew.
	moved := testregistry.PushImage(t, host, "cached:v1", testregistry.Image{Cmd: []string{"two"}})
	got, err = r.Config(ctx, tag, imageconfig.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmd[0] != "two" || got.Ref != moved {
		t.Errorf("after the tag moved: Cmd %q, Ref %q; want [two], %q", got.Cmd, got.Ref, moved)
	}

	// What a caller does with a Config does not reach the cache.
	got.Cmd[0] = "changed"
	again, err := r.Config(ctx, moved, imageconfig.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Cmd[0] != "two" {
		t.Errorf("the cached Cmd became %q", again.Cmd)
	}
}

func TestConfigConcurrent(t *testing.T) {
	host := testregistry.Start(t)
	ref := testregistry.PushImage(t, host, "busy", app)
	r, _ := newResolver(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			asked := ref
			if i%2 == 0 {
				asked = host + "/busy"
			}
			c, err := r.Config(context.Background(), asked, imageconfig.Platform{})
			if err == nil && c.Ref != ref {
				err = fmt.Errorf("Ref %q, want %q", c.Ref, ref)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// checkErr checks that err wraps kind and says what it should, on one
// line.
func checkErr(t *testing.T, err, kind error, says ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v; want %v", err, kind)
	}
	msg := err.Error()
	t.Log(msg)
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
}

func TestConfigNoSuchPlatform(t *testing.T) {
	host := testregistry.Start(t)
	testregistry.PushIndex(t, host, "amd-only",
		testregistry.Image{},
		testregistry.Image{Platform: "linux/arm/v7"})
	testregistry.PushImage(t, host, "arm-only", testregistry.Image{Platform: "linux/arm64"})
	testregistry.PushImage(t, host, "unknown", testregistry.Image{Platform: "/"})
	r, _ := newResolver(t)
	ctx := context.Background()

	_, err := r.Config(ctx, host+"/amd-only", imageconfig.Platform{OS: "linux", Architecture: "arm64"})
	checkErr(t, err, gantry.ErrNotFound, host+"/amd-only", "linux/arm64", "linux/amd64, linux/arm/v7")
	var e *imageconfig.Error
	if !errors.As(err, &e) || e.Platform != "linux/arm64" {
		t.Errorf("error %#v; want an *Error for linux/arm64", err)
	}

	_, err = r.Config(ctx, host+"/amd-only", imageconfig.Platform{OS: "linux", Architecture: "arm", Variant: "v6"})
	checkErr(t, err, gantry.ErrNotFound, "linux/arm/v6")

	_, err = r.Config(ctx, host+"/arm-only", imageconfig.Platform{})
	checkErr(t, err, gantry.ErrNotFound, "linux/amd64", "is for linux/arm64 only")

	// An image whose config names no platform is taken for any.
	if _, err := r.Config(ctx, host+"/unknown", imageconfig.Platform{}); err != nil {
		t.Errorf("an image with no platform in its config: %v", err)
	}
}

func TestConfigNotFound(t *testing.T) {
	host := testregistry.Start(t)
	testregistry.PushImage(t, host, "there:v1", app)
	r, _ := newResolver(t)
	for _, ref := range []string{
		host + "/nowhere",
		host + "/there:v2",
		host + "/there@sha256:" + strings.Repeat("0", 64),
	} {
		_, err := r.Config(context.Background(), ref, imageconfig.Platform{})
		checkErr(t, err, gantry.ErrNotFound, fmt.Sprintf("image %q", ref), "no such repository, tag or digest")
		var te *transport.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: errors.As does not reach the registry's *transport.Error", ref)
		}
	}
}

// refuse is a registry in front of which, while locked is true, every
// request without the right basic credentials gets status, with a
// registry error body of code.
func refuse(status int, code string, locked *atomic.Bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !locked.Load() || ok && u == "user" && p == "secret" {
				h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"no"}]}`, code)
		})
	}
}

func locked() *atomic.Bool {
	var b atomic.Bool
	b.Store(true)
	return &b
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		says   string
	}{
		{http.StatusUnauthorized, "UNAUTHORIZED", "unauthorized"},
		{http.StatusForbidden, "DENIED", "denied"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			host := testregistry.StartHandler(t, refuse(tc.status, tc.code, locked()))
			r, _ := newResolver(t)
			_, err := r.Config(context.Background(), host+"/private:v1", imageconfig.Platform{})
			checkErr(t, err, gantry.ErrPermissionDenied, host+"/private:v1", tc.says)
		})
	}
}

// TestConfigCredentials: credentials given in the options replace the
// keychain, and reach the registry.
func TestConfigCredentials(t *testing.T) {
	var lock atomic.Bool
	host := testregistry.StartHandler(t, refuse(http.StatusUnauthorized, "UNAUTHORIZED", &lock))
	ref := testregistry.PushImage(t, host, "private:v1", app)
	lock.Store(true)

	anonymous, _ := newResolver(t)
	_, err := anonymous.Config(context.Background(), host+"/private:v1", imageconfig.Platform{})
	checkErr(t, err, gantry.ErrPermissionDenied)

	r, _ := newResolver(t, remote.WithAuth(&authn.Basic{Username: "user", Password: "secret"}))
	got, err := r.Config(context.Background(), host+"/private:v1", imageconfig.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref != ref {
		t.Errorf("Ref = %q, want %q", got.Ref, ref)
	}
}

func TestConfigUnavailable(t *testing.T) {
	ctx := context.Background()
	fast := remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 2})

	t.Run("connection closed", func(t *testing.T) {
		host := testregistry.StartHandler(t, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			})
		})
		r, _ := newResolver(t, fast)
		_, err := r.Config(ctx, host+"/app", imageconfig.Platform{})
		checkErr(t, err, gantry.ErrUnavailable, host+"/app", "cannot reach the registry")
	})

	t.Run("503 with an HTML page", func(t *testing.T) {
		host := testregistry.StartHandler(t, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "<html>\n<body>\n"+strings.Repeat("down for maintenance\n", 100)+"</body>\n</html>\n")
			})
		})
		r, _ := newResolver(t, fast)
		_, err := r.Config(ctx, host+"/app", imageconfig.Platform{})
		checkErr(t, err, gantry.ErrUnavailable, host+"/app")
		if len(err.Error()) > 600 {
			t.Errorf("error is %d bytes long: %q", len(err.Error()), err)
		}
	})

	t.Run("429", func(t *testing.T) {
		host := testregistry.StartHandler(t, refuse(http.StatusTooManyRequests, "TOOMANYREQUESTS", locked()))
		r, _ := newResolver(t, fast)
		_, err := r.Config(ctx, host+"/app", imageconfig.Platform{})
		checkErr(t, err, gantry.ErrResourceExhausted, "rate limit")
	})
}

func TestConfigInvalid(t *testing.T) {
	r, c := newResolver(t)
	ctx := context.Background()
	for _, ref := range []string{"", "Upper/Case", "a b", "registry.example/app:" + strings.Repeat("t", 200)} {
		_, err := r.Config(ctx, ref, imageconfig.Platform{})
		checkErr(t, err, gantry.ErrInvalidArgument)
	}
	for _, p := range []imageconfig.Platform{{OS: "linux"}, {Architecture: "amd64"}, {OS: "linux", Architecture: "amd/64"}} {
		_, err := r.Config(ctx, "busybox", p)
		checkErr(t, err, gantry.ErrInvalidArgument, `image "busybox"`)
	}
	if got := c.since(); len(got) != 0 {
		t.Errorf("invalid input made requests %q", got)
	}
}

func TestConfigCanceled(t *testing.T) {
	host := testregistry.Start(t)
	testregistry.PushImage(t, host, "app", app)
	r, _ := newResolver(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Config(ctx, host+"/app", imageconfig.Platform{})
	checkErr(t, err, context.Canceled, host+"/app")
}

// noDigestHeader hides the digest from HEAD responses, as some registries
// do.
type noDigestHeader struct{ http.ResponseWriter }

func (w noDigestHeader) WriteHeader(code int) {
	w.Header().Del("Docker-Content-Digest")
	w.ResponseWriter.WriteHeader(code)
}

func TestConfigHeadWithoutDigest(t *testing.T) {
	host := testregistry.StartHandler(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w = noDigestHeader{w}
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := testregistry.PushImage(t, host, "app:v1", app)
	r, c := newResolver(t)
	got, err := r.Config(context.Background(), host+"/app:v1", imageconfig.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref != ref || got.Cmd[0] != "serve" {
		t.Errorf("Config = %+v; want %s", got, ref)
	}
	var heads, gets int
	for _, req := range c.since() {
		switch {
		case strings.HasPrefix(req, "HEAD /v2/app/manifests/v1"):
			heads++
		case strings.HasPrefix(req, "GET /v2/app/manifests/v1"):
			gets++
		}
	}
	if heads != 1 || gets != 1 {
		t.Errorf("HEAD, GET of the tag: %d, %d; want 1, 1 (a GET after the HEAD without a digest)", heads, gets)
	}
}
