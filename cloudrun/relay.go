package cloudrun

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/lro"
	"github.com/gantryhq/gantry/internal/meta"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultRelayService is the name of the Cloud Run service a Runtime
// deploys the relay as, when AgentConfig.RelayImage asks it to.
const DefaultRelayService = "gantry-relay"

// relayPort is the port the relay listens on: Cloud Run's default $PORT.
const relayPort = 8080

// relayDeployer finds or deploys the relay service once per Runtime.
type relayDeployer struct {
	services *run.ServicesClient
	mu       sync.Mutex
	url      string
}

// relayURL returns the URL of the relay the Runtime's containers dial:
// AgentConfig.Relay, or the service it deploys from RelayImage (found,
// created, or updated to that image, once per Runtime).
func (r *Runtime) relayURL(ctx context.Context) (string, error) {
	a := r.agent
	if a.cfg.Relay != "" {
		return a.cfg.Relay, nil
	}
	d := a.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.url != "" {
		return d.url, nil
	}
	svc, err := r.ensureRelay(ctx, true)
	if err != nil {
		return "", err
	}
	if !serving(svc) {
		return "", fmt.Errorf("%w: the relay service %s is not ready: %s", gantry.ErrUnavailable, svc.GetName(), svc.GetTerminalCondition().GetMessage())
	}
	if svc.GetUri() == "" {
		return "", fmt.Errorf("%w: the relay service %s is ready but has no URL", gantry.ErrUnavailable, svc.GetName())
	}
	d.url = strings.TrimSuffix(svc.GetUri(), "/")
	r.log.Debug("relay", zap.String("service", svc.GetName()), zap.String("url", d.url))
	return d.url, nil
}

// relayServiceName is the full name of the relay service.
func (r *Runtime) relayServiceName() string {
	return r.parent + "/services/" + r.agent.cfg.RelayService
}

// relayService is the service that runs the relay image: one container
// listening on $PORT, reachable from anywhere but only by invokers with
// an ID token (Cloud Run's IAM), on exactly one instance: a relay pairs
// the agents and clients that reach the same process, so it must not
// scale out, and it stays warm so that they meet without a cold start;
// with the longest request
// timeout Cloud Run allows, as every session is one long request.
func (r *Runtime) relayService() *runpb.Service {
	labels := map[string]string{meta.LabelManagedBy: meta.ManagedByValue}
	for k, v := range r.cfg.Labels {
		labels[k] = v
	}
	return &runpb.Service{
		Labels:      labels,
		Client:      "gantry",
		Description: "gantry's relay: pairs gantry agents in Cloud Run containers with the programs that exec into them",
		Ingress:     runpb.IngressTraffic_INGRESS_TRAFFIC_ALL,
		Template: &runpb.RevisionTemplate{
			Labels:                        labels,
			Scaling:                       &runpb.RevisionScaling{MinInstanceCount: 1, MaxInstanceCount: 1},
			Timeout:                       durationpb.New(relayRequestTimeout),
			MaxInstanceRequestConcurrency: 1000,
			ServiceAccount:                r.cfg.ServiceAccount,
			Containers: []*runpb.Container{{
				Image: r.agent.cfg.RelayImage,
				Ports: []*runpb.ContainerPort{{ContainerPort: relayPort}},
			}},
		},
	}
}

// serving reports whether a service is ready to take requests.
func serving(svc *runpb.Service) bool {
	return !svc.GetReconciling() && svc.GetTerminalCondition().GetState() == runpb.Condition_CONDITION_SUCCEEDED
}

