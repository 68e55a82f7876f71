package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// wwwEnv names the directory scriptHTTPD serves. The test gives a path in
// its own temporary directory: a server that is a process of this host
// (the fake's, the emulator's) writes its files there, where the test's
// end removes them, and one in a container writes them in the
// container's file system, which goes with it.
const wwwEnv = "RUNTIMETEST_WWW"

// scriptHTTPD serves the directory $RUNTIMETEST_WWW over HTTP on port,
// with busybox's httpd where busybox is on the PATH and httpd otherwise.
// It makes the directory and writes the files first: /hello.txt says
// hello from token, /data/items.txt holds three lines. The server logs
// each request to stderr (-vv): "url:/path", then "response:404".
func scriptHTTPD(port int, token string) string {
	return fmt.Sprintf(`set -e
mkdir -p "$%[3]s/data"
cd "$%[3]s"
printf 'hello from %%s\n' %[2]s >hello.txt
printf 'one\ntwo\nthree\n' >data/items.txt
echo "serving $PWD on port %[1]d"
if command -v busybox >/dev/null; then exec busybox httpd -f -vv -p %[1]d -h .; fi
exec httpd -f -vv -p %[1]d -h .`, port, token, wwwEnv)
}

// serveSpec is s.spec of script labelled tag, declaring port in
// Spec.Ports where the backend takes ports, as portSpec does.
func (s *suite) serveSpec(tag, script string, port int) gantry.Spec {
	spec := s.spec(tag, script)
	if s.caps.Supported(gantry.FeaturePorts) {
		spec.Ports = []gantry.Port{{Port: port}}
	}
	return spec
}

// fetch GETs url with client and returns the status and the body.
func fetch(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(body), fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}

