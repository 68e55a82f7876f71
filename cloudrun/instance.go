package cloudrun

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"google.golang.org/genproto/googleapis/api"
)

// The conditions of an instance gantry reads, as gcloud does: Running is
// its terminal condition, true while its containers run; the time of
// ResourcesAvailable's last change is when its containers last started.
const (
	condResources = "ResourcesAvailable"
)

// instanceFor maps a validated spec to the Cloud Run instance that runs
// it under the agent (see Kind). The instance's own restart policy is
// NEVER: the agent restarts the main process as Docker's policy says,
// in the same container, and the instance stops when the agent exits.
// A published port is the instance's ingress: the agent listens on
// Cloud Run's PORT and passes each connection to the port inside the
// container. It makes no call.
func (r *Runtime) instanceFor(rec meta.Record, plan *agentPlan) (*runpb.Instance, error) {
	s := &rec.Spec
	if s.Timeout > 0 {
		return nil, refuse("Timeout", s.Timeout.String(), "an instance runs until it is stopped: Cloud Run bounds a job's task, not an instance")
	}
	for i, p := range s.Ports {
		if p.Protocol == "udp" {
			return nil, refuse(fmt.Sprintf("Ports[%d].Protocol", i), p.Protocol, "Cloud Run takes TCP connections only")
		}
	}
	for i, kv := range s.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "PORT" {
			return nil, invalid(fmt.Sprintf("Env[%d]", i), k, "Cloud Run sets PORT itself; in an instance the container sees its first published port there")
		}
	}
	flags, err := instanceFlags(s)
	if err != nil {
		return nil, err
	}
	p := *plan
	p.extra = flags
	j, err := r.workloadFor(rec, &p, KindInstance)
	if err != nil {
		return nil, err
	}
	t := j.GetTemplate().GetTemplate()
	in := &runpb.Instance{
		Labels:         j.Labels,
		Annotations:    j.Annotations,
		Client:         "gantry",
		LaunchStage:    api.LaunchStage_BETA,
		ServiceAccount: t.GetServiceAccount(),
		Containers:     t.GetContainers(),
		Volumes:        t.GetVolumes(),
		NodeSelector:   t.GetNodeSelector(),
		RestartPolicy:  runpb.Instance_NEVER,
		Ingress:        runpb.IngressTraffic_INGRESS_TRAFFIC_ALL,
	}
	if len(s.Ports) > 0 {
		in.Containers[0].Ports = []*runpb.ContainerPort{{Name: "http1", ContainerPort: int32(plan.ingress)}}
	}
	return in, nil
}

// instanceFlags are the agent's flags for a container of spec s run as
// an instance: the gate (Start runs the command), the restart policy,
// the healthcheck and the ingress port.
func instanceFlags(s *gantry.Spec) ([]string, error) {
	flags := []string{"-gate"}
	if hasRestartPolicy(s) {
		policy := s.RestartPolicy.Name
		if s.RestartPolicy.MaxRetries > 0 {
			policy += ":" + strconv.Itoa(s.RestartPolicy.MaxRetries)
		}
		flags = append(flags, "-restart", policy)
	}
	if hasHealthcheck(s) {
		hc, err := json.Marshal(s.Healthcheck)
		if err != nil {
			return nil, err
		}
		flags = append(flags, "-healthcheck", string(hc))
	}
	if len(s.Ports) > 0 {
		flags = append(flags, "-ingress", strconv.Itoa(s.Ports[0].Port))
	}
	return flags, nil
}

// ingressPort draws the port the agent serves an instance's ingress on,
// from the sidecar's range and other than its readiness port.
func ingressPort(avoid int) (int, error) {
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(maxReadyPort-minReadyPort+1))
		if err != nil {
			return 0, err
		}
		if p := minReadyPort + int(n.Int64()); p != avoid {
			return p, nil
		}
	}
}

func (r *Runtime) instanceName(id string) string { return r.parent + "/instances/" + id }

// getInstance reads instance id as a container.
func (r *Runtime) getInstance(ctx context.Context, id string) (*job, error) {
	pb, err := r.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: r.instanceName(id)}, gcperr.Retry())
	if err != nil {
		return nil, err
	}
	rec, err := meta.Decode(pb.GetLabels(), pb.GetAnnotations())
	if err != nil {
		return nil, &corruptError{job: pb.GetName(), err: err}
	}
	r.sawInstances.Store(true)
	return &job{in: pb, rec: rec}, nil
}

// listInstances returns every gantry instance in the region.
func (r *Runtime) listInstances(ctx context.Context) ([]*job, error) {
	it := r.instances.ListInstances(ctx, &runpb.ListInstancesRequest{Parent: r.parent, PageSize: 1000}, gcperr.Retry())
	return listManaged(ctx, r, it.Next, "instances", func(pb *runpb.Instance, rec meta.Record) *job {
		return &job{in: pb, rec: rec}
	})
}

// instanceUp reports whether an instance's containers run (or are being
// started or restarted by Cloud Run): it is not stopped.
func instanceUp(in *runpb.Instance) bool {
	return in.GetTerminalCondition().GetState() != runpb.Condition_CONDITION_FAILED
}

// instanceStopping reports whether Cloud Run is stopping the instance.
func instanceStopping(in *runpb.Instance) bool {
	tc := in.GetTerminalCondition()
	return tc.GetState() == runpb.Condition_CONDITION_RECONCILING && tc.GetInstanceReason() == runpb.Condition_INSTANCE_STOPPING
}

// startedAt is when the instance's containers last started: the last
// change of its ResourcesAvailable condition, else its update time.
func startedAt(in *runpb.Instance) time.Time {
	for _, c := range in.GetConditions() {
		if c.GetType() == condResources && c.GetState() == runpb.Condition_CONDITION_SUCCEEDED {
			return timeOf(c.GetLastTransitionTime())
		}
	}
	return timeOf(in.GetUpdateTime())
}

// stoppedTime is when the instance stopped: its terminal condition's
// last change.
func stoppedTime(in *runpb.Instance) time.Time {
	return timeOf(in.GetTerminalCondition().GetLastTransitionTime())
}
