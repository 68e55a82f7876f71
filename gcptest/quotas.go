package gcptest

import (
	"context"
	"strings"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gantryhq/gantry/gcptest/internal/quota"
)

// The quota metrics each unary method counts against, in the order they
// are checked. TailLogEntries is counted by the Logging service itself,
// which knows a session's projects only from its first message.
var methodMetrics = map[string][]*quota.Metric{
	"/google.cloud.run.v2.Jobs/CreateJob":                 {quota.RunWrite},
	"/google.cloud.run.v2.Jobs/GetJob":                    {quota.RunRead},
	"/google.cloud.run.v2.Jobs/ListJobs":                  {quota.RunRead},
	"/google.cloud.run.v2.Jobs/UpdateJob":                 {quota.RunWrite},
	"/google.cloud.run.v2.Jobs/DeleteJob":                 {quota.RunWrite},
	"/google.cloud.run.v2.Jobs/RunJob":                    {quota.RunJobRun},
	"/google.cloud.run.v2.Executions/GetExecution":        {quota.RunRead},
	"/google.cloud.run.v2.Executions/ListExecutions":      {quota.RunRead},
	"/google.cloud.run.v2.Executions/DeleteExecution":     {quota.RunWrite},
	"/google.cloud.run.v2.Executions/CancelExecution":     {quota.RunWrite},
	"/google.cloud.run.v2.Tasks/GetTask":                  {quota.RunRead},
	"/google.cloud.run.v2.Services/CreateService":         {quota.RunWrite},
	"/google.cloud.run.v2.Services/GetService":            {quota.RunRead},
	"/google.cloud.run.v2.Services/ListServices":          {quota.RunRead},
	"/google.cloud.run.v2.Services/UpdateService":         {quota.RunWrite},
	"/google.cloud.run.v2.Services/DeleteService":         {quota.RunWrite},
	"/google.cloud.run.v2.Tasks/ListTasks":                {quota.RunRead},
	"/google.cloud.run.v2.Instances/CreateInstance":       {quota.RunWrite},
	"/google.cloud.run.v2.Instances/GetInstance":          {quota.RunRead},
	"/google.cloud.run.v2.Instances/ListInstances":        {quota.RunRead},
	"/google.cloud.run.v2.Instances/UpdateInstance":       {quota.RunWrite},
	"/google.cloud.run.v2.Instances/DeleteInstance":       {quota.RunWrite},
	"/google.cloud.run.v2.Instances/StartInstance":        {quota.RunWrite},
	"/google.cloud.run.v2.Instances/StopInstance":         {quota.RunWrite},
	"/google.longrunning.Operations/GetOperation":         {quota.RunRead},
	"/google.longrunning.Operations/ListOperations":       {quota.RunRead},
	"/google.longrunning.Operations/WaitOperation":        {quota.RunRead},
	"/google.longrunning.Operations/DeleteOperation":      {quota.RunWrite},
	"/google.logging.v2.LoggingServiceV2/ListLogEntries":  {quota.LoggingList, quota.LoggingRead},
	"/google.logging.v2.LoggingServiceV2/ListLogs":        {quota.LoggingRead},
	"/google.logging.v2.LoggingServiceV2/WriteLogEntries": {quota.LoggingWrite},

	"/google.cloud.functions.v2.FunctionService/GetFunction":       {functionsRead},
	"/google.cloud.functions.v2.FunctionService/ListFunctions":     {functionsRead},
	"/google.cloud.functions.v2.FunctionService/ListRuntimes":      {functionsRead},
	"/google.cloud.functions.v2.FunctionService/CreateFunction":    {functionsWrite},
	"/google.cloud.functions.v2.FunctionService/UpdateFunction":    {functionsWrite},
	"/google.cloud.functions.v2.FunctionService/DeleteFunction":    {functionsWrite},
	"/google.cloud.functions.v2.FunctionService/GenerateUploadUrl": {functionsWrite},
}

// The Cloud Functions API's quotas (RULES.md, "Cloud Functions quotas"):
// reads are calls that describe or list, writes those that deploy or
// delete; both per project, as Google scopes them. A function's operations
// are polled through the Operations service and count as Cloud Run reads,
// as every GetOperation does here.
var (
	functionsRead = &quota.Metric{
		Service: "cloudfunctions.googleapis.com",
		Name:    "Read requests",
		ID:      "cloudfunctions.googleapis.com/read_requests",
		Limit:   "Read requests per minute",
		LimitID: "ReadRequestsPerMinutePerProject",
		Help:    functionsQuotas,
	}
	functionsWrite = &quota.Metric{
		Service: "cloudfunctions.googleapis.com",
		Name:    "Write requests",
		ID:      "cloudfunctions.googleapis.com/write_requests",
		Limit:   "Write requests per minute",
		LimitID: "WriteRequestsPerMinutePerProject",
		Help:    functionsQuotas,
	}
)

const functionsQuotas = "https://cloud.google.com/functions/quotas"

