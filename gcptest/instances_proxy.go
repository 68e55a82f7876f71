package gcptest

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
)

// An instance's URL: a reverse proxy on a loopback port of its own, from
// the instance's creation to its deletion, in front of whatever attempt
// of its containers runs. It applies the instance's ingress setting and,
// unless invoker_iam_disabled, the invoker IAM check (an ID token this
// Server minted for the URL), as a service's URL does (proxy.go). A
// request waits while the containers start or restart; a stopped
// instance answers 503.

// instanceProxy serves one instance's URL.
type instanceProxy struct {
	r    *instancesRoom
	name string
	url  string
	srv  *http.Server
	once sync.Once
}

// newProxy starts the URL of the instance named name.
func (r *instancesRoom) newProxy(name string) (*instanceProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &instanceProxy{r: r, name: name, url: "http://" + lis.Addr().String()}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, Protocols: &protos}
	go p.srv.Serve(lis)
	return p, nil
}

// close stops the URL: new connections are refused, and open ones are
// closed.
func (p *instanceProxy) close() {
	p.once.Do(func() { p.srv.Close() })
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
	in := r.instances[p.name]
	if in == nil || r.closed {
		r.mu.Unlock()
		notFoundPage(w)
		return
	}
	ingress := in.pb.GetIngress()
	iamDisabled := in.pb.GetInvokerIamDisabled()
	r.mu.Unlock()

	// Ingress: the URL is reached from outside any VPC network.
	if ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_ALL {
		notFoundPage(w)
		return
	}
	if !iamDisabled {
		switch authorized(r.s, req, []string{p.url}, nil) {
		case http.StatusForbidden:
			googleErrorPage(w, http.StatusForbidden, "403 Forbidden", "Forbidden", fmt.Sprintf("Your client does not have permission to get URL <code>%s</code> from this server.", html.EscapeString(req.URL.Path)))
			return
		case http.StatusUnauthorized:
			googleErrorPage(w, http.StatusUnauthorized, "401 Unauthorized", "Unauthorized", fmt.Sprintf("Your client does not have permission to the requested URL <code>%s</code>.", html.EscapeString(req.URL.Path)))
			return
		}
	}
	att := p.attempt(req.Context(), in)
	if att == nil {
		if req.Context().Err() == nil {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		}
		return
	}
	tr := r.transports.http1
	if att.h2c {
		tr = r.transports.h2c
	}
	target := &url.URL{Scheme: "http", Host: att.addr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "upstream connect error or disconnect/reset before headers: "+err.Error(), http.StatusServiceUnavailable)
		},
	}
	rp.ServeHTTP(w, req)
}
