package gcptest

import (
	"context"
	"net/http"
	"slices"
)

// A service's URL (proxy.go): it starts an instance of the latest ready
// revision when none runs, and bounds each request by the revision's
// timeout.

// serviceProxy serves one service's URL.
type serviceProxy struct {
	*urlServer
	r    *servicesRoom
	name string
}

// newProxy starts the URL of the service named name.
func (r *servicesRoom) newProxy(name string) (*serviceProxy, error) {
	u, err := listenURL()
	if err != nil {
		return nil, err
	}
	p := &serviceProxy{urlServer: u, r: r, name: name}
	u.serve(p)
	return p, nil
}

// instanceForLocked returns the instance serving sv, starting one of its
// latest ready revision when none runs (the first request after its
// instance ended); nil when no revision is ready. The caller holds r.mu.
func (r *servicesRoom) instanceForLocked(sv *service) *serviceInstance {
	if in := sv.inst; in != nil {
		select {
		case <-in.done:
		default:
			return in
		}
	}
	// An instance of a new revision that had to stop the old one (they
	// share a port) takes the requests once it is ready.
	if in := sv.pending; in != nil {
		if sv.inst != nil && slices.ContainsFunc(sv.inst.ports, func(p int) bool { return slices.Contains(in.ports, p) }) {
			return in
		}
	}
	if sv.serving == nil || r.closed {
		return nil
	}
	sv.inst = r.startInstanceLocked(sv, sv.serving)
	return sv.inst
}

func (p *serviceProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := p.r
	r.mu.Lock()
	sv := r.services.byName[p.name]
	if sv == nil || r.closed {
		r.mu.Unlock()
		notFoundPage(w)
		return
	}
	ingress := sv.pb.GetIngress()
	iamDisabled := sv.pb.GetInvokerIamDisabled()
	urls := append([]string{p.url}, sv.pb.GetUrls()...)
	custom := sv.pb.GetCustomAudiences()
	r.mu.Unlock()
	if !admit(r.s, w, req, ingress, iamDisabled, urls, custom) {
		return
	}
	r.mu.Lock()
	var in *serviceInstance
	timeout := defaultRequestTimeout
	if !sv.deleted {
		in = r.instanceForLocked(sv)
		if sv.serving != nil {
			timeout = sv.serving.tmpl.GetTimeout().AsDuration()
		}
	}
	r.mu.Unlock()
	if in == nil {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	select {
	case <-in.ready:
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			http.Error(w, "upstream request timeout", http.StatusGatewayTimeout)
		}
		return
	}
	if in.err != nil {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	r.transports.forward(w, req.WithContext(ctx), in.addr, in.h2c)
}
