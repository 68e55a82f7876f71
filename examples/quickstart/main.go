// Command quickstart runs one container and shows what happened to it: its
// output on the right streams, its exit code and its final state.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	rt := fake.New(fake.WithHostProcesses())
	defer rt.Close()

	c, err := rt.Create(ctx, gantry.Spec{
		Name:       "quickstart",
		Image:      "busybox",
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{`echo "hello from $HOSTNAME_HINT"; echo "a warning" >&2; exit 3`},
		Env:        []string{"HOSTNAME_HINT=gantry"},
	})
	if err != nil {
		return err
	}
	defer rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true})

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
	info, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		return err
	}
	fmt.Printf("container %s (%s) exit code %d, state %s\n", info.Name, info.ID[:12], status.ExitCode, info.State.Status)
	return nil
}
