// Package fake is an in-memory gantry.Runtime with Docker's semantics, for
// unit tests: a program written against gantry.Runtime embeds fake.New in
// its tests instead of a cloud backend, and gets Docker's behaviour for
// every operation (IDs, names and prefixes, state transitions, conflicts,
// wait conditions, stop timeouts, exit codes of 128+signal, logs across
// restarts) in microseconds, with no daemon and no network.
//
// A container's image is a Go function by default: register an Image under
// a reference, and each Start runs its Run function, which receives the
// container's argv, environment, stdin, stdout and stderr and its signals,
// and returns the exit code. An Image's Exec function serves Exec.
// Creating a container from an image nobody registered is an ErrNotFound,
// as docker create with a missing image.
//
// With WithHostProcesses, containers are processes of this host instead:
// Entrypoint followed by Cmd runs through os/exec in a process group of its
// own, Stop and Kill signal the group, exit codes are the processes' own,
// Exec runs a host command (on a real terminal with Tty), and Top and
// Stats read /proc. The image reference is then only a name. This mode
// needs Linux.
//
// A host process has no mount namespace, so in that mode Spec.Mounts of
// type bind and tmpfs are given by path substitution: for a mount with
// Target T and host directory S (a bind mount's Source, or a directory
// the fake makes for each run of a tmpfs mount), each argument of the
// command (and of an exec), each value of the spec's environment
// variables and the working directory that equals T or begins with T and
// "/" is rewritten to S and the rest. Only a whole argument's prefix is
// rewritten: a path inside an argument ("--out=/data/f", or a shell
// script naming /data) is passed unchanged. ReadOnly and SizeBytes are
// not enforced; other mount types are refused, and so is every mount in
// Go-function mode.
//
// A Spec.Healthcheck runs as Docker's monitor runs it: its command as an
// exec (the image's Exec function in Go-function mode), HTTPPath and
// TCPPort against 127.0.0.1, with Docker's interval, timeout, retries,
// start period and failing streak, and State.Health to show. A restart
// policy restarts with Docker's rules and states, after Docker's delays
// divided by ten (WithRestartDelay). A container has no network of its
// own: DialPort dials its port on this host's 127.0.0.1, where a host
// process (or a Go image's listener) serves it.
//
// The fake also implements every optional interface of gantry (Restarter,
// Pauser, Renamer, Updater, Attacher, ProcessLister, StatsReader,
// PortDialer), so it is the reference for how each operation behaves.
// Capabilities states the limits of each mode.
//
// A test of code that runs a container:
//
//	func TestGreeter(t *testing.T) {
//		rt := fake.New(fake.WithImage("example/greeter:1", fake.Image{
//			Run: func(ctx context.Context, p *fake.Process) int {
//				fmt.Fprintf(p.Stdout, "hello, %s\n", p.Getenv("WHO"))
//				return 0
//			},
//		}))
//		defer rt.Close()
//
//		ctx := context.Background()
//		c, err := rt.Create(ctx, gantry.Spec{Image: "example/greeter:1", Env: []string{"WHO=gopher"}})
//		if err != nil {
//			t.Fatal(err)
//		}
//		if err := rt.Start(ctx, c.ID); err != nil {
//			t.Fatal(err)
//		}
//		status, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
//		if err != nil || status.ExitCode != 0 {
//			t.Fatalf("wait: %v, %+v", err, status)
//		}
//		logs, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
//		if err != nil {
//			t.Fatal(err)
//		}
//		var out strings.Builder
//		if err := gantry.CopyLogs(&out, nil, logs); err != nil {
//			t.Fatal(err)
//		}
//		if out.String() != "hello, gopher\n" {
//			t.Errorf("output %q", out.String())
//		}
//	}
package fake
