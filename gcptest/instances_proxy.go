package gcptest

import (
	"context"
	"net/http"
)

// An instance's URL (proxy.go), from the instance's creation to its
// deletion, in front of whatever attempt of its containers runs; the
// invoker check takes an ID token minted for the URL. A request waits
// while the containers start or restart; a stopped instance answers
// 503.

// instanceProxy serves one instance's URL.
type instanceProxy struct {
	*urlServer
	r    *instancesRoom
	name string
}

// newProxy starts the URL of the instance named name.
func (r *instancesRoom) newProxy(name string) (*instanceProxy, error) {
	u, err := listenURL()
	if err != nil {
		return nil, err
	}
	p := &instanceProxy{urlServer: u, r: r, name: name}
	u.serve(p)
	return p, nil
}

// attempt returns the attempt of in's containers that serves, waiting
// while they start, stop or restart; nil when nothing runs (the
// instance is stopped, completed or failed, or gone) or ctx ends first.
func (p *instanceProxy) attempt(ctx context.Context, in *instance) *instanceAttempt {
	r := p.r
	for {
		r.mu.Lock()
		run := in.run
		if run == nil || in.deleted || r.closed {
			r.mu.Unlock()
			return nil
		}
		att, changed := run.att, run.changed
		r.mu.Unlock()
		if att != nil {
			select {
			case <-att.ending:
			case <-att.ready:
				select {
				case <-att.ending:
				default:
					if att.err == nil {
						return att
					}
				}
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

func (p *instanceProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := p.r
	r.mu.Lock()
	in := r.instances.byName[p.name]
	if in == nil || r.closed {
		r.mu.Unlock()
		notFoundPage(w)
		return
	}
	ingress := in.pb.GetIngress()
	iamDisabled := in.pb.GetInvokerIamDisabled()
	r.mu.Unlock()
	if !admit(r.s, w, req, ingress, iamDisabled, []string{p.url}, nil) {
		return
	}
	att := p.attempt(req.Context(), in)
	if att == nil {
		if req.Context().Err() == nil {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		}
		return
	}
	r.transports.forward(w, req, att.addr, att.h2c)
}
