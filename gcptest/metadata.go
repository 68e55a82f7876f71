package gcptest

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// The metadata server: Google's workloads ask
// http://metadata.google.internal/computeMetadata/v1/... for their
// identity; Google's client libraries (and gantry's agent) ask the
// host:port in GCE_METADATA_HOST instead when it is set. The emulator
// serves that part of the metadata server its containers need, the
// service account's ID tokens, on a loopback port of its own, and sets
// GCE_METADATA_HOST to it in every container it runs (RULES.md,
// "Metadata server").

const metadataPrefix = "/computeMetadata/v1/instance/service-accounts/"

// metadataServer serves the metadata endpoints on its own listener.
type metadataServer struct {
	lis net.Listener
	srv *http.Server
}

func startMetadata(s *Server) (*metadataServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &metadataServer{lis: lis}
	m.srv = &http.Server{Handler: http.HandlerFunc(s.serveMetadata), ReadHeaderTimeout: 10 * time.Second}
	go m.srv.Serve(lis)
	return m, nil
}

func (m *metadataServer) close() {
	if m != nil {
		m.srv.Close()
	}
}

// MetadataHost returns the host:port of the Server's metadata server,
// the value of GCE_METADATA_HOST in every container the Server runs.
// Code outside the emulator can set GCE_METADATA_HOST to it to get the
// ID tokens a container would get.
func (s *Server) MetadataHost() string { return s.metadata.lis.Addr().String() }

// serveMetadata answers a metadata request as Google's metadata server
// does: only with the header Metadata-Flavor: Google, only GET, and
// with Metadata-Flavor: Google on every answer. It serves the default
// service account's ID tokens (identity?audience=A[&format=standard|full])
// and its email; any other path is 404.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	w.Header().Set("Server", "Metadata Server for VM")
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing required header \"Metadata-Flavor\": \"Google\"", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, metadataPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	account, item, _ := strings.Cut(rest, "/")
	if account != "default" && account != DefaultServiceAccount {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/text")
	switch item {
	case "email":
		w.Write([]byte(DefaultServiceAccount))
	case "identity":
		q := r.URL.Query()
		aud := q.Get("audience")
		if aud == "" {
			http.Error(w, "non-empty audience parameter required", http.StatusBadRequest)
			return
		}
		switch q.Get("format") {
		case "", "standard", "full":
		default:
			http.Error(w, "format must be standard or full", http.StatusBadRequest)
			return
		}
		w.Write([]byte(s.idTokens.mint(aud, DefaultServiceAccount)))
	default:
		http.NotFound(w, r)
	}
}