// testServe is a test a user of the helpers would write, on every backend
// that can reach a container's port: RunContainer starts a server and
// waits until it answers HTTP, the test talks to it through
// HTTPEndpoint, and nothing is left once the test's cleanups have run.
// It also holds the helpers to the failures such a test meets.
func (s *suite) testServe(t *testing.T) {
	s.require(t, gantry.FeaturePortForward)

	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		port := freePort(t)
		var id, endpoint string
		// The user's test is a subtest, so that its cleanups (the
		// helpers') have run when t.Run returns, and what they left can
		// be looked at.
		t.Run("User", func(t *testing.T) {
			spec := s.serveSpec(tag, scriptHTTPD(port, tag), port)
			spec.Env = []string{wwwEnv + "=" + filepath.Join(t.TempDir(), "www")}
			hello := "hello from " + tag + "\n"
			c := RunContainer(t, rt, spec, WaitingFor(
				ForHTTP(port, "/hello.txt").WithBodyContaining(hello).WithTimeout(s.patience).WithPollInterval(50*time.Millisecond),
			))
			id = c.ID
			if !c.State.Running {
				t.Fatalf("RunContainer returned a container in state %+v, want it running", c.State)
			}
			base := HTTPEndpoint(t, rt, c.ID, port)
			endpoint = strings.TrimPrefix(base, "http://")
			client := &http.Client{Timeout: s.patience}
			defer client.CloseIdleConnections()
			ctx := s.ctx(t)
			check := func(path string, wantCode int, wantBody string) {
				t.Helper()
				code, body, err := fetch(ctx, client, base+path)
				if err != nil {
					t.Errorf("GET %s: %v%s", path, err, lastLines(rt, c.ID))
					return
				}
				if code != wantCode || wantBody != "" && body != wantBody {
					t.Errorf("GET %s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
				}
			}
			// Requests one after the other, each on a connection of its
			// own (the server closes each), then several at once.
			for range 3 {
				check("/hello.txt", http.StatusOK, hello)
			}
			check("/data/items.txt", http.StatusOK, "one\ntwo\nthree\n")
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					code, body, err := fetch(ctx, client, base+"/hello.txt")
					if err != nil || code != http.StatusOK || body != hello {
						t.Errorf("GET /hello.txt, %d of 4 at once: %d %q, %v; want 200 %q", i+1, code, body, err, hello)
					}
				})
			}
			wg.Wait()
			check("/missing.txt", http.StatusNotFound, "")
			// The answers came from the server in this container: it
			// logged the requests.
			RequireLog(t, rt, c.ID, "url:/missing.txt", s.patience)
		})

		// The cleanups removed the container and closed the forward.
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("containers left once the test's cleanups ran: %q", ids)
		}
		if id != "" {
			if _, err := rt.Inspect(s.ctx(t), id); !errors.Is(err, gantry.ErrNotFound) {
				t.Errorf("Inspect(%s) once the test's cleanups ran: %v, want ErrNotFound", id, err)
			}
		}
		if endpoint != "" {
			if conn, err := net.DialTimeout("tcp", endpoint, 5*time.Second); err == nil {
				conn.Close()
				t.Errorf("the endpoint %s accepts connections once the test's cleanups ran", endpoint)
			}
		}
		// A server that was a process of this host (the fake's, Docker's
		// on the host's network, the emulator's) went with its container.
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err := s.poll(s.ctx(t), func() (bool, error) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return true, nil
			}
			conn.Close()
			return false, fmt.Errorf("%s still accepts connections", addr)
		})
		if err != nil {
			t.Errorf("once the container was removed: %v", err)
		}
	})

	t.Run("WaitTimesOut", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		port := freePort(t)
		// The container runs, but nothing serves its port.
		spec := s.serveSpec(tag, `echo booting; echo "no server here" >&2; while :; do sleep 0.1; done`, port)
		timeout := time.Second + s.h.Latency
		w := ForHTTP(port, "/hello.txt").WithTimeout(timeout).WithPollInterval(100 * time.Millisecond)
		rec := &recorder{TB: t}
		began := time.Now()
		rec.run(func() { RunContainer(rec, rt, spec, WaitingFor(w)) })
		took := time.Since(began)
		rec.cleanup()
		if len(rec.errs) > 0 {
			t.Errorf("cleanup reported %q", rec.errs)
		}
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("containers left once the failed test's cleanups ran: %q", ids)
		}
		var we *WaitError
		if !errors.As(fatalErr(rec), &we) {
			t.Fatalf("RunContainer failed with %q, want a *WaitError", rec.fatal)
		}
		if took < timeout {
			t.Errorf("RunContainer gave up after %v, before the strategy's timeout of %v", took, timeout)
		}
		if we.Name != spec.Name || we.ID == "" {
			t.Errorf("WaitError names container %q (%q), want %q", we.Name, we.ID, spec.Name)
		}
		if want := fmt.Sprintf("HTTP GET /hello.txt on port %d", port); we.Strategy != w.String() || !strings.Contains(we.Strategy, want) {
			t.Errorf("WaitError.Strategy = %q, want %q, which says %q", we.Strategy, w.String(), want)
		}
		if !errors.Is(we, context.DeadlineExceeded) {
			t.Errorf("WaitError.Err = %v, want a timeout (context.DeadlineExceeded)", we.Err)
		}
		if we.Seen == "" {
			t.Error("WaitError.Seen is empty: the requests to a port nothing serves saw nothing")
		}
		if got := lines(we.Logs, 0); !slices.Contains(got, "booting") || !slices.Contains(got, "no server here") {
			t.Errorf("WaitError.Logs = %q, want the container's lines", got)
		}
		for _, want := range []string{"not ready: waiting for " + w.String(), "timed out after " + timeout.String(), "last saw: ", "stdout: booting", "stderr: no server here"} {
			if !strings.Contains(rec.fatal, want) {
				t.Errorf("RunContainer's failure %q does not say %q", rec.fatal, want)
			}
		}
	})

	t.Run("ServerExits", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		port := freePort(t)
		spec := s.serveSpec(tag, `echo "cannot serve" >&2; exit 3`, port)
		// The timeout is the suite's patience: the exit, not the timeout,
		// must end the wait.
		w := ForHTTP(port, "/").WithTimeout(s.patience)
		rec := &recorder{TB: t}
		rec.run(func() { RunContainer(rec, rt, spec, WaitingFor(w)) })
		rec.cleanup()
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("containers left once the failed test's cleanups ran: %q", ids)
		}
		var we *WaitError
		if !errors.As(fatalErr(rec), &we) {
			t.Fatalf("RunContainer failed with %q, want a *WaitError", rec.fatal)
		}
		if !errors.Is(we, ErrStopped) || errors.Is(we, context.DeadlineExceeded) {
			t.Errorf("WaitError.Err = %v, want ErrStopped", we.Err)
		}
		for _, want := range []string{w.String(), "exit code 3", "stderr: cannot serve"} {
			if !strings.Contains(rec.fatal, want) {
				t.Errorf("RunContainer's failure %q does not say %q", rec.fatal, want)
			}
		}
	})
}

// fatalErr returns the error a recorder's Fatal was given alone, or nil.
func fatalErr(r *recorder) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fatalArgs) != 1 {
		return nil
	}
	err, _ := r.fatalArgs[0].(error)
	return err
}
