package gcptest

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	functions "cloud.google.com/go/functions/apiv2"
	"cloud.google.com/go/functions/apiv2/functionspb"
	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// functionsRoom starts a relaxed Server for a test of its Functions room;
// opts may turn strict rules back on.
func functionsRoom(t *testing.T, opts ...Option) (*Server, []option.ClientOption) {
	t.Helper()
	s, err := NewServer(append([]Option{Relaxed(), WithReconcileDelay(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.ClientOptions()
}

// runnerZip is gantry's runner function as cloudfunctions uploads it.
func runnerZip(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("../cloudfunctions/internal/runner/runner.go")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../cloudfunctions/internal/runner/go.mod.txt")
	if err != nil {
		t.Fatal(err)
	}
	return zipOf(t, map[string][]byte{"go.mod": mod, "runner.go": src})
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const fnParent = "projects/p/locations/us-central1"

// upload stores archive at a fresh upload URL and returns its source.
func upload(t *testing.T, c *functions.FunctionClient, archive []byte) *functionspb.Source {
	t.Helper()
	ctx := context.Background()
	u, err := c.GenerateUploadUrl(ctx, &functionspb.GenerateUploadUrlRequest{Parent: fnParent})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, u.GetUploadUrl(), bytes.NewReader(archive))
	req.Header.Set("Content-Type", "application/zip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s", resp.Status)
	}
	return &functionspb.Source{Source: &functionspb.Source_StorageSource{StorageSource: u.GetStorageSource()}}
}

func runnerFunction(src *functionspb.Source) *functionspb.Function {
	return &functionspb.Function{
		Labels:      map[string]string{"managed-by": "gantry"},
		BuildConfig: &functionspb.BuildConfig{Runtime: "go125", EntryPoint: "Run", Source: src},
		ServiceConfig: &functionspb.ServiceConfig{
			AvailableCpu: "1", AvailableMemory: "512Mi", MaxInstanceCount: 1,
			MaxInstanceRequestConcurrency: 4, TimeoutSeconds: 60,
			EnvironmentVariables: map[string]string{"FROM_SERVICE": "yes"},
		},
	}
}

func TestFunctionsLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner function with the Go toolchain")
	}
	s, opts := functionsRoom(t)
	ctx := context.Background()
	c, err := functions.NewFunctionClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	rts, err := c.ListRuntimes(ctx, &functionspb.ListRuntimesRequest{Parent: fnParent})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rts.GetRuntimes() {
		names = append(names, r.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), "go125") {
		t.Fatalf("runtimes %v lack go125", names)
	}

	op, err := c.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: fnParent, FunctionId: "runner-fn", Function: runnerFunction(upload(t, c, runnerZip(t)))})
	if err != nil {
		t.Fatal(err)
	}
	md, err := op.Metadata()
	if err != nil || md.GetOperationType() != functionspb.OperationType_CREATE_FUNCTION || len(md.GetStages()) == 0 {
		t.Fatalf("create metadata = %v, %v", md, err)
	}
	fn, err := op.Wait(ctx)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if fn.GetState() != functionspb.Function_ACTIVE || fn.GetServiceConfig().GetUri() == "" || fn.GetServiceConfig().GetRevision() == "" {
		t.Fatalf("function = %v", fn)
	}
	md, _ = op.Metadata()
	for _, st := range md.GetStages() {
		if st.GetName() == functionspb.Stage_BUILD && st.GetState() != functionspb.Stage_COMPLETE {
			t.Errorf("build stage = %v after the operation", st)
		}
	}

	// A second create of the same ID fails in its operation.
	op2, err := c.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: fnParent, FunctionId: "runner-fn", Function: runnerFunction(upload(t, c, runnerZip(t)))})
	if err == nil {
		_, err = op2.Wait(ctx)
	}
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate create: %v, want ALREADY_EXISTS", err)
	}

	// The function runs a command: exit code in a header, output in
	// Cloud Logging as its Cloud Run service's.
	body := `{"id":"r1","argv":["sh","-c","echo hello $FROM_SERVICE; echo oops >&2; exit 3"]}`
	resp, err := http.Post(fn.GetServiceConfig().GetUri()+"/run", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Gantry-Exit-Code") != "3" {
		t.Fatalf("run: %s, exit code %q", resp.Status, resp.Header.Get("Gantry-Exit-Code"))
	}
	lc, err := logging.NewClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	want := map[string]string{"hello yes": "run.googleapis.com%2Fstdout", "oops": "run.googleapis.com%2Fstderr"}
	deadline := time.Now().Add(10 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		it := lc.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{
			ResourceNames: []string{"projects/p"},
			Filter:        `resource.type="cloud_run_revision" AND resource.labels.service_name="runner-fn"`,
		})
		for {
			e, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if log, ok := want[e.GetTextPayload()]; ok && strings.HasSuffix(e.GetLogName(), log) {
				delete(want, e.GetTextPayload())
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(want) > 0 {
		t.Errorf("Cloud Logging lacks %v", want)
	}

	// Delete shuts the instance down and forgets the function.
	dop, err := c.DeleteFunction(ctx, &functionspb.DeleteFunctionRequest{Name: fn.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if err := dop.Wait(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: fn.GetName()}); status.Code(err) != codes.NotFound {
		t.Errorf("get after delete: %v, want NOT_FOUND", err)
	}
	resp, err = http.Post(fn.GetServiceConfig().GetUri()+"/run", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the URL of a deleted function answers %s, want 404", resp.Status)
	}
	if n := s.Calls("/google.cloud.functions.v2.FunctionService/CreateFunction"); n != 2 {
		t.Errorf("CreateFunction calls counted: %d, want 2", n)
	}
}

func TestFunctionsBuildOnlyTheRunner(t *testing.T) {
	_, opts := functionsRoom(t)
	ctx := context.Background()
	c, err := functions.NewFunctionClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other := zipOf(t, map[string][]byte{"go.mod": []byte("module example.com/hello\n\ngo 1.22\n"), "hello.go": []byte("package hello\n")})
	op, err := c.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: fnParent, FunctionId: "other-fn", Function: runnerFunction(upload(t, c, other))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = op.Wait(ctx)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "Build failed") {
		t.Fatalf("create of another source: %v, want a failed build", err)
	}
	fn, err := c.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: fnParent + "/functions/other-fn"})
	if err != nil || fn.GetState() != functionspb.Function_FAILED {
		t.Errorf("function after a failed build = %v, %v; want FAILED", fn.GetState(), err)
	}
}

