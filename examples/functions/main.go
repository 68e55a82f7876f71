// Command functions runs one container on Cloud Functions (2nd gen) and
// shows what happened to it: its output on the right streams, its exit
// code after Stop, and its removal.
//
// With no configuration it runs on gantry's embedded emulator (gcptest),
// which builds gantry's runner with the local Go toolchain and serves it
// on this machine, so it works on a fresh clone with no Google
// credentials:
//
//	go run ./examples/functions
//
// With GANTRY_GCP_PROJECT set (and Application Default Credentials) it
// runs on real Cloud Functions, in GANTRY_GCP_REGION (default
// us-central1); creating the function builds it there, which takes about
// a minute:
//
//	GANTRY_GCP_PROJECT=my-project go run ./examples/functions
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions"
	"github.com/gantryhq/gantry/gcptest"
	"google.golang.org/api/option"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	cfg := cloudfunctions.Config{
		Project: os.Getenv("GANTRY_GCP_PROJECT"),
		Region:  os.Getenv("GANTRY_GCP_REGION"),
	}
	if cfg.Region == "" {
		cfg.Region = "us-central1"
	}
	var opts []option.ClientOption
	if cfg.Project == "" {
		srv, err := gcptest.NewServer()
		if err != nil {
			return err
		}
		defer srv.Close()
		opts = srv.ClientOptions()
		cfg.Project = "functions-example"
		// The emulator's function URLs take no ID token, which the
		// default client would fetch from Google.
		cfg.HTTPClient = http.DefaultClient
		// The emulator holds gantry to Google's contract, logs that arrive
		// up to 2 s late included, but answers in microseconds.
		cfg.PollInterval = 100 * time.Millisecond
		cfg.LogGrace = 2500 * time.Millisecond
		fmt.Fprintln(os.Stderr, "running on the embedded Cloud Functions emulator (set GANTRY_GCP_PROJECT for real Cloud Functions)")
	} else {
		fmt.Fprintf(os.Stderr, "running on Cloud Functions in project %s, region %s\n", cfg.Project, cfg.Region)
	}

	rt, err := cloudfunctions.New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer rt.Close()

	// The image is the runtime the function is built on; the command
	// runs in that runtime's base image. It says hello, then waits to be
	// stopped and, as Docker's stop allows, exits cleanly on SIGTERM.
	c, err := rt.Create(ctx, gantry.Spec{
		Image:      "go125",
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{`trap 'echo "stopping" >&2; exit 0' TERM; echo "hello from $GREETER"; while :; do sleep 0.1; done`},
		Env:        []string{"GREETER=gantry"},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %s (%s) as %s\n", c.Name, c.ID[:12], c.Resource)
	defer func() {
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
			log.Print(err)
			return
		}
		fmt.Fprintf(os.Stderr, "removed %s\n", c.Name)
	}()

	if err := rt.Start(ctx, c.ID); err != nil {
		return err
	}
	logs, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
	if err != nil {
		return err
	}
	defer logs.Close()
	first, err := logs.Next()
	if err != nil {
		return err
	}
	fmt.Println(first.Line)
	// Stop signals the command itself: Docker's stop, which a Cloud Run
	// job cannot give.
	timeout := 5 * time.Second
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: &timeout}); err != nil {
		return err
	}
	if err := gantry.CopyLogs(os.Stdout, os.Stderr, logs); err != nil {
		return err
	}
	status, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		return err
	}
	fmt.Printf("container %s exited with code %d after Stop\n", c.Name, status.ExitCode)
	return nil
}
