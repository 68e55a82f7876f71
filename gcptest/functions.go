package gcptest

import (
	"context"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/genproto/googleapis/type/date"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The Cloud Functions (2nd gen) room of the emulator: the
// google.cloud.functions.v2.FunctionService over the Server's operations,
// plus one HTTP listener that takes source uploads (the signed URLs
// GenerateUploadUrl hands out) and serves every function's URL. A function
// is built only when its source is gantry's runner function (the Go
// module functionsRunnerModule): the uploaded source is compiled with the
// local Go toolchain, beside a main package as Google's Go buildpack
// generates one, and any other source fails the build as Google reports a
// failed build. The built function runs as one instance (a container of
// the Server's runtime, started by the first request) whose output goes to
// Cloud Logging as the Cloud Run service behind a function writes it.

// functionsRunnerModule is the module path of gantry's runner function,
// the only source the emulator builds.
const functionsRunnerModule = "github.com/gantryhq/gantry/cloudfunctions/runner"

// Cloud Functions' limits (RULES.md, "Cloud Functions").
const (
	functionMaxTimeout     = 3600
	functionDefaultTimeout = 60
	functionMaxConcurrency = 1000
	functionMaxSourceBytes = 100 << 20
	// functionInstanceGrace is the time an instance has between SIGTERM
	// and SIGKILL when it is shut down: Cloud Run's 10 seconds.
	functionInstanceGrace = 10 * time.Second
)

// functionIDRe is CreateFunctionRequest.function_id's rule: 4 to 63
// lowercase letters, digits and hyphens; Cloud Run service names (which a
// function's service takes) begin with a letter and do not end with a
// hyphen.
var functionIDRe = regexp.MustCompile(`^[a-z][a-z0-9-]{2,61}[a-z0-9]$`)

// functionRuntimes is what ListRuntimes answers: the runtimes of 2nd gen
// functions. Only the Go ones can build the runner.
var functionRuntimes = []*functionspb.ListRuntimesResponse_Runtime{
	{Name: "go121", DisplayName: "Go 1.21", Stage: functionspb.ListRuntimesResponse_DEPRECATED, Warnings: []string{"Go 1.21 is deprecated"}, DeprecationDate: &date.Date{Year: 2025, Month: 2, Day: 11}},
	{Name: "go122", DisplayName: "Go 1.22", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "go123", DisplayName: "Go 1.23", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "go124", DisplayName: "Go 1.24", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "go125", DisplayName: "Go 1.25", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "nodejs22", DisplayName: "Node.js 22", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "python313", DisplayName: "Python 3.13", Stage: functionspb.ListRuntimesResponse_GA},
	{Name: "java21", DisplayName: "Java 21", Stage: functionspb.ListRuntimesResponse_GA},
}

// functionsWiring is the Functions room: its gRPC service, its HTTP
// listener and the functions it serves.
type functionsWiring struct {
	functionspb.UnimplementedFunctionServiceServer
	s *Server

	lis     net.Listener
	httpSrv *http.Server
	// listenErr is why the HTTP listener could not start; every call then
	// fails with UNAVAILABLE.
	listenErr error
	// binDir holds the built functions.
	binDir string

	mu        sync.Mutex
	functions map[string]*function
	// uploads holds uploaded sources by "bucket/object"; pending holds the
	// objects GenerateUploadUrl has signed a URL for.
	uploads map[string][]byte
	pending map[string]bool
	// builds caches built binaries by the hash of source and entry point;
	// buildMu serialises builds, which write to the cache's directories.
	builds  map[string]string
	buildMu sync.Mutex
	// revisions counts each function's revisions, by function name.
	revisions map[string]int
	closed    bool
	wg        sync.WaitGroup
}

// function is one function and its serving instance.
type function struct {
	pb *functionspb.Function
	// bin is the built function; inst the instance serving it, if any.
	bin  string
	inst *functionInstance
	// inflight counts the requests the instance is serving.
	inflight int
}

// registerFunctions starts the Functions room and registers its service on
// g, the Server's gRPC server.
func registerFunctions(s *Server, g *grpc.Server) *functionsWiring {
	w := &functionsWiring{
		s:         s,
		functions: map[string]*function{},
		uploads:   map[string][]byte{},
		pending:   map[string]bool{},
		builds:    map[string]string{},
		revisions: map[string]int{},
	}
	functionspb.RegisterFunctionServiceServer(g, w)
	dir, err := os.MkdirTemp("", "gcptest-functions-")
	if err != nil {
		w.listenErr = err
		return w
	}
	w.binDir = dir
	if w.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		w.listenErr = err
		return w
	}
	w.httpSrv = &http.Server{Handler: http.HandlerFunc(w.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go w.httpSrv.Serve(w.lis)
	return w
}

// baseURL is the root of the room's HTTP listener.
func (w *functionsWiring) baseURL() string { return "http://" + w.lis.Addr().String() }

// close shuts every instance down as Cloud Run does (SIGTERM, then
// SIGKILL after the grace), stops the HTTP listener and removes the
// built functions. It must run before the Server's context ends, which
// would kill the instances at once.
func (w *functionsWiring) close() {
	w.mu.Lock()
	w.closed = true
	var insts []*functionInstance
	for _, f := range w.functions {
		if f.inst != nil {
			insts = append(insts, f.inst)
			f.inst = nil
		}
	}
	w.mu.Unlock()
	for _, in := range insts {
		in.shutdown()
	}
	w.wg.Wait()
	if w.httpSrv != nil {
		w.httpSrv.Close()
	}
	if w.binDir != "" {
		os.RemoveAll(w.binDir)
	}
}

func (w *functionsWiring) available() error {
	if w.listenErr != nil {
		return status.Errorf(codes.Unavailable, "gcptest: the Functions room could not start: %v", w.listenErr)
	}
	return nil
}

// functionName is projects/{project}/locations/{location}/functions/{function}.
type functionName struct {
	location
	function string
}

func (f functionName) String() string { return f.location.String() + "/functions/" + f.function }

func parseFunctionName(field, name string) (functionName, error) {
	v, ok := parseName(name, "projects", "locations", "functions")
	if !ok || slices.Contains(v, wildcard) {
		return functionName{}, badName(field, name, "projects/{project}/locations/{location}/functions/{function}")
	}
	return functionName{location{v[0], v[1]}, v[2]}, nil
}

// functionURL is where the room serves a function.
func (w *functionsWiring) functionURL(n functionName) string {
	return w.baseURL() + "/" + n.project + "/" + n.location.location + "/" + n.function
}

// functionOp is a Functions operation in progress: its metadata (stages
// included) as a client polling it sees.
type functionOp struct {
	w    *functionsWiring
	name string
	mu   sync.Mutex
	md   *functionspb.OperationMetadata
}

// startOp starts a Functions operation on target with the given stages.
func (w *functionsWiring) startOp(loc location, target, verb string, typ functionspb.OperationType, request *functionspb.Function, stages []functionspb.Stage_Name) *functionOp {
	o := &functionOp{w: w, md: &functionspb.OperationMetadata{
		CreateTime:    ts(w.s.now()),
		Target:        target,
		Verb:          verb,
		ApiVersion:    "v2",
		OperationType: typ,
	}}
	if request != nil {
		if a, err := anypb.New(request); err == nil {
			o.md.RequestResource = a
		}
	}
	for _, n := range stages {
		o.md.Stages = append(o.md.Stages, &functionspb.Stage{Name: n, State: functionspb.Stage_NOT_STARTED})
	}
	o.name = w.s.ops.start(loc, func() proto.Message {
		o.mu.Lock()
		defer o.mu.Unlock()
		return clone(o.md)
	})
	return o
}

// stage records a stage's progress.
func (o *functionOp) stage(n functionspb.Stage_Name, st functionspb.Stage_State, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.md.Stages {
		if s.Name == n {
			s.State, s.Message = st, msg
		}
	}
}

// finish completes the operation with resp or err, stamping its end.
func (o *functionOp) finish(resp proto.Message, err error) {
	o.mu.Lock()
	o.md.EndTime = ts(o.w.s.now())
	o.mu.Unlock()
	o.w.s.ops.finish(o.name, resp, err)
}

// background runs f on a goroutine that close waits for.
func (w *functionsWiring) background(f func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.backgroundLocked(f)
}

// backgroundLocked is background for a caller that holds w.mu.
func (w *functionsWiring) backgroundLocked(f func()) bool {
	if w.closed {
		return false
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
	return true
}

// deployStages are the stages of a 2nd gen function's create and update.
var deployStages = []functionspb.Stage_Name{
	functionspb.Stage_BUILD, functionspb.Stage_SERVICE, functionspb.Stage_TRIGGER,
	functionspb.Stage_SERVICE_ROLLBACK, functionspb.Stage_TRIGGER_ROLLBACK,
}

// CreateFunction validates the function, then builds and deploys it in
// an operation. A function that exists already fails the operation with
// ALREADY_EXISTS, as Google documents.
func (w *functionsWiring) CreateFunction(_ context.Context, req *functionspb.CreateFunctionRequest) (*longrunningpb.Operation, error) {
	if err := w.available(); err != nil {
		return nil, err
	}
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	id := req.GetFunctionId()
	if id == "" {
		return nil, invalid("function_id is required")
	}
	if !functionIDRe.MatchString(id) {
		return nil, invalid("function_id %q must be 4 to 63 lowercase letters, digits and hyphens, begin with a letter and not end with a hyphen", id)
	}
	name := functionName{loc, id}
	fn, err := w.prepareFunction(req.GetFunction(), name)
	if err != nil {
		return nil, err
	}
	now := w.s.now()
	fn.State = functionspb.Function_DEPLOYING
	fn.CreateTime, fn.UpdateTime = ts(now), ts(now)
	op := w.startOp(loc, name.String(), "create", functionspb.OperationType_CREATE_FUNCTION, fn, deployStages)
	w.mu.Lock()
	if _, exists := w.functions[name.String()]; exists {
		w.mu.Unlock()
		op.finish(nil, status.Errorf(codes.AlreadyExists, "Function %s already exists", name))
		return w.s.opSnapshot(op.name)
	}
	w.functions[name.String()] = &function{pb: fn}
	w.mu.Unlock()
	w.deploy(name, op)
	return w.s.opSnapshot(op.name)
}

// deploy builds fn's source and rolls the function out, after the
// Server's reconcile delay: the operation stays pending meanwhile.
func (w *functionsWiring) deploy(name functionName, op *functionOp) {
	run := func() {
		op.stage(functionspb.Stage_BUILD, functionspb.Stage_IN_PROGRESS, "")
		w.mu.Lock()
		var fn *functionspb.Function
		if f := w.functions[name.String()]; f != nil {
			fn = clone(f.pb)
		}
		w.mu.Unlock()
		var bin string
		buildErr := status.Errorf(codes.Aborted, "function %s was deleted while it was deployed", name)
		if fn != nil {
			bin, buildErr = w.build(fn)
		}
		w.mu.Lock()
		f := w.functions[name.String()]
		if f == nil || f.pb.GetState() != functionspb.Function_DEPLOYING {
			w.mu.Unlock()
			op.finish(nil, status.Errorf(codes.Aborted, "function %s was deleted while it was deployed", name))
			return
		}
		if buildErr != nil {
			f.pb.State = functionspb.Function_FAILED
			f.pb.StateMessages = []*functionspb.StateMessage{{Severity: functionspb.StateMessage_ERROR, Type: "BuildFailed", Message: buildErr.Error()}}
			w.mu.Unlock()
			op.stage(functionspb.Stage_BUILD, functionspb.Stage_COMPLETE, "Build failed")
			op.finish(nil, status.Error(codes.InvalidArgument, buildErr.Error()))
			return
		}
		op.stage(functionspb.Stage_BUILD, functionspb.Stage_COMPLETE, "")
		op.stage(functionspb.Stage_SERVICE, functionspb.Stage_IN_PROGRESS, "")
		w.revisions[name.String()]++
		rev := fmt.Sprintf("%s-%05d-%s", name.function, w.revisions[name.String()], randomSuffix(3))
		old := f.inst
		f.bin, f.inst = bin, nil
		f.pb.State = functionspb.Function_ACTIVE
		f.pb.StateMessages = nil
		f.pb.UpdateTime = ts(w.s.now())
		f.pb.Url = w.functionURL(name)
		sc := f.pb.ServiceConfig
		sc.Uri = f.pb.Url
		sc.Revision = rev
		sc.Service = name.location.String() + "/services/" + name.function
		sc.AllTrafficOnLatestRevision = true
		f.pb.BuildConfig.Build = fmt.Sprintf("projects/%s/locations/%s/builds/%s", name.project, name.location.location, newUID())
		resp := clone(f.pb)
		w.mu.Unlock()
		if old != nil {
			// The new revision takes the traffic; the old instance is
			// shut down as Cloud Run retires a revision.
			old.shutdown()
		}
		op.stage(functionspb.Stage_SERVICE, functionspb.Stage_COMPLETE, "")
		op.stage(functionspb.Stage_TRIGGER, functionspb.Stage_COMPLETE, "")
		op.finish(resp, nil)
	}
	if w.s.cfg.instantOps {
		run()
		return
	}
	if !w.background(func() {
		t := time.NewTimer(w.s.cfg.reconcile)
		defer t.Stop()
		select {
		case <-t.C:
		case <-w.s.ctx.Done():
			op.finish(nil, status.Error(codes.Unavailable, "gcptest: the server is closing"))
			return
		}
		run()
	}) {
		op.finish(nil, status.Error(codes.Unavailable, "gcptest: the server is closing"))
	}
}

// prepareFunction validates a function a user sent for name and returns
// the copy to store, with Google's defaults filled in and output fields
// cleared.
func (w *functionsWiring) prepareFunction(in *functionspb.Function, name functionName) (*functionspb.Function, error) {
	if in == nil {
		return nil, invalid("function is required")
	}
	if err := validateLabels("function.labels", in.GetLabels()); err != nil {
		return nil, err
	}
	if in.GetEventTrigger() != nil {
		return nil, status.Error(codes.Unimplemented, "function.event_trigger is not supported by gcptest: it serves HTTP functions only")
	}
	bc := in.GetBuildConfig()
	if bc == nil {
		return nil, invalid("function.build_config is required")
	}
	if err := validateRuntime(bc.GetRuntime()); err != nil {
		return nil, err
	}
	src := bc.GetSource().GetStorageSource()
	if src == nil || src.GetBucket() == "" || src.GetObject() == "" {
		return nil, invalid("function.build_config.source.storage_source with a bucket and an object is required: upload the source to a URL from GenerateUploadUrl")
	}
	w.mu.Lock()
	_, uploaded := w.uploads[src.GetBucket()+"/"+src.GetObject()]
	w.mu.Unlock()
	if !uploaded {
		return nil, status.Errorf(codes.FailedPrecondition, "source gs://%s/%s does not exist: upload it to the URL GenerateUploadUrl returned first", src.GetBucket(), src.GetObject())
	}
	fn := &functionspb.Function{
		Name:        name.String(),
		Description: in.GetDescription(),
		Labels:      in.GetLabels(),
		Environment: functionspb.Environment_GEN_2,
		KmsKeyName:  in.GetKmsKeyName(),
		BuildConfig: &functionspb.BuildConfig{
			Runtime:              bc.GetRuntime(),
			EntryPoint:           bc.GetEntryPoint(),
			Source:               clone(bc.GetSource()),
			EnvironmentVariables: bc.GetEnvironmentVariables(),
			ServiceAccount:       bc.GetServiceAccount(),
			SourceProvenance:     &functionspb.SourceProvenance{ResolvedStorageSource: clone(src)},
		},
	}
	if in.GetEnvironment() == functionspb.Environment_GEN_1 {
		return nil, status.Error(codes.Unimplemented, "function.environment GEN_1 is not supported by gcptest: 1st gen functions are not served")
	}
	if fn.BuildConfig.EntryPoint == "" {
		fn.BuildConfig.EntryPoint = name.function
	}
	sc, err := w.prepareServiceConfig(in.GetServiceConfig(), name)
	if err != nil {
		return nil, err
	}
	fn.ServiceConfig = sc
	return clone(fn), nil
}

// validateRuntime refuses a runtime ListRuntimes does not list, or one
// that is decommissioned.
func validateRuntime(rt string) error {
	if rt == "" {
		return invalid("function.build_config.runtime is required")
	}
	for _, r := range functionRuntimes {
		if r.GetName() == rt {
			if r.GetStage() == functionspb.ListRuntimesResponse_DECOMMISSIONED {
				return invalid("function.build_config.runtime %q is decommissioned", rt)
			}
			return nil
		}
	}
	return invalid("function.build_config.runtime %q is not a supported runtime: see ListRuntimes", rt)
}

// prepareServiceConfig validates a service config and fills in Google's
// defaults: 60 s timeout, 256M of memory, the CPU that memory gets,
// concurrency 1, at most 100 instances.
func (w *functionsWiring) prepareServiceConfig(in *functionspb.ServiceConfig, name functionName) (*functionspb.ServiceConfig, error) {
	sc := &functionspb.ServiceConfig{}
	if in != nil {
		sc = clone(in)
	}
	sc.Uri, sc.Revision, sc.Service = "", "", ""
	switch t := sc.GetTimeoutSeconds(); {
	case t == 0:
		sc.TimeoutSeconds = functionDefaultTimeout
	case t < 1 || t > functionMaxTimeout:
		return nil, invalid("function.service_config.timeout_seconds %d must be 1 to %d for an HTTP function", t, functionMaxTimeout)
	}
	if sc.AvailableMemory == "" {
		sc.AvailableMemory = "256M"
	}
	mem, ok := parseQuantity(sc.AvailableMemory)
	if !ok || !mem.IsInt() {
		return nil, invalid("function.service_config.available_memory %q is not a quantity such as 256M, 512Mi or 1Gi", sc.AvailableMemory)
	}
	memBytes := mem.Num().Int64()
	if memBytes < 128<<20 || memBytes > 32<<30 {
		return nil, invalid("function.service_config.available_memory %q must be 128Mi to 32Gi", sc.AvailableMemory)
	}
	cpuMilli := defaultFunctionCPU(memBytes)
	if sc.AvailableCpu != "" {
		c, ok := parseQuantity(sc.AvailableCpu)
		if !ok {
			return nil, invalid("function.service_config.available_cpu %q is not a number of CPUs such as 0.5, 1 or 2", sc.AvailableCpu)
		}
		milli := new(big.Rat).Mul(c, big.NewRat(1000, 1))
		if !milli.IsInt() {
			return nil, invalid("function.service_config.available_cpu %q has a step finer than 0.001", sc.AvailableCpu)
		}
		cpuMilli = milli.Num().Int64()
		if err := validateFunctionCPU(cpuMilli, memBytes, sc.AvailableCpu, sc.AvailableMemory); err != nil {
			return nil, err
		}
	} else {
		sc.AvailableCpu = formatCPU(cpuMilli)
	}
	switch c := sc.GetMaxInstanceRequestConcurrency(); {
	case c == 0:
		sc.MaxInstanceRequestConcurrency = 1
	case c < 0 || c > functionMaxConcurrency:
		return nil, invalid("function.service_config.max_instance_request_concurrency %d must be 1 to %d", c, functionMaxConcurrency)
	case c > 1 && cpuMilli < 1000:
		return nil, invalid("function.service_config.max_instance_request_concurrency %d needs available_cpu of at least 1 (it is %s): an instance with less than one CPU serves one request at a time", c, sc.AvailableCpu)
	}
	if sc.GetMaxInstanceCount() < 0 || sc.GetMinInstanceCount() < 0 {
		return nil, invalid("function.service_config instance counts must not be negative")
	}
	if sc.MaxInstanceCount == 0 {
		sc.MaxInstanceCount = 100
	}
	if sc.MinInstanceCount > sc.MaxInstanceCount {
		return nil, invalid("function.service_config.min_instance_count %d is above max_instance_count %d", sc.MinInstanceCount, sc.MaxInstanceCount)
	}
	for k := range sc.GetEnvironmentVariables() {
		if err := validateFunctionEnvName(k); err != nil {
			return nil, err
		}
	}
	for i, s := range sc.GetSecretEnvironmentVariables() {
		if err := validateFunctionEnvName(s.GetKey()); err != nil {
			return nil, err
		}
		if s.GetSecret() == "" {
			return nil, invalid("function.service_config.secret_environment_variables[%d].secret is required", i)
		}
		project := s.GetProjectId()
		if project == "" {
			project = name.project
		}
		version := s.GetVersion()
		if version == "" {
			version = "latest"
		}
		if _, err := w.s.secrets.resolve(project, s.GetSecret(), version); err != nil {
			return nil, err
		}
	}
	if len(sc.GetSecretVolumes()) > 0 {
		return nil, status.Error(codes.Unimplemented, "function.service_config.secret_volumes are not supported by gcptest")
	}
	if sc.ServiceAccountEmail == "" {
		sc.ServiceAccountEmail = "compute@developer.gserviceaccount.com"
	}
	if sc.IngressSettings == functionspb.ServiceConfig_INGRESS_SETTINGS_UNSPECIFIED {
		sc.IngressSettings = functionspb.ServiceConfig_ALLOW_ALL
	}
	return sc, nil
}

// reservedFunctionEnv are the variables the runtime sets, which a
// function may not set.
var reservedFunctionEnv = map[string]bool{"PORT": true, "K_SERVICE": true, "K_REVISION": true, "K_CONFIGURATION": true, "FUNCTION_TARGET": true, "FUNCTION_SIGNATURE_TYPE": true}

func validateFunctionEnvName(k string) error {
	switch {
	case k == "" || strings.Contains(k, "="):
		return invalid("function.service_config: environment variable name %q must be non-empty and have no '='", k)
	case reservedFunctionEnv[k] || strings.HasPrefix(k, "X_GOOGLE_"):
		return invalid("function.service_config: environment variable %q is reserved by the runtime", k)
	}
	return nil
}

// defaultFunctionCPU is the CPU a memory size gets when none is given,
// as Google's table pairs them.
func defaultFunctionCPU(mem int64) int64 {
	switch {
	case mem <= 128<<20:
		return 83
	case mem <= 256<<20:
		return 167
	case mem <= 512<<20:
		return 333
	case mem <= 1<<30:
		return 583
	case mem <= 2<<30:
		return 1000
	case mem <= 4<<30:
		return 2000
	case mem <= 16<<30:
		return 4000
	}
	return 8000
}

// validateFunctionCPU applies Cloud Run's CPU and memory pairing, which a
// 2nd gen function's service follows: fractions below 1 up to 0.083, whole
// CPUs 1, 2, 4, 6 or 8, and the memory each allows.
func validateFunctionCPU(milli, mem int64, cpu, memory string) error {
	switch {
	case milli < 83:
		return invalid("function.service_config.available_cpu %q is below the minimum of 0.083", cpu)
	case milli > 1000 && milli%1000 != 0:
		return invalid("function.service_config.available_cpu %q: above 1, CPUs are whole numbers", cpu)
	case milli > 1000 && !slices.Contains([]int64{2000, 4000, 6000, 8000}, milli):
		return invalid("function.service_config.available_cpu %q must be 1, 2, 4, 6 or 8 above 1", cpu)
	case milli < 500 && mem > 512<<20, milli < 1000 && mem > 1<<30:
		return invalid("function.service_config.available_memory %q is too much for available_cpu %q: below 0.5 CPU at most 512Mi, below 1 at most 1Gi", memory, cpu)
	case milli >= 1000:
		if r, ok := wholeCPUMemory[milli]; ok && mem > r[1] {
			return invalid("function.service_config.available_memory %q is above the %d GiB that %s CPU allows", memory, r[1]>>30, cpu)
		}
	}
	return nil
}

func formatCPU(milli int64) string {
	if milli%1000 == 0 {
		return fmt.Sprint(milli / 1000)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(milli)/1000), "0"), ".")
}

// GetFunction returns a function.
func (w *functionsWiring) GetFunction(_ context.Context, req *functionspb.GetFunctionRequest) (*functionspb.Function, error) {
	n, err := parseFunctionName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetRevision() != "" {
		return nil, status.Error(codes.Unimplemented, "revision is not supported by gcptest")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.functions[n.String()]
	if f == nil {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found", n)
	}
	return clone(f.pb), nil
}

// ListFunctions lists a location's functions (or every location's, with
// "-"), in name order or, under RuleUnorderedLists, in none. Filter and
// order_by are refused: Google's filter language is not emulated.
func (w *functionsWiring) ListFunctions(_ context.Context, req *functionspb.ListFunctionsRequest) (*functionspb.ListFunctionsResponse, error) {
	v, ok := parseName(req.GetParent(), "projects", "locations")
	if !ok || v[0] == wildcard {
		return nil, badName("parent", req.GetParent(), "projects/{project}/locations/{location}")
	}
	if req.GetFilter() != "" || req.GetOrderBy() != "" {
		return nil, status.Error(codes.Unimplemented, "filter and order_by are not supported by gcptest")
	}
	prefix := req.GetParent() + "/functions/"
	if v[1] == wildcard {
		prefix = "projects/" + v[0] + "/locations/"
	}
	w.mu.Lock()
	var items []*functionspb.Function
	for name, f := range w.functions {
		if strings.HasPrefix(name, prefix) {
			items = append(items, clone(f.pb))
		}
	}
	w.mu.Unlock()
	page, next, err := listPage(w.s, items, (*functionspb.Function).GetName,
		func(a, b *functionspb.Function) int { return strings.Compare(a.GetName(), b.GetName()) },
		req.GetPageSize(), req.GetPageToken(), req.GetParent())
	if err != nil {
		return nil, err
	}
	return &functionspb.ListFunctionsResponse{Functions: page, NextPageToken: next}, nil
}

// UpdateFunction changes the fields the mask names (every field the
// request sets, without a mask) and deploys the result as a new revision.
func (w *functionsWiring) UpdateFunction(_ context.Context, req *functionspb.UpdateFunctionRequest) (*longrunningpb.Operation, error) {
	if err := w.available(); err != nil {
		return nil, err
	}
	in := req.GetFunction()
	n, err := parseFunctionName("function.name", in.GetName())
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	f := w.functions[n.String()]
	if f == nil {
		w.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found", n)
	}
	if st := f.pb.GetState(); st == functionspb.Function_DEPLOYING || st == functionspb.Function_DELETING {
		w.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "function %s is %s: wait for its operation to finish", n, st)
	}
	merged := clone(f.pb)
	w.mu.Unlock()
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = setFields(in)
	}
	for _, p := range paths {
		switch {
		case p == "labels":
			merged.Labels = in.GetLabels()
		case p == "description":
			merged.Description = in.GetDescription()
		case p == "build_config" || strings.HasPrefix(p, "build_config."):
			merged.BuildConfig = clone(in.GetBuildConfig())
		case p == "service_config" || strings.HasPrefix(p, "service_config."):
			merged.ServiceConfig = clone(in.GetServiceConfig())
		default:
			return nil, invalid("update_mask path %q is not supported: labels, description, build_config and service_config are", p)
		}
	}
	fn, err := w.prepareFunction(merged, n)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.functions[n.String()] != f || f.pb.GetState() == functionspb.Function_DEPLOYING || f.pb.GetState() == functionspb.Function_DELETING {
		w.mu.Unlock()
		return nil, status.Errorf(codes.Aborted, "function %s changed while it was updated: read it again and retry", n)
	}
	fn.CreateTime = f.pb.GetCreateTime()
	fn.UpdateTime = ts(w.s.now())
	fn.State = functionspb.Function_DEPLOYING
	fn.Url = f.pb.GetUrl()
	f.pb = fn
	w.mu.Unlock()
	op := w.startOp(n.location, n.String(), "update", functionspb.OperationType_UPDATE_FUNCTION, fn, deployStages)
	w.deploy(n, op)
	return w.s.opSnapshot(op.name)
}

