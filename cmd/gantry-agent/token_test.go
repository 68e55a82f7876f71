package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/agent"
)

// fakeMetadata is a metadata server that issues ID tokens for one
// audience, and refuses requests without Metadata-Flavor: Google or for
// another audience, as Google's does.
type fakeMetadata struct {
	srv      *httptest.Server
	audience string

	mu     sync.Mutex
	exp    func() int64 // the exp of the next token; 0 issues one with no readable exp
	fail   int          // answer this many more requests with 500
	issued []string
}

func startMetadata(t *testing.T, audience string, exp func() int64) *fakeMetadata {
	m := &fakeMetadata{audience: audience, exp: exp}
	m.srv = httptest.NewServer(m)
	t.Cleanup(m.srv.Close)
	return m
}

// host is the value for GCE_METADATA_HOST.
func (m *fakeMetadata) host() string { return strings.TrimPrefix(m.srv.URL, "http://") }

func (m *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity":
		http.NotFound(w, r)
		return
	case r.Header.Get("Metadata-Flavor") != "Google":
		http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
		return
	case q.Get("audience") != m.audience || q.Get("format") != "full":
		http.Error(w, fmt.Sprintf("audience %q format %q", q.Get("audience"), q.Get("format")), http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	tok := fmt.Sprintf("opaque-%d", len(m.issued)+1)
	if exp := m.exp(); exp != 0 {
		enc := base64.RawURLEncoding.EncodeToString
		tok = enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
			enc(fmt.Appendf(nil, `{"aud":%q,"exp":%d,"n":%d}`, m.audience, exp, len(m.issued)+1)) + "." +
			enc([]byte("signature"))
	}
	m.issued = append(m.issued, tok)
	io.WriteString(w, tok+"\n")
}

func (m *fakeMetadata) tokens() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.issued)
}