// limit is the limit q sets for m; 0 is none.
func (q *Quotas) limit(m *quota.Metric) int {
	if q == nil {
		return 0
	}
	switch m {
	case quota.RunRead:
		return q.RunReads
	case quota.RunWrite:
		return q.RunWrites
	case quota.RunJobRun:
		return q.RunJobRuns
	case quota.LoggingList:
		return q.LoggingEntriesLists
	case quota.LoggingRead:
		return q.LoggingReads
	case quota.LoggingWrite:
		return q.LoggingWrites
	case functionsRead:
		return q.FunctionsReads
	case functionsWrite:
		return q.FunctionsWrites
	}
	return 0
}

// scope is a project and location a call is counted for.
type scope struct{ project, location string }

// quotaUnary translates project numbers in Cloud Run requests, then counts
// the call against its quotas and refuses it with Google's error when one
// is used up. Every call is counted, with quotas or without, so that
// Stats can report a client's reads and writes.
func (s *Server) quotaUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m, ok := req.(proto.Message)
	if !ok {
		return handler(ctx, req)
	}
	if len(s.cfg.projectNumbers) > 0 && !strings.HasPrefix(info.FullMethod, "/google.logging.") {
		s.translateProjectNumbers(m.ProtoReflect())
	}
	for _, metric := range methodMetrics[info.FullMethod] {
		for _, sc := range s.scopes(m) {
			limit := s.cfg.strict.quotas.limit(metric)
			if ok, retry := s.limiter.Take(metric, limit, sc.project, sc.location); !ok {
				return nil, metric.Exceeded(s.consumer(sc.project), sc.location, limit, retry)
			}
		}
	}
	return handler(ctx, req)
}

// scopes are the projects (and locations) a request is counted for: the
// project and location of a Cloud Run or Operations name, or each project
// a Logging request reads or writes. A request whose names do not parse
// is counted for none; it fails with INVALID_ARGUMENT.
func (s *Server) scopes(m proto.Message) []scope {
	switch r := m.(type) {
	case *loggingpb.ListLogEntriesRequest:
		return s.logScopes(r.GetResourceNames()...)
	case *loggingpb.ListLogsRequest:
		if len(r.GetResourceNames()) > 0 {
			return s.logScopes(r.GetResourceNames()...)
		}
		return s.logScopes(r.GetParent())
	case *loggingpb.WriteLogEntriesRequest:
		names := []string{r.GetLogName()}
		for _, e := range r.GetEntries() {
			names = append(names, e.GetLogName())
		}
		return s.logScopes(names...)
	}
	name := ""
	switch r := m.(type) {
	case *runpb.UpdateJobRequest:
		name = r.GetJob().GetName()
	case *runpb.UpdateServiceRequest:
		name = r.GetService().GetName()
	case *runpb.UpdateInstanceRequest:
		name = r.GetInstance().GetName()
	case *functionspb.UpdateFunctionRequest:
		name = r.GetFunction().GetName()
	case interface{ GetParent() string }:
		name = r.GetParent()
	case interface{ GetName() string }:
		name = r.GetName()
	}
	parts := strings.SplitN(name, "/", 5)
	if len(parts) < 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "locations" || parts[3] == "" {
		return nil
	}
	return []scope{{s.projectID(parts[1]), parts[3]}}
}

// logScopes are the distinct projects of Logging names (projects/P, a
// view under it, or a log name).
func (s *Server) logScopes(names ...string) []scope {
	var out []scope
	for _, n := range names {
		p, ok := strings.CutPrefix(n, "projects/")
		if !ok {
			continue
		}
		p, _, _ = strings.Cut(p, "/")
		if p == "" {
			continue
		}
		sc := scope{project: s.projectID(p)}
		if !containsScope(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func containsScope(ss []scope, sc scope) bool {
	for _, x := range ss {
		if x == sc {
			return true
		}
	}
	return false
}

// projectID is the ID of a project named by ID or by a number the Server
// was given.
func (s *Server) projectID(p string) string {
	if id, ok := s.cfg.projectNumbers[p]; ok {
		return id
	}
	return p
}

// consumer names a project as Google's quota errors do: by number when the
// Server knows it.
func (s *Server) consumer(project string) string {
	for n, id := range s.cfg.projectNumbers {
		if id == project {
			return n
		}
	}
	return project
}

// translateProjectNumbers rewrites a project number to the project's ID in
// a Cloud Run or Operations request's name, parent, job.name,
// service.name and instance.name, so that the Server stores and answers
// every resource under the ID whichever way the project was named.
func (s *Server) translateProjectNumbers(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for _, n := range []protoreflect.Name{"name", "parent"} {
		fd := fields.ByName(n)
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			continue
		}
		v := m.Get(fd).String()
		rest, ok := strings.CutPrefix(v, "projects/")
		if !ok {
			continue
		}
		p, tail, _ := strings.Cut(rest, "/")
		if id, ok := s.cfg.projectNumbers[p]; ok {
			name := "projects/" + id
			if tail != "" {
				name += "/" + tail
			}
			m.Set(fd, protoreflect.ValueOfString(name))
		}
	}
	for _, n := range []protoreflect.Name{"job", "service", "instance"} {
		if fd := fields.ByName(n); fd != nil && fd.Kind() == protoreflect.MessageKind && !fd.IsList() && m.Has(fd) {
			s.translateProjectNumbers(m.Mutable(fd).Message())
		}
	}
}
