// Command gantry-relay serves an agent relay (agent.Relay) where neither
// a container's agent nor its clients can reach the other directly: a
// Cloud Run job takes no inbound connections, and a client behind NAT
// takes none either.
//
//	gantry-relay [-v] [-pair-timeout DUR]
//
// Agents (gantry-agent -relay URL/agent?id=ID) keep an idle connection at
// it under their container's ID; a client (agent.DialRelay) that asks for
// /client?id=ID is paired with one, and the relay copies their WebSocket
// messages both ways, unchanged and unread. It listens on all interfaces
// at the port in $PORT (Cloud Run's contract), 8080 when $PORT is unset,
// and on SIGTERM or SIGINT closes every connection it holds (agents dial
// again, reaching another instance) and exits 0.
//
// The relay sees no secret and cannot authenticate as either side: agent
// and client authenticate each other end to end through it. TLS ends at
// its front end, though, so the relay (like that front end) could read
// and alter the sessions' bytes: run it in the user's own project. It
// checks no credentials of its own, so deploy it where only those meant
// to reach containers can call it; as a Cloud Run service, the service's
// IAM invoker check does that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/agent"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil))
}

// run serves until ctx ends and returns the exit code; listening, when
// not nil, is told the address it listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, listening func(net.Addr)) int {
	fs := flag.NewFlagSet("gantry-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "log every connection to stderr")
	pairTimeout := fs.Duration("pair-timeout", 30*time.Second, "how long a client waits for an agent of its container")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gantry-relay [-v] [-pair-timeout DUR]; listens on $PORT (default 8080)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log := zap.NewNop()
	if *verbose {
		if l, err := zap.NewDevelopment(); err == nil {
			log = l
		}
	}
	rl, err := agent.NewRelay(&agent.RelayOptions{PairTimeout: *pairTimeout, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "gantry-relay: %v\n", err)
		return 2
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintf(stderr, "gantry-relay: %v\n", err)
		return 1
	}
	if listening != nil {
		listening(ln.Addr())
	}
	fmt.Fprintf(stderr, "gantry-relay: listening on %s\n", ln.Addr())
	// Requests the relay does not upgrade close their connections;
	// IdleTimeout backs that up. Upgraded connections are the relay's.
	srv := &http.Server{Handler: rl, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		srv.Close()
	}
	rl.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "gantry-relay: %v\n", err)
		return 1
	}
	return 0
}