func (m *fakeMetadata) set(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

// TestMetadataTokenCache: a token is fetched once and reused until 5
// minutes before its exp, or for 10 minutes when its exp cannot be read;
// a failed fetch is an error, and the next call fetches again.
func TestMetadataTokenCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	md := startMetadata(t, "https://relay.example", func() int64 { return now.Add(time.Hour).Unix() })
	m, err := newMetadataToken("wss://relay.example/agent?id=c1", func(k string) string {
		if k == "GCE_METADATA_HOST" {
			return md.host()
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return now }
	ctx := context.Background()
	// step moves the clock by d and checks the header then sent carries
	// token number n of those issued.
	step := func(d time.Duration, n int) {
		t.Helper()
		now = now.Add(d)
		h, err := m.header(ctx)
		if err != nil {
			t.Fatalf("at +%v: %v", d, err)
		}
		issued := md.tokens()
		if len(issued) != n || !slices.Equal(h.Values("Authorization"), []string{"Bearer " + issued[n-1]}) {
			t.Fatalf("at +%v: sent %q with %d tokens issued, want token %d", d, h.Values("Authorization"), len(issued), n)
		}
	}
	step(0, 1)
	step(54*time.Minute, 1)
	step(59*time.Second, 1)
	step(time.Second, 2) // 5 minutes before the first token's exp

	md.set(func() { md.exp = func() int64 { return 0 } })
	step(55*time.Minute, 3)
	step(10*time.Minute-time.Second, 3)
	step(time.Second, 4)

	md.set(func() { md.fail = 1 })
	now = now.Add(10 * time.Minute)
	if _, err := m.header(ctx); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("with the metadata server failing: %v, want an error naming its status", err)
	}
	step(0, 5)
}

func TestMetadataTokenURL(t *testing.T) {
	for _, tc := range []struct{ relay, host, want string }{
		{"wss://relay-abc.a.run.app/agent?id=c1", "", "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=https%3A%2F%2Frelay-abc.a.run.app&format=full"},
		{"https://relay-abc.a.run.app/agent?id=c1", "", "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=https%3A%2F%2Frelay-abc.a.run.app&format=full"},
		{"ws://127.0.0.1:8080/base/agent?id=c1", "127.0.0.1:9", "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/identity?audience=http%3A%2F%2F127.0.0.1%3A8080&format=full"},
	} {
		m, err := newMetadataToken(tc.relay, func(k string) string {
			if k == "GCE_METADATA_HOST" {
				return tc.host
			}
			return ""
		})
		if err != nil || m.url != tc.want {
			t.Errorf("for %s and GCE_METADATA_HOST=%q: %v, %v; want %s", tc.relay, tc.host, m, err, tc.want)
		}
	}
	for _, bad := range []string{"ftp://relay.example/agent", "/agent?id=c1", "wss:///agent"} {
		if _, err := newMetadataToken(bad, func(string) string { return "" }); err == nil {
			t.Errorf("newMetadataToken(%q) = nil error", bad)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		tok  string
		want int64 // 0: unreadable
	}{
		{"h." + enc([]byte(`{"exp":1800000000}`)) + ".s", 1800000000},
		{"h." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1800000000,"x":1}`)) + ".s", 1800000000},
		{"h." + enc([]byte(`{"exp":1.8e9}`)) + ".s", 1800000000},
		{"h." + enc([]byte(`{"iat":1}`)) + ".s", 0},
		{"h." + enc([]byte(`{"exp":"soon"}`)) + ".s", 0},
		{"h.!!!.s", 0},
		{"opaque", 0},
	} {
		exp, ok := tokenExpiry(tc.tok)
		if ok != (tc.want != 0) || ok && exp.Unix() != tc.want {
			t.Errorf("tokenExpiry(%q) = %v, %v; want %d", tc.tok, exp, ok, tc.want)
		}
	}
}

// TestRelayTokenFromMetadata runs the real binary with -relay-token
// metadata (given as its environment variable) against a relay whose
// front end, like Cloud Run's IAM, takes an agent only with the newest
// token the metadata server issued. The tokens expire within 5 minutes,
// so the agent fetches a new one for every dial, and gets through again
// after a client claimed its first connection; a failing metadata server
// only delays it.
func TestRelayTokenFromMetadata(t *testing.T) {
	rl, err := agent.NewRelay(nil)
	if err != nil {
		t.Fatal(err)
	}
	var md *fakeMetadata
	var mu sync.Mutex
	var accepted []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/agent" {
			issued := md.tokens()
			auth := r.Header.Get("Authorization")
			if len(issued) == 0 || auth != "Bearer "+issued[len(issued)-1] {
				http.Error(w, "bad token", http.StatusUnauthorized)
				return
			}
			mu.Lock()
			accepted = append(accepted, auth)
			mu.Unlock()
		}
		rl.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		rl.Close()
		front.Close()
	})
	md = startMetadata(t, front.URL, func() int64 { return time.Now().Add(5 * time.Minute).Unix() })
	md.set(func() { md.fail = 2 })
	base := "ws" + strings.TrimPrefix(front.URL, "http")
	u, err := agent.RelayAgentURL(base, "c1")
	if err != nil {
		t.Fatal(err)
	}
	c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret, "GANTRY_AGENT_RELAY_TOKEN=metadata", "GCE_METADATA_HOST=" + md.host()},
		"-relay", u, "-id", "c1", "-stdin", "--", "sh")
	c.Stdout = io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })

	dial := func() *agent.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cl, err := agent.DialRelay(ctx, base, "c1", []byte(secret), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	dial().Close()
	waitFor(t, "the agent's second connection", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) == 2
	})
	driveShell(t, c, dial())

	mu.Lock()
	defer mu.Unlock()
	if accepted[0] == accepted[1] {
		t.Errorf("both connections used the token %s", accepted[0])
	}
	if n := len(md.tokens()); n < 2 {
		t.Errorf("%d tokens issued, want one per dial", n)
	}
	md.set(func() {
		if md.fail != 0 {
			t.Errorf("the agent connected without asking the failing metadata server")
		}
	})
}

func TestRelayTokenFlag(t *testing.T) {
	for _, args := range [][]string{
		{"-relay", "ws://127.0.0.1:1/agent?id=c1", "-relay-token", "static"},
		{"-connect", "ws://127.0.0.1:1/", "-relay-token", "metadata"},
	} {
		var errb bytes.Buffer
		c := agentCmd([]string{"GANTRY_AGENT_SECRET=" + secret}, append(args, "--", "true")...)
		c.Stderr = &errb
		if code := exitCode(t, c.Run()); code != 125 || !strings.Contains(errb.String(), "-relay-token") {
			t.Errorf("%q: exit %d, stderr %q; want 125 naming -relay-token", args, code, errb.String())
		}
	}
}