// setFields are the top-level fields of f an update without a mask sets.
func setFields(f *functionspb.Function) []string {
	var paths []string
	if f.GetLabels() != nil {
		paths = append(paths, "labels")
	}
	if f.GetDescription() != "" {
		paths = append(paths, "description")
	}
	if f.GetBuildConfig() != nil {
		paths = append(paths, "build_config")
	}
	if f.GetServiceConfig() != nil {
		paths = append(paths, "service_config")
	}
	return paths
}

// DeleteFunction marks the function DELETING, shuts its instance down and
// forgets it; the operation's response is Empty.
func (w *functionsWiring) DeleteFunction(_ context.Context, req *functionspb.DeleteFunctionRequest) (*longrunningpb.Operation, error) {
	if err := w.available(); err != nil {
		return nil, err
	}
	n, err := parseFunctionName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	f := w.functions[n.String()]
	switch {
	case f == nil:
		w.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "Resource '%s' was not found", n)
	case f.pb.GetState() == functionspb.Function_DELETING:
		w.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "function %s is already being deleted", n)
	}
	f.pb.State = functionspb.Function_DELETING
	inst := f.inst
	f.inst = nil
	w.mu.Unlock()
	op := w.startOp(n.location, n.String(), "delete", functionspb.OperationType_DELETE_FUNCTION, nil,
		[]functionspb.Stage_Name{functionspb.Stage_SERVICE, functionspb.Stage_TRIGGER})
	run := func() {
		op.stage(functionspb.Stage_SERVICE, functionspb.Stage_IN_PROGRESS, "")
		if inst != nil {
			inst.shutdown()
		}
		w.mu.Lock()
		if w.functions[n.String()] == f {
			delete(w.functions, n.String())
		}
		delete(w.revisions, n.String())
		w.mu.Unlock()
		op.stage(functionspb.Stage_SERVICE, functionspb.Stage_COMPLETE, "")
		op.stage(functionspb.Stage_TRIGGER, functionspb.Stage_COMPLETE, "")
		op.finish(&emptypb.Empty{}, nil)
	}
	if w.s.cfg.instantOps {
		run()
	} else if !w.background(func() {
		t := time.NewTimer(w.s.cfg.reconcile)
		defer t.Stop()
		select {
		case <-t.C:
		case <-w.s.ctx.Done():
		}
		run()
	}) {
		run()
	}
	return w.s.opSnapshot(op.name)
}