func TestFunctionsValidation(t *testing.T) {
	_, opts := functionsRoom(t)
	ctx := context.Background()
	c, err := functions.NewFunctionClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := upload(t, c, runnerZip(t))
	for _, tc := range []struct {
		name   string
		id     string
		mutate func(*functionspb.Function)
		want   codes.Code
	}{
		{"short id", "abc", nil, codes.InvalidArgument},
		{"uppercase id", "Runner", nil, codes.InvalidArgument},
		{"trailing hyphen", "runner-", nil, codes.InvalidArgument},
		{"unknown runtime", "fn-a", func(f *functionspb.Function) { f.BuildConfig.Runtime = "go99" }, codes.InvalidArgument},
		{"timeout", "fn-b", func(f *functionspb.Function) { f.ServiceConfig.TimeoutSeconds = 3601 }, codes.InvalidArgument},
		{"concurrency below one CPU", "fn-c", func(f *functionspb.Function) { f.ServiceConfig.AvailableCpu = "0.5" }, codes.InvalidArgument},
		{"memory for CPU", "fn-d", func(f *functionspb.Function) { f.ServiceConfig.AvailableMemory = "8Gi" }, codes.InvalidArgument},
		{"reserved env", "fn-e", func(f *functionspb.Function) { f.ServiceConfig.EnvironmentVariables = map[string]string{"PORT": "1"} }, codes.InvalidArgument},
		{"bad label", "fn-f", func(f *functionspb.Function) { f.Labels = map[string]string{"Bad": "x"} }, codes.InvalidArgument},
		{"no upload", "fn-g", func(f *functionspb.Function) {
			f.BuildConfig.Source = &functionspb.Source{Source: &functionspb.Source_StorageSource{StorageSource: &functionspb.StorageSource{Bucket: "b", Object: "o.zip"}}}
		}, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := runnerFunction(src)
			if tc.mutate != nil {
				tc.mutate(fn)
			}
			_, err := c.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: fnParent, FunctionId: tc.id, Function: fn})
			if status.Code(err) != tc.want {
				t.Errorf("create: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := c.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: "projects/p/functions/x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed name: %v, want INVALID_ARGUMENT", err)
	}
}

func TestFunctionsUploadURL(t *testing.T) {
	_, opts := functionsRoom(t)
	ctx := context.Background()
	c, err := functions.NewFunctionClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := c.GenerateUploadUrl(ctx, &functionspb.GenerateUploadUrlRequest{Parent: fnParent})
	if err != nil {
		t.Fatal(err)
	}
	put := func(url, ct string) int {
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("zip"))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(u.GetUploadUrl(), "text/plain"); got != http.StatusForbidden {
		t.Errorf("upload with the wrong content type: %d, want 403", got)
	}
	if got := put(u.GetUploadUrl()+"x", "application/zip"); got != http.StatusForbidden {
		t.Errorf("upload to an unsigned URL: %d, want 403", got)
	}
	if got := put(u.GetUploadUrl(), "application/zip"); got != http.StatusOK {
		t.Errorf("upload: %d, want 200", got)
	}
	if got := put(u.GetUploadUrl(), "application/zip"); got != http.StatusForbidden {
		t.Errorf("second upload to a used URL: %d, want 403", got)
	}
}
