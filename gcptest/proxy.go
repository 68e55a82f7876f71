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
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
)

// A URL of its own, as a Cloud Run service and instance have: a reverse
// proxy on a loopback port in front of the containers, as Google's
// front end is in front of Cloud Run's. It applies the resource's
// ingress setting and, unless invoker_iam_disabled, the invoker IAM
// check (an ID token this Server minted for the URL or one of the
// resource's custom audiences), and passes everything else through,
// HTTP/1.1 upgrades (WebSocket) and HTTP/2 without TLS included. The
// rooms say what serves (services_proxy.go, instances_proxy.go).

// urlServer is the listener and HTTP server of one URL.
type urlServer struct {
	url  string
	lis  net.Listener
	srv  *http.Server
	once sync.Once
}

// listenURL takes a loopback port for a URL; serve starts it.
func listenURL() (*urlServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &urlServer{lis: lis, url: "http://" + lis.Addr().String()}, nil
}

// serve answers the URL's requests with h, over HTTP/1.1 and HTTP/2
// without TLS.
func (u *urlServer) serve(h http.Handler) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	u.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, Protocols: &protos}
	go u.srv.Serve(u.lis)
}

// close stops the URL: new connections are refused, and open ones are
// closed (an upgraded connection ends with the containers behind it).
func (u *urlServer) close() {
	u.once.Do(func() { u.srv.Close() })
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

// admit applies a URL's ingress setting and invoker check to req: false,
// having answered it, when req may not pass. An ID token may be minted
// for one of urls or of the custom audiences custom.
func admit(s *Server, w http.ResponseWriter, req *http.Request, ingress runpb.IngressTraffic, iamDisabled bool, urls, custom []string) bool {
	// Ingress: the URL is reached from outside any VPC network.
	if ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_ALL {
		notFoundPage(w)
		return false
	}
	if !iamDisabled {
		switch authorized(s, req, urls, custom) {
		case http.StatusForbidden:
			googleErrorPage(w, http.StatusForbidden, "403 Forbidden", "Forbidden", fmt.Sprintf("Your client does not have permission to get URL <code>%s</code> from this server.", html.EscapeString(req.URL.Path)))
			return false
		case http.StatusUnauthorized:
			googleErrorPage(w, http.StatusUnauthorized, "401 Unauthorized", "Unauthorized", fmt.Sprintf("Your client does not have permission to the requested URL <code>%s</code>.", html.EscapeString(req.URL.Path)))
			return false
		}
	}
	return true
}

// forward passes req to the container listening on addr, over HTTP/2
// without TLS when h2c. A request whose context's deadline passes
// answers 504, one the container does not take 503.
func (t *proxyTransports) forward(w http.ResponseWriter, req *http.Request, addr string, h2c bool) {
	tr := t.http1
	if h2c {
		tr = t.h2c
	}
	ctx := req.Context()
	target := &url.URL{Scheme: "http", Host: addr}
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
	rp.ServeHTTP(w, req)
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