// GenerateUploadUrl signs an upload URL on the room's HTTP listener for a
// new object of the location's uploads bucket.
func (w *functionsWiring) GenerateUploadUrl(_ context.Context, req *functionspb.GenerateUploadUrlRequest) (*functionspb.GenerateUploadUrlResponse, error) {
	if err := w.available(); err != nil {
		return nil, err
	}
	loc, err := parseLocation("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	if req.GetEnvironment() == functionspb.Environment_GEN_1 {
		return nil, status.Error(codes.Unimplemented, "environment GEN_1 is not supported by gcptest")
	}
	bucket := "gcf-v2-uploads-" + loc.project + "-" + loc.location
	object := newUID() + ".zip"
	w.mu.Lock()
	w.pending[bucket+"/"+object] = true
	w.mu.Unlock()
	return &functionspb.GenerateUploadUrlResponse{
		UploadUrl:     w.baseURL() + "/upload/" + bucket + "/" + object,
		StorageSource: &functionspb.StorageSource{Bucket: bucket, Object: object},
	}, nil
}

// ListRuntimes lists the runtimes 2nd gen functions are built on.
func (w *functionsWiring) ListRuntimes(_ context.Context, req *functionspb.ListRuntimesRequest) (*functionspb.ListRuntimesResponse, error) {
	if _, err := parseLocation("parent", req.GetParent()); err != nil {
		return nil, err
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "filter is not supported by gcptest")
	}
	resp := &functionspb.ListRuntimesResponse{}
	for _, r := range functionRuntimes {
		r := clone(r)
		r.Environment = functionspb.Environment_GEN_2
		resp.Runtimes = append(resp.Runtimes, r)
	}
	return resp, nil
}
