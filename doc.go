// Package gantry gives Go programs Docker's container semantics (create,
// start, stop, kill, remove, wait, logs, exec, inspect, list) on Google
// Cloud, with no daemon in between.
//
// Programs use the Runtime interface; a backend implements it: cloudrun
// runs each container as a Cloud Run job, cloudfunctions as invocations of
// a Cloud Functions (2nd gen) function, docker on a local Docker Engine
// (the oracle gantry's semantics are checked against), and fake runs
// containers in memory (Go functions, or processes of this host) for
// tests. The
// semantics are Docker's, including its status values, wait conditions,
// stop timeouts and exit codes (128+N for a container killed by signal
// N). What a backend cannot do, it refuses with ErrNotSupported and
// declares in its Capabilities.
//
// The semantics are those of Docker with an init (docker run --init) on
// every backend: a signal from Stop or Kill reaches the container's main
// process only, never its other processes, which end with it; an
// untrapped SIGTERM ends it with 143; and a command that cannot be
// executed does not fail Start: the container exits 127 (126 when the file
// is not executable), with the reason on stderr. The docker backend runs
// containers with an init, the fake delivers signals so, and on Cloud Run
// an agent is to be that init (until it is, cloudrun's Capabilities say
// what differs).
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
// # Waiting for the next exit
//
// Wait blocks, which leaves no moment at which a caller knows the wait is
// in place. RegisterWait returns once the backend holds the wait, as
// moby's ContainerWait does, so "wait for the next exit, then start"
// cannot miss a fast run:
//
//	done, err := gantry.RegisterWait(ctx, rt, c.ID, gantry.WaitNextExit)
//	if err != nil {
//		return err
//	}
//	if err := rt.Start(ctx, c.ID); err != nil {
//		return err
//	}
//	res := <-done // res.Status is the exit of the run Start began
//
// # Serving containers
//
// A container can serve: Spec.Healthcheck runs Docker's probes and
// State.Health reports the result (starting, healthy, unhealthy, with a
// failing streak); Spec.RestartPolicy restarts it as Docker's --restart
// does, counted in Container.RestartCount; and where the backend is a
// PortDialer, DialPort opens a connection to a TCP port inside it, and
// ForwardPort makes a local listener of that, as kubectl port-forward
// does:
//
//	pf, err := gantry.ForwardPort(ctx, rt, c.ID, 5432)
//	if err != nil {
//		return err
//	}
//	defer pf.Close()
//	db, err := sql.Open("pgx", "postgres://postgres@"+pf.Addr().String()+"/postgres")
//
// # Errors
//
// Every error a Runtime method returns is an *OpError that reads
// `backend: op "id": reason`, and is classified by the sentinels
// ErrNotFound, ErrConflict, ErrInvalidArgument, ErrNotSupported,
// ErrPermissionDenied, ErrResourceExhausted, ErrUnavailable and ErrClosed;
// test them with errors.Is. A call that ends because its context did still
// satisfies errors.Is(err, context.Canceled) (or DeadlineExceeded).
//
// # Closing
//
// Close is idempotent; afterwards every method returns ErrClosed at once.
// Functions given to BeforeClose run first, while the Runtime still works:
// runtimetest's helpers use this to remove their containers even when a
// test's deferred Close runs before its t.Cleanup functions.
//
// # One contract, and where it lives
//
// The contract is written once, in this package, and every backend calls
// it: Spec.Validate and the other option checks, image references
// (ParseImage and NormalizeImage, with the distribution project's grammar
// that Docker uses), list filtering and ordering (SelectContainers), the
// closed state (CloseState) and the error shape (OpError, WrapOp). A
// backend maps and does I/O. gantry offers these as helpers rather than as
// a concrete type over a driver interface (gocloud.dev's shape) because
// the backends differ in what they can do cheaply: cloudrun resolves a
// container with one read and filters a list before it pays for exit
// codes, and the fake answers under one lock; a driver interface narrow
// enough to share would force the same round trips on both. Runtime stays
// the one interface applications embed, and the conformance suite in
// runtimetest holds every backend to it.
package gantry
