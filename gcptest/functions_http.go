package gcptest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"google.golang.org/genproto/googleapis/api/monitoredres"

	"github.com/gantryhq/gantry"
)

// serveHTTP serves the room's HTTP listener: PUT /upload/{bucket}/{object}
// stores a source archive at a signed upload URL; anything under
// /{project}/{location}/{function}/ goes to that function.
func (w *functionsWiring) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/upload/"); ok {
		w.serveUpload(rw, r, rest)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 4)
	if len(parts) < 3 {
		http.NotFound(rw, r)
		return
	}
	name := functionName{location{parts[0], parts[1]}, parts[2]}
	rest := "/"
	if len(parts) == 4 {
		rest += parts[3]
	}
	w.serveFunction(rw, r, name, rest)
}

// serveUpload takes the archive for an object GenerateUploadUrl signed a
// URL for: a PUT with Content-Type application/zip, as Google's signed
// URLs for function sources require, once.
func (w *functionsWiring) serveUpload(rw http.ResponseWriter, r *http.Request, object string) {
	if r.Method != http.MethodPut {
		http.Error(rw, "the upload URL takes PUT", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/zip" {
		http.Error(rw, "the upload URL is signed for Content-Type application/zip, not "+strconv.Quote(ct), http.StatusForbidden)
		return
	}
	w.mu.Lock()
	signed := w.pending[object]
	w.mu.Unlock()
	if !signed {
		http.Error(rw, "no upload URL was signed for "+object, http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, functionMaxSourceBytes+1))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > functionMaxSourceBytes {
		http.Error(rw, fmt.Sprintf("the source is over the %d MiB a function's source may have", functionMaxSourceBytes>>20), http.StatusRequestEntityTooLarge)
		return
	}
	w.mu.Lock()
	delete(w.pending, object)
	w.uploads[object] = body
	w.mu.Unlock()
	rw.WriteHeader(http.StatusOK)
}

// build compiles fn's uploaded source as Google's Go buildpack does: the
// function's package, and beside it a main package that serves the entry
// point on $PORT. Only gantry's runner function is built; anything else
// fails as a failed build does, with the reason.
func (w *functionsWiring) build(fn *functionspb.Function) (string, error) {
	bc := fn.GetBuildConfig()
	// Google's message for a failed build, which begins with a capital.
	failed := func(format string, args ...any) error {
		return errors.New("Build failed with status: FAILURE. " + fmt.Sprintf(format, args...))
	}
	if !strings.HasPrefix(bc.GetRuntime(), "go") {
		return "", failed("gcptest builds only gantry's runner function, which is Go; runtime %s cannot build it", bc.GetRuntime())
	}
	src := bc.GetSource().GetStorageSource()
	w.mu.Lock()
	archive := w.uploads[src.GetBucket()+"/"+src.GetObject()]
	w.mu.Unlock()
	sum := sha256.Sum256(append(append([]byte(bc.GetEntryPoint()), 0), archive...))
	key := hex.EncodeToString(sum[:])
	// Builds of one source share a directory: concurrent deploys of it
	// (every gantry container is the same runner) take turns, and all
	// but the first find it built.
	w.buildMu.Lock()
	defer w.buildMu.Unlock()
	w.mu.Lock()
	bin, cached := w.builds[key]
	w.mu.Unlock()
	if cached {
		return bin, nil
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return "", failed("the source is not a zip archive: %v", err)
	}
	dir := filepath.Join(w.binDir, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", failed("%v", err)
	}
	for _, f := range zr.File {
		if !filepath.IsLocal(f.Name) || strings.Contains(f.Name, `\`) {
			return "", failed("the archive holds a file outside its root: %q", f.Name)
		}
		if f.FileInfo().IsDir() {
			continue
		}
		if err := extract(f, filepath.Join(dir, f.Name)); err != nil {
			return "", failed("%v", err)
		}
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", failed("the source has no go.mod at its root")
	}
	if first, _, _ := strings.Cut(string(mod), "\n"); strings.TrimSpace(first) != "module "+functionsRunnerModule {
		return "", failed("gcptest builds only gantry's runner function (module %s); this source is %q", functionsRunnerModule, strings.TrimSpace(first))
	}
	ep := bc.GetEntryPoint()
	main := "package main\n\nimport (\n\t\"net/http\"\n\t\"os\"\n\n\tfn \"" + functionsRunnerModule + "\"\n)\n\n" +
		"func main() {\n\thttp.HandleFunc(\"/\", fn." + ep + ")\n\tif err := http.ListenAndServe(\"127.0.0.1:\"+os.Getenv(\"PORT\"), nil); err != nil {\n\t\tos.Stderr.WriteString(err.Error() + \"\\n\")\n\t\tos.Exit(1)\n\t}\n}\n"
	if err := os.MkdirAll(filepath.Join(dir, "gcptestmain"), 0o755); err != nil {
		return "", failed("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gcptestmain", "main.go"), []byte(main), 0o644); err != nil {
		return "", failed("%v", err)
	}
	bin = filepath.Join(dir, "function")
	cmd := exec.CommandContext(w.s.ctx, "go", "build", "-o", bin, "./gcptestmain")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", failed("go build: %v: %s", err, strings.Join(strings.Fields(string(out)), " "))
	}
	w.mu.Lock()
	w.builds[key] = bin
	w.mu.Unlock()
	return bin, nil
}

func extract(f *zip.File, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(rc, functionMaxSourceBytes))
	return errors.Join(err, out.Close())
}

// functionInstance is the one instance serving a function: its built
// binary running as a container of the Server's runtime.
type functionInstance struct {
	addr  string
	ready chan struct{}
	// err says why the instance could not start, once ready is closed.
	err  error
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// shutdown stops the instance as Cloud Run does (SIGTERM, then SIGKILL
// after the grace) and waits for it to end.
func (in *functionInstance) shutdown() {
	in.once.Do(func() { close(in.stop) })
	<-in.done
}

// serveFunction passes a request to the function's instance, starting
// one if none runs. The room runs one instance per function whatever
// max_instance_count allows; beyond max_instance_request_concurrency
// requests at once it answers 429 as Cloud Run does when
// no instance is available; a request that outlasts timeout_seconds is cut
// with 504.
func (w *functionsWiring) serveFunction(rw http.ResponseWriter, r *http.Request, name functionName, path string) {
	w.mu.Lock()
	f := w.functions[name.String()]
	if f == nil || f.pb.GetState() != functionspb.Function_ACTIVE || w.closed {
		w.mu.Unlock()
		http.Error(rw, "404 page not found", http.StatusNotFound)
		return
	}
	sc := f.pb.GetServiceConfig()
	if int32(f.inflight) >= sc.GetMaxInstanceRequestConcurrency() {
		w.mu.Unlock()
		http.Error(rw, "Rate exceeded: the request was aborted because there was no available instance", http.StatusTooManyRequests)
		return
	}
	f.inflight++
	inst := f.inst
	if inst == nil {
		inst = w.startInstance(name, f)
	}
	timeout := time.Duration(sc.GetTimeoutSeconds()) * time.Second
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		f.inflight--
		w.mu.Unlock()
	}()
	select {
	case <-inst.ready:
	case <-r.Context().Done():
		return
	}
	if inst.err != nil {
		http.Error(rw, "the instance failed to start: "+inst.err.Error(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	target := &url.URL{Scheme: "http", Host: inst.addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, ""
		},
		FlushInterval: -1,
		ErrorHandler: func(rw http.ResponseWriter, _ *http.Request, err error) {
			if ctx.Err() == context.DeadlineExceeded {
				http.Error(rw, "upstream request timeout", http.StatusGatewayTimeout)
				return
			}
			http.Error(rw, "upstream connect error: "+err.Error(), http.StatusServiceUnavailable)
		},
	}
	proxy.ServeHTTP(rw, r.WithContext(ctx))
}

// startInstance starts f's instance and records it on f. The caller holds
// w.mu.
func (w *functionsWiring) startInstance(name functionName, f *function) *functionInstance {
	inst := &functionInstance{ready: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	f.inst = inst
	sc := f.pb.GetServiceConfig()
	env := []string{"K_SERVICE=" + name.function, "K_REVISION=" + sc.GetRevision(), "K_CONFIGURATION=" + name.function,
		"FUNCTION_TARGET=" + f.pb.GetBuildConfig().GetEntryPoint(), "FUNCTION_SIGNATURE_TYPE=http"}
	for k, v := range sc.GetEnvironmentVariables() {
		env = append(env, k+"="+v)
	}
	for _, s := range sc.GetSecretEnvironmentVariables() {
		project, version := s.GetProjectId(), s.GetVersion()
		if project == "" {
			project = name.project
		}
		if version == "" {
			version = "latest"
		}
		v, err := w.s.secrets.resolve(project, s.GetSecret(), version)
		if err != nil {
			inst.err = err
			close(inst.ready)
			close(inst.done)
			f.inst = nil
			return inst
		}
		env = append(env, s.GetKey()+"="+v)
	}
	bin, revision := f.bin, sc.GetRevision()
	started := w.backgroundLocked(func() {
		defer close(inst.done)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			inst.err = err
			close(inst.ready)
			return
		}
		inst.addr = lis.Addr().String()
		lis.Close()
		_, port, _ := net.SplitHostPort(inst.addr)
		rn := &runner{rt: w.s.rt, grace: functionInstanceGrace, now: w.s.cfg.now, ingest: w.s.ingestLog}
		spec := gantry.Spec{Image: "gcr.io/serverless-runtimes/" + f.pb.GetBuildConfig().GetRuntime(), Entrypoint: []string{bin}, Env: append(env, "PORT="+port)}
		wl := workload{spec: spec, logs: functionLogTarget(name, revision, newUID())}
		probed, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(probed)
			inst.err = probe(inst.addr, exited)
			close(inst.ready)
		}()
		out := rn.run(w.s.ctx, wl, inst.stop, func(time.Time) {})
		close(exited)
		<-probed
		w.mu.Lock()
		if f.inst == inst {
			f.inst = nil
		}
		w.mu.Unlock()
		if out.err != nil {
			w.s.ingestLog(wl, gantry.LogEntry{Stream: gantry.Stderr, Time: w.s.now(), Line: "the instance failed: " + out.err.Error()})
		}
	})
	if !started {
		inst.err = errors.New("the server is closing")
		close(inst.ready)
		close(inst.done)
		f.inst = nil
	}
	return inst
}

// probe waits until addr accepts connections, as Cloud Run's default
// startup probe does, or until the instance ends first.
func probe(addr string, ended <-chan struct{}) error {
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ended:
			return errors.New("the instance exited before it listened on $PORT")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("the instance did not listen on $PORT within 4 minutes")
}

// functionLogTarget is how a 2nd gen function's output is logged: as its
// Cloud Run service's, resource type cloud_run_revision with the service,
// revision and configuration named after the function, and the instance
// in the entry's labels.
func functionLogTarget(n functionName, revision, instance string) logTarget {
	return logTarget{
		project: n.project,
		resource: &monitoredres.MonitoredResource{
			Type: "cloud_run_revision",
			Labels: map[string]string{
				"project_id":         n.project,
				"location":           n.location.location,
				"service_name":       n.function,
				"revision_name":      revision,
				"configuration_name": n.function,
			},
		},
		labels: map[string]string{
			"instanceId":      instance,
			"goog-managed-by": "cloudfunctions",
		},
	}
}
