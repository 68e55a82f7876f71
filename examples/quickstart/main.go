// Command quickstart runs one container on Cloud Run and shows what
// happened to it: its output on the right streams, its exit code, and its
// removal.
//
// With no configuration it runs on gantry's embedded Cloud Run emulator
// (gcptest), so it works on a fresh clone with no Google credentials:
//
//	go run ./examples/quickstart
//
// With GANTRY_GCP_PROJECT set (and Application Default Credentials, for
// example from `gcloud auth application-default login`) it runs on real
// Cloud Run, in GANTRY_GCP_REGION (default us-central1):
//
//	GANTRY_GCP_PROJECT=my-project go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudrun"
	"github.com/gantryhq/gantry/gcptest"
	"google.golang.org/api/option"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	cfg := cloudrun.Config{
		Project: os.Getenv("GANTRY_GCP_PROJECT"),
		Region:  os.Getenv("GANTRY_GCP_REGION"),
	}
	if cfg.Region == "" {
		cfg.Region = "us-central1"
	}
	// On Cloud Run the image is pulled from a registry; the emulator runs
	// the command on this machine instead, so any name will do there.
	image := "docker.io/library/busybox"
	var opts []option.ClientOption
	if cfg.Project == "" {
		srv, err := gcptest.NewServer()
		if err != nil {
			return err
		}
		defer srv.Close()
		opts = srv.ClientOptions()
		cfg.Project = "quickstart"
		// The emulator holds gantry to Google's contract, logs that arrive
		// up to 2 s late included, but answers in microseconds.
		cfg.PollInterval = 100 * time.Millisecond
		cfg.LogGrace = 2500 * time.Millisecond
		fmt.Fprintln(os.Stderr, "running on the embedded Cloud Run emulator (set GANTRY_GCP_PROJECT for real Cloud Run)")
	} else {
		fmt.Fprintf(os.Stderr, "running on Cloud Run in project %s, region %s\n", cfg.Project, cfg.Region)
	}

	rt, err := cloudrun.New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer rt.Close()

	c, err := rt.Create(ctx, gantry.Spec{
		Image:      image,
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{`echo "hello from $GREETER"; echo "a warning" >&2; exit 3`},
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
	if err := gantry.CopyLogs(os.Stdout, os.Stderr, logs); err != nil {
		return err
	}
	status, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		return err
	}
	fmt.Printf("container %s exited with code %d\n", c.Name, status.ExitCode)
	return nil
}
