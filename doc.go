// Package gantry gives Go programs Docker's container semantics (create,
// start, stop, kill, remove, wait, logs, exec, inspect, list) on Google
// Cloud, with no daemon in between.
//
// Programs use the Runtime interface; a backend implements it:
// cloudrun on Cloud Run, cloudfunctions on Cloud Functions, and fake in
// memory for tests. The semantics are Docker's to the letter, including
// its status values, wait conditions, stop timeouts and exit codes
// (128+N for a container killed by signal N). What a backend cannot do, it
// refuses with ErrNotSupported and declares in its Capabilities.
//
// A complete program, on the in-memory fake:
//
//	rt := fake.New(fake.WithHostProcesses())
//	defer rt.Close()
//
//	ctx := context.Background()
//	c, err := rt.Create(ctx, gantry.Spec{
//		Image: "busybox",
//		Cmd:   []string{"sh", "-c", "echo hello; echo oops >&2; exit 3"},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := rt.Start(ctx, c.ID); err != nil {
//		log.Fatal(err)
//	}
//	status, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
//	if err != nil {
//		log.Fatal(err)
//	}
//	logs, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	gantry.CopyLogs(os.Stdout, os.Stderr, logs)
//	fmt.Println("exit code", status.ExitCode) // exit code 3
//	rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
//
// Errors are classified by the sentinels ErrNotFound, ErrConflict,
// ErrInvalidArgument, ErrNotSupported, ErrPermissionDenied,
// ErrResourceExhausted and ErrUnavailable; test them with errors.Is.
package gantry
