package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestEndpointForm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wss://Svc-123.a.run.app", "wss://svc-123.a.run.app/"},
		{"https://svc.example.com:443/agent", "wss://svc.example.com/agent"},
		{"ws://127.0.0.1:80/", "ws://127.0.0.1/"},
		{"http://127.0.0.1:8080/x/", "ws://127.0.0.1:8080/x/"},
		{"wss://user:pass@hub.example.com/agents?token=abc#frag", "wss://hub.example.com/agents"},
		{"ws://[::1]:9000/a%2Fb", "ws://[::1]:9000/a%2Fb"},
		{"WSS://HUB.example.com:8443", "wss://hub.example.com:8443/"},
	} {
		got, err := endpointOf(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("endpointOf(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if again, _ := endpointOf(got); again != got {
			t.Errorf("endpointOf(%q) = %q: not a fixed point", got, again)
		}
	}
	for _, bad := range []string{"ftp://host/", "ws:///path", "mailto:x@example.com", "wss://h/" + strings.Repeat("p", maxEndpointLen)} {
		if _, err := endpointOf(bad); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("endpointOf(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	if _, err := Start(Config{Cmd: []string{"true"}, Secret: testSecret, Endpoints: []string{"ftp://x/"}}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Start with a bad endpoint: %v, want ErrInvalidArgument", err)
	}
	if _, err := NewHub(testSecrets, &HubOptions{Endpoints: []string{"ftp://x/"}}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("NewHub with a bad endpoint: %v, want ErrInvalidArgument", err)
	}
}

// TestLoopbackPolicy: with no endpoints configured, only the loopback
// address and port the connection arrived on is served, with TLS exactly
// when the connection uses it.
func TestLoopbackPolicy(t *testing.T) {
	request := func(local net.Addr, useTLS bool) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		if useTLS {
			r.TLS = &tls.ConnectionState{}
		}
		return r
	}
	v4 := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	v6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 443}
	lan := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}
	for _, tc := range []struct {
		local    net.Addr
		tls      bool
		endpoint string
		ok       bool
	}{
		{v4, false, "ws://127.0.0.1:8080/", true},
		{v4, false, "ws://localhost:8080/agent", true},
		{v4, false, "ws://127.0.0.1:8081/", false},
		{v4, false, "ws://127.0.0.2:8080/", false},
		{v4, false, "wss://127.0.0.1:8080/", false},
		{v4, true, "wss://127.0.0.1:8080/", true},
		{v4, false, "ws://evil.example:8080/", false},
		{v6, true, "wss://[::1]/", true},
		{v6, true, "wss://[::1]:8443/", false},
		{lan, false, "ws://10.0.0.5:8080/", false},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, false, "ws://localhost/", false},
	} {
		err := servesLoopback(request(tc.local, tc.tls))(tc.endpoint)
		if (err == nil) != tc.ok {
			t.Errorf("connection on %v (TLS %v), endpoint %q: %v, want served %v", tc.local, tc.tls, tc.endpoint, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errNotServed) {
			t.Errorf("refusal %v does not wrap errNotServed", err)
		}
	}
}
