package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// defaultMetadataHost is the Google metadata server's; the
	// GCE_METADATA_HOST variable (host:port) replaces it, as it does in
	// Google's client libraries.
	defaultMetadataHost = "metadata.google.internal"
	// tokenMargin is how long before its expiry a token is replaced.
	tokenMargin = 5 * time.Minute
	// tokenUnknownLife is how long a token whose expiry cannot be read
	// is used.
	tokenUnknownLife = 10 * time.Minute
	// maxTokenBytes bounds the metadata server's answer.
	maxTokenBytes = 64 << 10
)

// metadataToken is the agent.ConnectOptions.Header of -relay-token
// metadata: an Authorization header with a Google ID token for the
// relay's origin, fetched from the metadata server and reused until
// tokenMargin before it expires.
type metadataToken struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	token   string
	refresh time.Time
}

// newMetadataToken returns the token source for the relay at relayURL.
func newMetadataToken(relayURL string, getenv func(string) string) (*metadataToken, error) {
	u, err := url.Parse(relayURL)
	if err != nil {
		return nil, fmt.Errorf("-relay-token: %w", err)
	}
	scheme, ok := map[string]string{"ws": "http", "http": "http", "wss": "https", "https": "https"}[u.Scheme]
	if !ok || u.Host == "" {
		return nil, fmt.Errorf("-relay-token: no audience for the relay URL %q: want a ws, wss, http or https URL with a host", relayURL)
	}
	host := getenv("GCE_METADATA_HOST")
	if host == "" {
		host = defaultMetadataHost
	}
	q := url.Values{"audience": {scheme + "://" + u.Host}, "format": {"full"}}
	// The metadata server is reached directly, never through a proxy.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &metadataToken{
		url:    "http://" + host + "/computeMetadata/v1/instance/service-accounts/default/identity?" + q.Encode(),
		client: &http.Client{Transport: tr},
		now:    time.Now,
	}, nil
}

// header returns the Authorization header for the next dial.
func (m *metadataToken) header(ctx context.Context) (http.Header, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token == "" || !m.now().Before(m.refresh) {
		tok, err := m.fetch(ctx)
		if err != nil {
			return nil, err
		}
		m.token = tok
		if exp, ok := tokenExpiry(tok); ok {
			m.refresh = exp.Add(-tokenMargin)
		} else {
			m.refresh = m.now().Add(tokenUnknownLife)
		}
	}
	return http.Header{"Authorization": {"Bearer " + m.token}}, nil
}

func (m *metadataToken) fetch(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return "", fmt.Errorf("an ID token from the metadata server: %w", err)
	}
	req.Header.Set("Metadata-Flavor", "Google")
	resp, err := m.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("an ID token from the metadata server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBytes+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("an ID token from the metadata server: %w", err)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("an ID token from the metadata server: %s: %.200q", resp.Status, body)
	case len(body) > maxTokenBytes:
		return "", fmt.Errorf("an ID token from the metadata server: more than %d bytes", maxTokenBytes)
	}
	tok := strings.TrimSpace(string(body))
	if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return "", fmt.Errorf("an ID token from the metadata server: not a token: %.200q", body)
	}
	return tok, nil
}

// tokenExpiry reads the exp claim of a JWT, without verifying anything.
func tokenExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(claims.Exp), 0), true
}
