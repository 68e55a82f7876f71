package gcptest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Principal is the email the emulator records as creator and last
// modifier: requests carry no credentials, so there is no caller to name.
const Principal = "gcptest@example.com"

// jobsService is google.cloud.run.v2.Jobs.
type jobsService struct {
	runpb.UnimplementedJobsServer
	s *Server
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func durationProto(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// etag is a fingerprint of a resource's desired state: it changes
// whenever the user changes the resource.
func etag(name string, generation int64, updated time.Time) string {
	h := sha256.New()
	h.Write([]byte(name))
	binary.Write(h, binary.BigEndian, generation)
	binary.Write(h, binary.BigEndian, updated.UnixNano())
	return `"` + base64.RawStdEncoding.EncodeToString(h.Sum(nil)[:15]) + `"`
}

// lockChecked locks st and returns the resource of kind named n from m,
// refused with NOT_FOUND when it does not exist and ABORTED when etag is
// set and stale. The store stays locked on success and is unlocked on an
// error.
func lockChecked[R interface{ GetEtag() string }](st *store, m map[string]R, kind, n, etag string) (R, error) {
	st.mu.Lock()
	r, ok := m[n]
	if !ok {
		st.mu.Unlock()
		return r, status.Errorf(codes.NotFound, "%s %s not found", kind, n)
	}
	if err := checkEtag(etag, r.GetEtag(), n); err != nil {
		st.mu.Unlock()
		return r, err
	}
	return r, nil
}

func checkEtag(given, current, name string) error {
	if given != "" && given != current {
		return status.Errorf(codes.Aborted, "etag %s does not match the current etag %s of %s: read it again and retry", given, current, name)
	}
	return nil
}

func readyCondition(state runpb.Condition_State, at time.Time) *runpb.Condition {
	return &runpb.Condition{Type: "Ready", State: state, LastTransitionTime: ts(at)}
}

// prepareJob validates a job a user sent for name and returns the copy to
// store, with Cloud Run's defaults filled in and output fields cleared.
func prepareJob(in *runpb.Job, name jobName) (*runpb.Job, error) {
	if in == nil {
		return nil, invalid("job is required")
	}
	if err := validateJobID(name.job); err != nil {
		return nil, err
	}
	if in.GetStartExecutionToken() != "" || in.GetRunExecutionToken() != "" {
		return nil, status.Error(codes.Unimplemented, "job.start_execution_token and job.run_execution_token are not supported by gcptest: call RunJob")
	}
	if err := validateLabels("job.labels", in.GetLabels()); err != nil {
		return nil, err
	}
	if err := validateAnnotations("job.annotations", in.GetAnnotations()); err != nil {
		return nil, err
	}
	j := &runpb.Job{
		Name:                name.String(),
		Labels:              in.GetLabels(),
		Annotations:         in.GetAnnotations(),
		Client:              in.GetClient(),
		ClientVersion:       in.GetClientVersion(),
		LaunchStage:         in.GetLaunchStage(),
		BinaryAuthorization: in.GetBinaryAuthorization(),
	}
	if t := in.GetTemplate(); t != nil {
		j.Template = clone(t)
	}
	if err := validateExecutionTemplate(j.Template); err != nil {
		return nil, err
	}
	if j.LaunchStage == api.LaunchStage_LAUNCH_STAGE_UNSPECIFIED {
		j.LaunchStage = api.LaunchStage_GA
	}
	return clone(j), nil
}

// CreateJob validates and stores a job; the operation finishes when the
// job is reconciled, with the job as its response and metadata.
func (js *jobsService) CreateJob(_ context.Context, req *runpb.CreateJobRequest) (*longrunningpb.Operation, error) {
	s := js.s
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	id := req.GetJobId()
	if id == "" {
		id = "job-" + randomSuffix(8)
	}
	name := jobName{loc, id}
	j, err := prepareJob(req.GetJob(), name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	j.Uid = newUID()
	j.Generation = 1
	j.CreateTime, j.UpdateTime = ts(now), ts(now)
	j.Creator, j.LastModifier = Principal, Principal
	j.Etag = etag(j.Name, j.Generation, now)
	j.Reconciling = true
	j.TerminalCondition = readyCondition(runpb.Condition_CONDITION_RECONCILING, now)
	if req.GetValidateOnly() {
		return s.doneOperation(loc, j, nil), nil
	}
	s.store.mu.Lock()
	if _, ok := s.store.jobs[j.Name]; ok {
		s.store.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "job %s already exists", j.Name)
	}
	s.store.jobs[j.Name] = j
	s.store.mu.Unlock()
	return s.reconcileJob(loc, j.Name, j.Generation)
}

// reconcileJob starts the operation of a job change and finishes it after
// the reconcile delay: the job stops reconciling and reports Ready.
func (s *Server) reconcileJob(loc location, name string, generation int64) (*longrunningpb.Operation, error) {
	refresh := func() proto.Message {
		if j := s.jobSnapshot(name); j != nil {
			return j
		}
		return nil
	}
	op := s.ops.start(loc, refresh)
	reconcile := func() {
		s.store.mu.Lock()
		j := s.store.jobs[name]
		var resp *runpb.Job
		if j != nil && j.Generation == generation {
			now := s.now()
			j.ObservedGeneration = generation
			j.Reconciling = s.store.reconcilingLocked(j)
			j.TerminalCondition = readyCondition(runpb.Condition_CONDITION_SUCCEEDED, now)
			resp = clone(j)
		}
		s.store.mu.Unlock()
		if resp == nil {
			s.ops.finish(op, nil, status.Errorf(codes.Aborted, "job %s was changed or deleted before it was reconciled", name))
			return
		}
		s.ops.finish(op, resp, nil)
	}
	if err := s.afterReconcileDelay(reconcile); err != nil {
		return nil, err
	}
	return s.opSnapshot(op)
}

// afterReconcileDelay runs f now when operations are instant, else after
// the reconcile delay on a background goroutine.
func (s *Server) afterReconcileDelay(f func()) error {
	if s.cfg.instantOps {
		f()
		return nil
	}
	return s.after(s.cfg.reconcile, f)
}

// after runs f after d on a background goroutine, unless the Server
// closes first.
func (s *Server) after(d time.Duration, f func()) error {
	ok := s.goBackground(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-s.ctx.Done():
		}
	})
	if !ok {
		return status.Error(codes.Unavailable, "gcptest: the server is closing")
	}
	return nil
}

