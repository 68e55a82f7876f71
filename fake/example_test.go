package fake_test

import (
	"context"
	"fmt"
	"os"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// A Go function stands in for an image: it greets whoever WHO names,
// and exits with 3 when asked to stop.
func Example() {
	rt := fake.New(fake.WithImage("example/greeter:1", fake.Image{
		Run: func(ctx context.Context, p *fake.Process) int {
			fmt.Fprintf(p.Stdout, "hello, %s\n", p.Getenv("WHO"))
			fmt.Fprintln(p.Stderr, "waiting for a signal")
			sig := <-p.Signals
			fmt.Fprintf(p.Stdout, "got %v\n", sig)
			return 3
		},
	}))
	defer rt.Close()

	ctx := context.Background()
	c, err := rt.Create(ctx, gantry.Spec{Image: "example/greeter:1", Name: "greeter", Env: []string{"WHO=gopher"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		fmt.Println(err)
		return
	}
	if err := rt.Stop(ctx, "greeter", gantry.StopOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	status, _ := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	logs, _ := rt.Logs(ctx, c.ID, gantry.LogsOptions{Stdout: true})
	gantry.CopyLogs(os.Stdout, nil, logs)
	info, _ := rt.Inspect(ctx, "greeter")
	fmt.Println("exit code", status.ExitCode, "status", info.State.Status)
	// Output:
	// hello, gopher
	// got terminated
	// exit code 3 status exited
}
