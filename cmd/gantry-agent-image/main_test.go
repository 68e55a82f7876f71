package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/agent/agentimage"
	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		platforms []string
	}{
		{[]string{"-repo", "r.example/a/gantry-agent"}, []string{"linux/amd64", "linux/arm64"}},
		{[]string{"-repo", "r.example/a:v1", "-platforms", "linux/arm64"}, []string{"linux/arm64"}},
		{[]string{"-platforms", " linux/amd64, linux/arm/v7,,linux/amd64", "-repo=x"}, []string{"linux/amd64", "linux/arm/v7"}},
	} {
		o, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Errorf("parse(%q): %v", tc.args, err)
			continue
		}
		if diff := cmp.Diff(tc.platforms, o.platforms); diff != "" {
			t.Errorf("parse(%q) platforms (-want +got):\n%s", tc.args, diff)
		}
	}
	for _, args := range [][]string{
		nil,
		{"-repo", ""},
		{"-repo", "x", "extra"},
		{"-repo", "x@sha256:" + strings.Repeat("0", 64)},
		{"-repo", "x", "-platforms", " , "},
		{"-nope"},
		{"-repo", "x", "-program", "hub"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q) succeeded", args)
		}
	}
	if _, err := parse([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parse(-h) = %v, want flag.ErrHelp", err)
	}
}

func fakeCompile(prog agentimage.Program, _ context.Context, p string) ([]byte, error) {
	return []byte(prog.Package + " for " + p), nil
}

func TestRun(t *testing.T) {
	host := testregistry.Start(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-repo", host + "/tools/gantry-agent:v1"}, &stdout, &stderr, fakeCompile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ref := strings.TrimSpace(stdout.String())
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatalf("printed %q, not a digest reference: %v", ref, err)
	}
	if d.Context().Name() != host+"/tools/gantry-agent" {
		t.Errorf("pushed to %s", d.Context())
	}
	idx, err := remote.Index(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestRunFails(t *testing.T) {
	fail := func(agentimage.Program, context.Context, string) ([]byte, error) {
		return nil, errors.New("no go command")
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-repo", "127.0.0.1:1/x"}, io.Discard, &stderr, fail); code != 1 {
		t.Errorf("a failed compile: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "no go command") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
	if code := run(context.Background(), nil, io.Discard, io.Discard, fakeCompile); code != 2 {
		t.Errorf("no -repo: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"-h"}, io.Discard, io.Discard, fakeCompile); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}
