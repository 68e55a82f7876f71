package gcptest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	functions "cloud.google.com/go/functions/apiv2"
	"cloud.google.com/go/functions/apiv2/functionspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gantryhq/gantry/gcptest"
)

// TestFunctionsQuotas holds Cloud Functions API calls to their read and
// write quotas: per project over a rolling minute, whatever the region,
// with Google's quota error; a refused call reaches no function.
func TestFunctionsQuotas(t *testing.T) {
	clock := &manualClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, gcptest.WithClock(clock.now), gcptest.WithInstantOperations(), gcptest.WithQuotas(gcptest.Quotas{FunctionsReads: 3, FunctionsWrites: 2}))
	ctx := context.Background()
	c, err := functions.NewFunctionClient(ctx, e.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const p = "projects/proj/locations/"
	// A read of a function that does not exist is a read all the same.
	for i, region := range []string{"us-central1", "europe-west1"} {
		if _, err := c.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: p + region + "/functions/none"}); status.Code(err) != codes.NotFound {
			t.Fatalf("read %d: %v, want NotFound", i, err)
		}
		clock.advance(10 * time.Second)
	}
	if _, err := c.ListRuntimes(ctx, &functionspb.ListRuntimesRequest{Parent: p + "us-central1"}); err != nil {
		t.Fatal(err)
	}
	// The fourth read in a minute, in a third region: the quota is the
	// project's.
	_, err = c.ListFunctions(ctx, &functionspb.ListFunctionsRequest{Parent: p + "asia-east1"}).Next()
	exhausted(t, err, "ReadRequestsPerMinutePerProject", 3, 40*time.Second)

	if _, err := c.GenerateUploadUrl(ctx, &functionspb.GenerateUploadUrlRequest{Parent: p + "us-central1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(ctx, &functionspb.DeleteFunctionRequest{Name: p + "us-central1/functions/none"}); status.Code(err) != codes.NotFound {
		t.Fatalf("delete: %v, want NotFound", err)
	}
	_, err = c.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: p + "us-central1", FunctionId: "refused", Function: &functionspb.Function{}})
	exhausted(t, err, "WriteRequestsPerMinutePerProject", 2, time.Minute)

	// Once the first read has left the minute, a read goes through: the
	// refused create made no function.
	clock.advance(40 * time.Second)
	if _, err := c.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: p + "us-central1/functions/refused"}); status.Code(err) != codes.NotFound {
		t.Errorf("read after the minute: %v, want NotFound (the refused create made nothing)", err)
	}

	st := e.srv.Stats()
	var rows []string
	for _, q := range st.Quotas {
		rows = append(rows, fmt.Sprintf("%s %s %s/%s limit %d: %d used, %d refused", q.Service, q.Metric, q.Project, q.Location, q.LimitValue, q.Used, q.Refused))
	}
	want := []string{
		"cloudfunctions.googleapis.com Read requests proj/ limit 3: 4 used, 1 refused",
		"cloudfunctions.googleapis.com Write requests proj/ limit 2: 2 used, 1 refused",
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("quota usage (-want +got):\n%s", diff)
	}
}

// TestFunctionsDefaultQuotas: the strict defaults hold Cloud Functions to
// Google's numbers.
func TestFunctionsDefaultQuotas(t *testing.T) {
	q := gcptest.DefaultQuotas()
	if q.FunctionsReads != 1200 || q.FunctionsWrites != 60 {
		t.Errorf("DefaultQuotas() Functions reads %d, writes %d; want 1200, 60", q.FunctionsReads, q.FunctionsWrites)
	}
}
