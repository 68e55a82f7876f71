package cloudfunctions

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	functions "cloud.google.com/go/functions/apiv2"
	"cloud.google.com/go/functions/apiv2/functionspb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

// faultMethods is every API method cloudfunctions calls.
var faultMethods = []string{mGet, mList, mCreate, mDelete, mUploadURL, mRuntimes, mOpsGet, mLogsList, mLogsTail}

// transientFaults are the failures Google answers a call with that a
// client is to retry: UNAVAILABLE twice in a row; RESOURCE_EXHAUSTED
// (without RetryInfo, so the Runtime picks its own delay: slow); and a
// slow answer.
var transientFaults = []struct {
	name  string
	fault gcptest.Fault
	slow  bool
}{
	{"Unavailable", gcptest.Fault{Code: codes.Unavailable, NextK: 2}, false},
	{"ResourceExhausted", gcptest.Fault{Code: codes.ResourceExhausted, NextK: 1}, true},
	{"Latency", gcptest.Fault{Latency: 30 * time.Millisecond}, false},
}

// TestFaults makes each method fail with each transient fault, anew
// before each step of a container's whole life: every operation still
// gives the right result, the command runs once (its lines are logged
// once), and Remove leaves no function.
func TestFaults(t *testing.T) {
	for _, tf := range transientFaults {
		t.Run(tf.name, func(t *testing.T) {
			if tf.slow && testing.Short() {
				t.Skip("waits for the Runtime's quota backoff; skipped with -short")
			}
			t.Parallel()
			for _, method := range faultMethods {
				t.Run(method[strings.LastIndexByte(method, '/')+1:], func(t *testing.T) {
					t.Parallel()
					lifecycleUnder(t, method, tf.fault)
				})
			}
		})
	}
}

// lifecycleUnder runs a container's life with fault injected on method
// before each step.
func lifecycleUnder(t *testing.T, method string, fault gcptest.Fault) {
	// Real operations, so that GetOperation is called.
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := t.Context()
	srv.InjectFault(method, fault)
	s := spec("echo to-stdout; echo to-stderr >&2; exec sleep 60")
	s.Name = "faulty"
	c, err := rt.Create(ctx, s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := rt.Start(ctx, c.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A second Start of a running container by an ID prefix
	// (which lists) is a no-op, not a second run.
	if err := rt.Start(ctx, c.ID[:10]); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	follow, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
	if err != nil {
		t.Fatalf("Logs(follow): %v", err)
	}
	var followed []gantry.LogEntry
	for len(followed) < 2 {
		e, err := follow.Next()
		if err != nil {
			t.Fatalf("follow: %v after %d lines", err, len(followed))
		}
		followed = append(followed, e)
	}
	srv.InjectFault(method, fault)
	if err := rt.Kill(ctx, c.ID, "SIGTERM"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st != (gantry.ExitStatus{ExitCode: 143, Signal: "SIGTERM"}) {
		t.Fatalf("Wait = %+v, %v; want 143 SIGTERM", st, err)
	}
	for {
		e, err := follow.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("follow: %v", err)
		}
		followed = append(followed, e)
	}
	want := map[gantry.Stream][]string{gantry.Stdout: {"to-stdout"}, gantry.Stderr: {"to-stderr"}}
	if diff := cmp.Diff(want, byStream(followed)); diff != "" {
		t.Errorf("followed logs (-want +got):\n%s", diff)
	}
	srv.InjectFault(method, fault)
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	var all []gantry.LogEntry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		all = append(all, e)
	}
	if diff := cmp.Diff(want, byStream(all)); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	srv.InjectFault(method, fault)
	if cs, err := rt.List(ctx, gantry.ListOptions{All: true}); err != nil || len(cs) != 1 || cs[0].State.ExitCode != 143 {
		t.Fatalf("List = %v, %v; want the one container, exited 143", cs, err)
	}
	srv.InjectFault(method, fault)
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	srv.ClearFaults()
	if left := functionsOf(t, srv); len(left) != 0 {
		t.Errorf("functions left after Remove: %v", left)
	}
}

// TestPermanentFaults makes each method fail for good, with a code that
// is not retried: an operation that calls it fails with the gantry error
// of that code (and one at least does), and a Create that fails leaves no
// function.
func TestPermanentFaults(t *testing.T) {
	for _, method := range faultMethods {
		t.Run(method[strings.LastIndexByte(method, '/')+1:], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			rt := newRuntime(t, srv, Config{})
			ctx := t.Context()
			srv.InjectFault(method, gcptest.Fault{Code: codes.PermissionDenied})
			failed := 0
			check := func(op string, err error) {
				t.Helper()
				if err != nil {
					failed++
				}
				if err != nil && !errors.Is(err, gantry.ErrPermissionDenied) {
					t.Errorf("%s: %v, want nil or ErrPermissionDenied", op, err)
				}
			}
			// Only a follower tails; these operations do not follow.
			if method != mLogsTail {
				defer func() {
					if failed == 0 {
						t.Errorf("no operation failed")
					}
				}()
			}
			c, err := rt.Create(ctx, spec("echo to-stdout"))
			check("Create", err)
			if err != nil {
				srv.ClearFaults()
				// The failed create's clean-up runs in the background.
				for end := time.Now().Add(10 * time.Second); len(functionsOf(t, srv)) != 0 && time.Now().Before(end); {
					time.Sleep(testPoll)
				}
				if left := functionsOf(t, srv); len(left) != 0 {
					t.Errorf("functions left after a failed Create: %v", left)
				}
				return
			}
			check("Start", rt.Start(ctx, c.ID))
			_, err = rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
			check("Wait", err)
			if r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{}); err != nil {
				check("Logs", err)
			} else {
				check("Logs", gantry.CopyLogs(io.Discard, io.Discard, r))
			}
			_, err = rt.List(ctx, gantry.ListOptions{All: true})
			check("List", err)
			check("Remove", rt.Remove(ctx, c.ID, gantry.RemoveOptions{}))
			srv.ClearFaults()
			if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil && !errors.Is(err, gantry.ErrNotFound) {
				t.Errorf("Remove once the fault is gone: %v", err)
			}
			if left := functionsOf(t, srv); len(left) != 0 {
				t.Errorf("functions left after Remove: %v", left)
			}
		})
	}
}

// byStream groups log lines by stream.
func byStream(es []gantry.LogEntry) map[gantry.Stream][]string {
	out := map[gantry.Stream][]string{}
	for _, e := range es {
		out[e.Stream] = append(out[e.Stream], e.Line)
	}
	return out
}

// functionsOf lists the functions of the test project on srv, through a
// client of its own.
func functionsOf(t *testing.T, srv *gcptest.Server) []string {
	t.Helper()
	c, err := functions.NewFunctionClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []string
	it := c.ListFunctions(t.Context(), &functionspb.ListFunctionsRequest{Parent: "projects/" + project + "/locations/-"})
	for {
		f, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.GetName()+" "+f.GetState().String())
	}
}