// doneOperation records an operation that is finished from the start, as
// validate_only requests return.
func (s *Server) doneOperation(loc location, resp proto.Message, err error) *longrunningpb.Operation {
	op := s.ops.start(loc, func() proto.Message { return resp })
	s.ops.finish(op, resp, err)
	o, _, _ := s.ops.snapshot(op)
	return o
}

func (s *Server) opSnapshot(name string) (*longrunningpb.Operation, error) {
	o, _, err := s.ops.snapshot(name)
	return o, err
}

func (s *Server) jobSnapshot(name string) *runpb.Job {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if j := s.store.jobs[name]; j != nil {
		return clone(j)
	}
	return nil
}

// GetJob returns a job.
func (js *jobsService) GetJob(_ context.Context, req *runpb.GetJobRequest) (*runpb.Job, error) {
	name, err := parseJobName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	if j := js.s.jobSnapshot(name.String()); j != nil {
		return j, nil
	}
	return nil, status.Errorf(codes.NotFound, "job %s not found", name)
}

// ListJobs lists the jobs of a location in name order, or in no
// particular order with unordered lists.
func (js *jobsService) ListJobs(_ context.Context, req *runpb.ListJobsRequest) (*runpb.ListJobsResponse, error) {
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	s := js.s
	prefix := loc.String() + "/jobs/"
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	var names []string
	for n := range s.store.jobs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	page, next, err := listPage(s, names, func(n string) string { return n }, strings.Compare, req.GetPageSize(), req.GetPageToken(), listKey(req.GetParent(), req.GetShowDeleted()))
	if err != nil {
		return nil, err
	}
	resp := &runpb.ListJobsResponse{NextPageToken: next}
	for _, n := range page {
		resp.Jobs = append(resp.Jobs, clone(s.store.jobs[n]))
	}
	return resp, nil
}

