// Command gcptest serves the gantry emulator of Cloud Run Admin API v2,
// Cloud Logging v2 and long-running Operations on a TCP port, so that
// tools other than Go tests can use it:
//
//	go run ./cmd/gcptest -addr :8085
//
// It prints the endpoint on standard output, then serves until it gets
// SIGINT or SIGTERM. Point a Google client at the endpoint with no
// credentials and a plaintext gRPC connection (for the Go libraries:
// option.WithEndpoint, option.WithoutAuthentication and
// grpc.WithTransportCredentials(insecure.NewCredentials())). Task
// containers run their command and args as processes of this host.
//
// Secret Manager values that jobs read as environment variables are given
// with -secret, once per secret version:
//
//	go run ./cmd/gcptest -secret db-password=hunter2 -secret projects/p/secrets/tls:3=...
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/gcptest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "address to listen on, host:port")
	instant := flag.Bool("instant", false, "finish long-running operations before the call that starts them returns")
	grace := flag.Duration("grace", gcptest.DefaultStopGracePeriod, "time between SIGTERM and SIGKILL when a task is stopped")
	var secrets []gcptest.Option
	flag.Func("secret", "a secret version jobs may read, as `NAME[:VERSION]=VALUE` (NAME is an ID or projects/P/secrets/ID; VERSION defaults to latest); repeatable", func(s string) error {
		ref, value, ok := strings.Cut(s, "=")
		if !ok || ref == "" {
			return fmt.Errorf("want NAME[:VERSION]=VALUE, got %q", s)
		}
		name, version, _ := strings.Cut(ref, ":")
		if version == "" {
			version = "latest"
		}
		secrets = append(secrets, gcptest.WithSecret(name, version, value))
		return nil
	})
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gcptest: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	opts := append([]gcptest.Option{gcptest.WithAddr(*addr), gcptest.WithStopGracePeriod(*grace)}, secrets...)
	if *instant {
		opts = append(opts, gcptest.WithInstantOperations())
	}
	srv, err := gcptest.NewServer(opts...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("gcptest: serving Cloud Run v2, Cloud Logging v2 and Operations on %s\n", srv.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		log.Fatal("gcptest: timed out stopping the server")
	}
}
