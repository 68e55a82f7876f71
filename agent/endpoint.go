package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gantryhq/gantry"
)

// maxEndpointLen bounds an endpoint on the wire and in configuration.
const maxEndpointLen = 1024

// endpointOf returns the form in which a URL is bound into the handshake, so
// that both sides compute the same bytes from URLs written differently:
// scheme ws or wss (http and https are the same), host in lower case, no
// default port, path as written ("/" when empty), and no user
// information, query or fragment. Those last three carry credentials or
// per-request parameters (a signed URL's expiry, say) rather than the
// identity of the server, and binding them would make an endpoint that
// both sides must agree on change from one dial to the next.
func endpointOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: endpoint: %v", gantry.ErrInvalidArgument, err)
	}
	var scheme, defaultPort string
	switch u.Scheme {
	case "ws", "http":
		scheme, defaultPort = "ws", "80"
	case "wss", "https":
		scheme, defaultPort = "wss", "443"
	default:
		return "", fmt.Errorf("%w: endpoint %q: scheme %q, want ws or wss", gantry.ErrInvalidArgument, rawURL, u.Scheme)
	}
	host := strings.ToLower(u.Hostname())
	if u.Opaque != "" || host == "" {
		return "", fmt.Errorf("%w: endpoint %q has no host", gantry.ErrInvalidArgument, rawURL)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && p != defaultPort {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	ep := scheme + "://" + host + path
	if len(ep) > maxEndpointLen {
		return "", fmt.Errorf("%w: endpoint of %d bytes, longer than %d", gantry.ErrInvalidArgument, len(ep), maxEndpointLen)
	}
	return ep, nil
}

// endpoints canonicalises a configured list of endpoints.
func endpoints(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, raw := range list {
		ep, err := endpointOf(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	return out, nil
}

// binding is one side's part in binding the endpoint into the handshake.
// The side that dialled knows the endpoint it dialled and names it; the
// side that accepted checks the named endpoint against those it serves.
// Each side computes its MACs over its own view, so a relay that rewrites
// the endpoint it forwards only makes the two views, and the MACs, differ.
type binding struct {
	dialled string
	serves  func(endpoint string) error
}

// errNotServed marks an endpoint the accepting side does not serve.
var errNotServed = errors.New("agent: the peer dialled an endpoint not served here")

// servesListed accepts exactly the configured endpoints.
func servesListed(list []string) func(string) error {
	return func(ep string) error {
		if slices.Contains(list, ep) {
			return nil
		}
		return fmt.Errorf("%w: %q is not one of %q", errNotServed, ep, list)
	}
}

// servesLoopback is the policy when no endpoints are configured: the
// dialer must have dialled the loopback address and port this connection
// arrived on (or localhost and that port), with TLS if and only if it is
// used. The kernel, not the peer, says where a connection arrived, so a
// relay on another port or host cannot pass; an endpoint behind a proxy,
// a load balancer or port forwarding has to be configured. The path is
// not checked: one address and port is one listener, so it cannot lead
// to another party.
func servesLoopback(r *http.Request) func(string) error {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	scheme, defaultPort := "ws", "80"
	if r.TLS != nil {
		scheme, defaultPort = "wss", "443"
	}
	return func(ep string) error {
		if local == nil || !local.IP.IsLoopback() {
			return fmt.Errorf("%w: %q, and no endpoints are configured for a connection that did not arrive on a loopback address", errNotServed, ep)
		}
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != scheme {
			return fmt.Errorf("%w: %q is not a %s:// URL of this connection's loopback address %s", errNotServed, ep, scheme, local)
		}
		port := u.Port()
		if port == "" {
			port = defaultPort
		}
		host := u.Hostname()
		ip := net.ParseIP(host)
		if port != strconv.Itoa(local.Port) || host != "localhost" && (ip == nil || !ip.Equal(local.IP)) {
			return fmt.Errorf("%w: %q is not this connection's loopback address %s", errNotServed, ep, local)
		}
		return nil
	}
}