// UpdateJob replaces a job's desired state (the API has no update mask),
// or creates it when allow_missing is set and it does not exist.
func (js *jobsService) UpdateJob(_ context.Context, req *runpb.UpdateJobRequest) (*longrunningpb.Operation, error) {
	s := js.s
	if req.GetJob() == nil {
		return nil, invalid("job is required")
	}
	name, err := parseJobName("job.name", req.GetJob().GetName(), false)
	if err != nil {
		return nil, err
	}
	j, err := prepareJob(req.GetJob(), name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	s.store.mu.Lock()
	cur := s.store.jobs[j.Name]
	if cur == nil && !req.GetAllowMissing() {
		s.store.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "job %s not found", j.Name)
	}
	if cur != nil {
		if err := checkEtag(req.GetJob().GetEtag(), cur.Etag, cur.Name); err != nil {
			s.store.mu.Unlock()
			return nil, err
		}
		j.Uid, j.CreateTime, j.Creator = cur.Uid, cur.CreateTime, cur.Creator
		j.Generation = cur.Generation + 1
		j.ObservedGeneration = cur.ObservedGeneration
		j.ExecutionCount = cur.ExecutionCount
		j.LatestCreatedExecution = cur.LatestCreatedExecution
		j.Conditions = cur.Conditions
	} else {
		j.Uid, j.CreateTime, j.Creator = newUID(), ts(now), Principal
		j.Generation = 1
	}
	j.UpdateTime, j.LastModifier = ts(now), Principal
	j.Etag = etag(j.Name, j.Generation, now)
	j.Reconciling = true
	j.TerminalCondition = readyCondition(runpb.Condition_CONDITION_RECONCILING, now)
	if req.GetValidateOnly() {
		s.store.mu.Unlock()
		return s.doneOperation(name.location, j, nil), nil
	}
	s.store.jobs[j.Name] = j
	s.store.mu.Unlock()
	return s.reconcileJob(name.location, j.Name, j.Generation)
}

// DeleteJob deletes a job with its executions and tasks. Executions that
// are still running are cancelled (their containers get SIGTERM, then
// SIGKILL after the grace period) and removed once they have stopped; the
// operation finishes then. The job itself is gone at once.
func (js *jobsService) DeleteJob(_ context.Context, req *runpb.DeleteJobRequest) (*longrunningpb.Operation, error) {
	s := js.s
	name, err := parseJobName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	n := name.String()
	j, err := lockChecked(s.store, s.store.jobs, "job", n, req.GetEtag())
	if err != nil {
		return nil, err
	}
	deleted := clone(j)
	now := s.now()
	deleted.DeleteTime = ts(now)
	deleted.ExpireTime = ts(now)
	if req.GetValidateOnly() {
		s.store.mu.Unlock()
		return s.doneOperation(name.location, deleted, nil), nil
	}
	delete(s.store.jobs, n)
	running := map[string]*executionRun{}
	for en := range s.store.executions {
		if !strings.HasPrefix(en, n+"/executions/") {
			continue
		}
		if run := s.store.runs[en]; run != nil {
			running[en] = run
			continue
		}
		s.store.removeExecutionLocked(en)
	}
	s.store.mu.Unlock()
	for _, run := range running {
		run.cancel()
	}
	op := s.ops.start(name.location, func() proto.Message { return deleted })
	finish := func() {
		for en, run := range running {
			<-run.done
			s.store.mu.Lock()
			s.store.removeExecutionLocked(en)
			s.store.mu.Unlock()
		}
		s.ops.finish(op, deleted, nil)
	}
	if len(running) > 0 && s.cfg.instantOps {
		finish()
	} else if err := s.afterReconcileDelay(finish); err != nil {
		return nil, err
	}
	o, _, err := s.ops.snapshot(op)
	return o, err
}
