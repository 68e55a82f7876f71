package gantry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestCapabilitiesMarkdownHasEveryFeature(t *testing.T) {
	caps := gantry.Capabilities{
		gantry.FeatureCreate: {Level: gantry.Full},
		gantry.FeatureStop:   {Level: gantry.Partial, Note: "grace is fixed | 10s"},
	}
	var b strings.Builder
	if err := caps.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if got, want := len(lines), 2+len(gantry.Features()); got != want {
		t.Fatalf("table has %d lines, want %d", got, want)
	}
	for _, want := range []string{"| create | full |  |", `| stop | partial | grace is fixed \| 10s |`, "| pause | none |  |"} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("table lacks row %q:\n%s", want, b.String())
		}
	}
	if caps.Level(gantry.FeaturePause) != gantry.None || caps.Supported(gantry.FeaturePause) || !caps.Supported(gantry.FeatureStop) {
		t.Error("Level/Supported disagree with the table")
	}
}

func TestFeaturesAreDistinct(t *testing.T) {
	seen := map[gantry.Feature]bool{}
	for _, f := range gantry.Features() {
		if seen[f] {
			t.Errorf("feature %q listed twice", f)
		}
		seen[f] = true
	}
}

// bare is a Runtime with none of the optional interfaces; only the methods
// the helpers reach are meaningful.
type bare struct {
	gantry.Runtime
	caps    gantry.Capabilities
	stopped []string
	started []string
}

func (b *bare) Capabilities() gantry.Capabilities { return b.caps }
func (b *bare) Stop(_ context.Context, id string, _ gantry.StopOptions) error {
	b.stopped = append(b.stopped, id)
	return nil
}
func (b *bare) Start(_ context.Context, id string) error {
	b.started = append(b.started, id)
	return nil
}

func TestOptionalHelpersWithoutSupport(t *testing.T) {
	ctx := context.Background()
	rt := &bare{}
	checks := map[string]error{
		"pause":   gantry.Pause(ctx, rt, "c"),
		"unpause": gantry.Unpause(ctx, rt, "c"),
		"rename":  gantry.Rename(ctx, rt, "c", "d"),
		"update":  gantry.Update(ctx, rt, "c", gantry.Resources{}),
		"attach":  gantry.Attach(ctx, rt, "c", gantry.AttachOptions{}),
		"restart": gantry.Restart(ctx, rt, "c", gantry.StopOptions{}),
	}
	_, checks["top"] = gantry.Top(ctx, rt, "c")
	_, checks["stats"] = gantry.ContainerStats(ctx, rt, "c")
	for op, err := range checks {
		if !errors.Is(err, gantry.ErrNotSupported) || !strings.HasPrefix(err.Error(), op) {
			t.Errorf("%s: err = %v, want ErrNotSupported naming the operation", op, err)
		}
	}
	if len(rt.stopped)+len(rt.started) != 0 {
		t.Errorf("unsupported restart had side effects: stopped %v, started %v", rt.stopped, rt.started)
	}
}

func TestRestartFallsBackToStopStart(t *testing.T) {
	rt := &bare{caps: gantry.Capabilities{gantry.FeatureRestart: {Level: gantry.Full}}}
	if err := gantry.Restart(context.Background(), rt, "c", gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(rt.stopped) != 1 || len(rt.started) != 1 {
		t.Errorf("stopped %v, started %v; want one each", rt.stopped, rt.started)
	}
}
