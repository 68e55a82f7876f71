package gcptest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
)

// A service's URL: a reverse proxy on a loopback port of its own, in
// front of the service's instance, as Google's front end is in front of
// Cloud Run's. It applies the service's ingress setting and, unless
// invoker_iam_disabled, the invoker IAM check (an ID token this Server
// minted for the service's URL or one of its custom audiences), starts
// an instance when none runs, bounds each request by the revision's
// timeout and passes everything else through, HTTP/1.1 upgrades
// (WebSocket) and HTTP/2 without TLS included.

// serviceProxy serves one service's URL.
type serviceProxy struct {
	r    *servicesRoom
	name string
	url  string
	lis  net.Listener
	srv  *http.Server
	once sync.Once
}

// proxyTransports reach the instances: HTTP/1.1 for a port named http1,
// HTTP/2 without TLS for h2c.
type proxyTransports struct {
	http1, h2c *http.Transport
}

func newProxyTransports() *proxyTransports {
	http1 := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Transport{Proxy: nil, Protocols: &p, IdleConnTimeout: 30 * time.Second}
	return &proxyTransports{http1: http1, h2c: h2c}
}

func (t *proxyTransports) close() {
	t.http1.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}

// newProxy starts the URL of the service named name.
func (r *servicesRoom) newProxy(name string) (*serviceProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &serviceProxy{r: r, name: name, lis: lis, url: "http://" + lis.Addr().String()}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, Protocols: &protos}
	go p.srv.Serve(lis)
	return p, nil
}

// close stops the URL: new connections are refused, and open ones are
// closed (an upgraded connection ends with the instance behind it).
func (p *serviceProxy) close() {
	p.once.Do(func() { p.srv.Close() })
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
	sv := r.services[p.name]
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

	// Ingress: the URL is reached from outside any VPC network.
	if ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_ALL {
		notFoundPage(w)
		return
	}
	if !iamDisabled {
		switch authorized(r.s, req, urls, custom) {
		case http.StatusForbidden:
			googleErrorPage(w, http.StatusForbidden, "403 Forbidden", "Forbidden", fmt.Sprintf("Your client does not have permission to get URL <code>%s</code> from this server.", html.EscapeString(req.URL.Path)))
			return
		case http.StatusUnauthorized:
			googleErrorPage(w, http.StatusUnauthorized, "401 Unauthorized", "Unauthorized", fmt.Sprintf("Your client does not have permission to the requested URL <code>%s</code>.", html.EscapeString(req.URL.Path)))
			return
		}
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
	tr := r.transports.http1
	if in.h2c {
		tr = r.transports.h2c
	}
	target := &url.URL{Scheme: "http", Host: in.addr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				http.Error(w, "upstream request timeout", http.StatusGatewayTimeout)
				return
			}
			http.Error(w, "upstream connect error or disconnect/reset before headers: "+err.Error(), http.StatusServiceUnavailable)
		},
	}
	rp.ServeHTTP(w, req.WithContext(ctx))
}

// authorized applies Cloud Run's invoker check to a request: 0 when it
// carries "Authorization: Bearer" and an ID token this Server minted for
// one of the service's URLs (with or without a trailing slash) or
// custom audiences, unexpired; 403 when it carries no bearer token; 401
// when the token is not one.
func authorized(s *Server, req *http.Request, urls, custom []string) int {
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return http.StatusForbidden
	}
	c, err := s.idTokens.verify(tok)
	if err != nil {
		return http.StatusUnauthorized
	}
	for _, u := range urls {
		if c.Aud == u || c.Aud == u+"/" {
			return 0
		}
	}
	for _, a := range custom {
		if c.Aud == a {
			return 0
		}
	}
	return http.StatusUnauthorized
}

// googleErrorPage answers with the HTML page Google's front end gives
// for an error.
func googleErrorPage(w http.ResponseWriter, code int, title, heading, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "\n<html><head>\n<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n<title>%s</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: %s</h1>\n<h2>%s</h2>\n<h2></h2>\n</body></html>\n", title, heading, msg)
}

// notFoundPage is Google's answer for a URL it does not serve.
func notFoundPage(w http.ResponseWriter) {
	googleErrorPage(w, http.StatusNotFound, "404 Page not found", "Page not found", "The requested URL was not found on this server.")
}
