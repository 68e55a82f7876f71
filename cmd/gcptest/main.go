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
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/gcptest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "address to listen on, host:port")
	instant := flag.Bool("instant", false, "finish long-running operations before the call that starts them returns")
	grace := flag.Duration("grace", gcptest.DefaultStopGracePeriod, "time between SIGTERM and SIGKILL when a task is stopped")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gcptest: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	opts := []gcptest.Option{gcptest.WithAddr(*addr), gcptest.WithStopGracePeriod(*grace)}
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
