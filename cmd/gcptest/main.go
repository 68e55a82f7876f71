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
//
// The emulator holds clients to Google's documented limits
// (gcptest.WithStrict: quotas, late and reordered logs, unordered lists,
// late reconciliation, no exit code after a stop, JSON lines as
// jsonPayload); -relax turns some of those rules off, -strict=false all of
// them, and -seed fixes the random choices:
//
//	go run ./cmd/gcptest -relax unordered-lists,ingestion-delay -seed 7
//
// -project-number tells the emulator a project's number, so that requests
// may name the project either way:
//
//	go run ./cmd/gcptest -project-number my-project=123456789012
package main

import (
	"context"
	"errors"
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
	strict := flag.Bool("strict", true, "enforce Google's documented limits and leeway (see gcptest/RULES.md, \"Strict mode\")")
	relax := flag.String("relax", "", "comma-separated strict rules to turn off: "+ruleNames())
	seed := flag.Uint64("seed", 0, "seed of the random choices (ingestion delays, list order); 0 draws one")
	var numbers []gcptest.Option
	flag.Func("project-number", "a project's number, as `ID=NUMBER`; repeatable", func(s string) error {
		id, number, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want ID=NUMBER, got %q", s)
		}
		numbers = append(numbers, gcptest.WithProjectNumber(id, number))
		return nil
	})
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gcptest: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	opts := append([]gcptest.Option{gcptest.WithAddr(*addr), gcptest.WithStopGracePeriod(*grace)}, secrets...)
	opts = append(opts, numbers...)
	if *instant {
		opts = append(opts, gcptest.WithInstantOperations())
	}
	rules, err := strictOptions(*strict, *relax)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gcptest: %v\n", err)
		os.Exit(2)
	}
	opts = append(opts, rules...)
	if *seed != 0 {
		opts = append(opts, gcptest.WithSeed(*seed))
	}
	srv, err := gcptest.NewServer(opts...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("gcptest: serving Cloud Run v2, Cloud Logging v2 and Operations on %s\n", srv.Addr())
	if *strict {
		fmt.Fprintf(os.Stderr, "gcptest: strict rules on; seed %d\n", srv.Seed())
	}
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

// strictOptions are the options -strict and -relax ask for. -relax with
// -strict=false is refused, as there would be nothing left to relax.
func strictOptions(strict bool, relax string) ([]gcptest.Option, error) {
	if !strict {
		if relax != "" {
			return nil, errors.New("-relax needs -strict")
		}
		return []gcptest.Option{gcptest.Relaxed()}, nil
	}
	if relax == "" {
		return []gcptest.Option{gcptest.WithStrict()}, nil
	}
	var rules []gcptest.Rule
	for _, name := range strings.Split(relax, ",") {
		r, err := gcptest.ParseRule(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return []gcptest.Option{gcptest.WithStrict(), gcptest.Relax(rules...)}, nil
}

func ruleNames() string {
	var names []string
	for _, r := range gcptest.Rules() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}