// ensureRelay finds the relay service, creating it when it is missing,
// and waits until it serves. One that serves is used as it is, whatever
// image it runs (the protocol is the same, and Runtimes of two library
// versions must not redeploy it in turn); one that does not is updated to
// RelayImage. A service of that name that gantry did not make is left
// alone: that is an error.
func (r *Runtime) ensureRelay(ctx context.Context, retry bool) (*runpb.Service, error) {
	svcs := r.agent.deploy.services
	name := r.relayServiceName()
	cur, err := svcs.GetService(ctx, &runpb.GetServiceRequest{Name: name}, gcperr.Retry())
	switch {
	case gcperr.Is(err, codes.NotFound):
		op, err := svcs.CreateService(ctx, &runpb.CreateServiceRequest{Parent: r.parent, ServiceId: r.agent.cfg.RelayService, Service: r.relayService()})
		if gcperr.Is(err, codes.AlreadyExists) && retry {
			// Another Runtime made it meanwhile.
			return r.ensureRelay(ctx, false)
		}
		if err != nil {
			return nil, gcperr.Wrap(ctx, err, "deploy the relay service %s", name)
		}
		svc, err := lro.Wait(ctx, op, r.cfg.PollInterval)
		if err != nil {
			return nil, gcperr.Wrap(ctx, err, "deploy the relay service %s", name)
		}
		return svc, nil
	case err != nil:
		return nil, gcperr.Wrap(ctx, err, "read the relay service %s", name)
	case !meta.Managed(cur.GetLabels()):
		return nil, fmt.Errorf("%w: the service %s exists and is not gantry's; name another with AgentConfig.RelayService", gantry.ErrConflict, name)
	}
	if serving(cur) {
		if cs := cur.GetTemplate().GetContainers(); len(cs) != 1 || cs[0].GetImage() != r.agent.cfg.RelayImage {
			r.log.Info("using the relay service as it is, on another image than AgentConfig.RelayImage", zap.String("service", name))
		}
		return cur, nil
	}
	want := r.relayService()
	want.Name = name
	op, err := svcs.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: want})
	if err != nil {
		return nil, gcperr.Wrap(ctx, err, "update the relay service %s", name)
	}
	svc, err := lro.Wait(ctx, op, r.cfg.PollInterval)
	if err != nil {
		return nil, gcperr.Wrap(ctx, err, "update the relay service %s", name)
	}
	return svc, nil
}

// DeleteRelay deletes the relay service this Runtime deploys
// (AgentConfig.RelayImage), which Sweep leaves alone as every session
// shares it. Containers still running lose their agents' connection
// until a Runtime deploys it again. Without a deployed relay it does
// nothing.
func (r *Runtime) DeleteRelay(ctx context.Context) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "delete relay", "")
	if err := r.state.Err(); err != nil {
		return err
	}
	if r.agent == nil || r.agent.deploy == nil {
		return nil
	}
	d := r.agent.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	name := r.relayServiceName()
	cur, err := d.services.GetService(ctx, &runpb.GetServiceRequest{Name: name}, gcperr.Retry())
	switch {
	case gcperr.Is(err, codes.NotFound):
		d.url = ""
		return nil
	case err != nil:
		return gcperr.Wrap(ctx, err, "read the relay service %s", name)
	case !meta.Managed(cur.GetLabels()):
		return fmt.Errorf("%w: the service %s is not gantry's", gantry.ErrConflict, name)
	}
	op, err := d.services.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: name})
	if err == nil {
		_, err = lro.Wait(ctx, op, r.cfg.PollInterval)
	}
	if err != nil && !gcperr.Is(err, codes.NotFound) {
		return gcperr.Wrap(ctx, err, "delete the relay service %s", name)
	}
	d.url = ""
	return nil
}

// relayOf returns the relay a job's agent dials, from the job itself (the
// agent's -relay argument), so that any Runtime reaches it.
func relayOf(j *job) (string, bool) {
	cs := j.containers()
	if len(cs) == 0 {
		return "", false
	}
	args := cs[0].GetArgs()
	for i := 0; i+1 < len(args) && args[i] != "--"; i++ {
		if args[i] != "-relay" {
			continue
		}
		u, err := url.Parse(args[i+1])
		if err != nil {
			return "", false
		}
		u.RawQuery = ""
		u.Path = strings.TrimSuffix(u.Path, "/agent")
		return u.String(), true
	}
	return "", false
}

// relayRequestTimeout is the relay service's request timeout: Cloud
// Run's maximum, an hour (https://cloud.google.com/run/docs/configuring/request-timeout).
// A session longer than that is cut, and an idle agent connection is
// replaced by a new one.
const relayRequestTimeout = time.Hour

// validServiceID reports whether id is a Cloud Run service name: up to 49
// lowercase letters, digits and hyphens, starting with a letter and not
// ending with a hyphen.
func validServiceID(id string) bool {
	if id == "" || len(id) > 49 || id[0] < 'a' || id[0] > 'z' || id[len(id)-1] == '-' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
