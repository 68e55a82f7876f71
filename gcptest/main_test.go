package gcptest_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// helperEnv, set in a container's environment, makes the test binary act
// as a helper process instead of running tests (see TestMain).
const helperEnv = "GCPTEST_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper is a sidecar a test runs as a container: "sidecar PORT DIR
// DELAY [tcp|http CODE|grpc]" waits DELAY, writes DIR/ready, serves on
// PORT (plain TCP by default; HTTP answering CODE to every request, after
// checking its X-Probe header is "yes"; or gRPC's health service,
// SERVING), and exits 0 once DIR/done exists, or 3 after 30 seconds; it
// exits 1 when it cannot listen.
func helper(args []string) int {
	if len(args) < 4 || args[0] != "sidecar" {
		fmt.Fprintln(os.Stderr, "usage: sidecar PORT DIR DELAY [tcp|http CODE|grpc]")
		return 2
	}
	port, dir := args[1], args[2]
	delay, err := time.ParseDuration(args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kind := "tcp"
	if len(args) > 4 {
		kind = args[4]
	}
	time.Sleep(delay)
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte("ready\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	switch kind {
	case "http":
		code, err := strconv.Atoi(args[5])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Probe") != "yes" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(code)
		}))
	case "grpc":
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go srv.Serve(l)
		defer srv.Stop()
	default:
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	fmt.Println("listening on " + strconv.Quote(port))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			return 0
		}
	}
	return 3
}
