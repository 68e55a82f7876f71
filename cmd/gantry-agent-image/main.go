// Command gantry-agent-image publishes the agent image: it compiles
// gantry-agent for each platform, builds the minimal image that holds it
// (see package github.com/gantryhq/gantry/agent/agentimage) and pushes it,
// with no Docker engine. It prints the digest reference of what it pushed,
// which is what a backend's agent image option should name:
//
//	go run ./cmd/gantry-agent-image -repo europe-docker.pkg.dev/PROJECT/REPO/gantry-agent:v1
//	europe-docker.pkg.dev/PROJECT/REPO/gantry-agent@sha256:…
//
// With -program relay it publishes the relay's image the same way (one
// static gantry-relay, its entrypoint), which the Cloud Run backend can
// deploy as a service.
//
// Run it inside gantry's module (or a module that requires gantry): it
// compiles the agent with the go command. Credentials come from Google's
// application default credentials for Artifact Registry and from the
// Docker config for other registries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/gantryhq/gantry/agent/agentimage"
	"github.com/gantryhq/gantry/internal/imageconfig"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, agentimage.Program.Compile)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	repo      string
	platforms []string
	program   agentimage.Program
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("gantry-agent-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var platforms, program string
	fs.StringVar(&o.repo, "repo", "", "push to this repository, with an optional tag (REGISTRY/PATH/gantry-agent[:tag]; :latest by default)")
	fs.StringVar(&program, "program", "agent", "the image to build: agent (gantry-agent) or relay (gantry-relay, for a Cloud Run service)")
	fs.StringVar(&platforms, "platforms", strings.Join(agentimage.DefaultPlatforms, ","), "build for these platforms, comma-separated")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gantry-agent-image -repo REGISTRY/PATH/gantry-agent[:tag] [-platforms linux/amd64,linux/arm64]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.repo == "" {
		fs.Usage()
		return nil, errors.New("-repo is required")
	}
	switch program {
	case "agent":
		o.program = agentimage.Agent
	case "relay":
		o.program = agentimage.Relay
	default:
		return nil, fmt.Errorf("-program %q: want agent or relay", program)
	}
	if strings.Contains(o.repo, "@") {
		return nil, fmt.Errorf("-repo %q has a digest; name a repository and optionally a tag", o.repo)
	}
	for p := range strings.SplitSeq(platforms, ",") {
		p = strings.TrimSpace(p)
		if p != "" && !slices.Contains(o.platforms, p) {
			o.platforms = append(o.platforms, p)
		}
	}
	if len(o.platforms) == 0 {
		return nil, errors.New("-platforms names no platform")
	}
	return o, nil
}

// run does the work; compile is agentimage.Program.Compile, or a
// stand-in in tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer,
	compile func(agentimage.Program, context.Context, string) ([]byte, error)) int {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gantry-agent-image: %v\n", err)
		return 2
	}
	bins := map[string][]byte{}
	for _, p := range o.platforms {
		fmt.Fprintf(stderr, "compiling %s for %s\n", o.program.Package, p)
		bin, err := compile(o.program, ctx, p)
		if err != nil {
			fmt.Fprintf(stderr, "gantry-agent-image: %v\n", err)
			return 1
		}
		bins[p] = bin
	}
	idx, err := o.program.Build(bins)
	if err != nil {
		fmt.Fprintf(stderr, "gantry-agent-image: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "pushing to %s\n", o.repo)
	ref, err := agentimage.Push(ctx, o.repo, idx, remote.WithAuthFromKeychain(imageconfig.Keychain))
	if err != nil {
		fmt.Fprintf(stderr, "gantry-agent-image: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, ref)
	return 0
}
