package runtimetest

import (
	"context"
	"errors"
	"testing"

	"github.com/gantryhq/gantry"
)

// shortPrefix returns a prefix of id that identifies it uniquely in
// practice, as Docker's 12-character short IDs do.
func shortPrefix(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id[:len(id)-1]
}

// namePrefix returns the longest proper prefix of id, at most 12
// characters, that is also a valid container name, or "" if none is.
func namePrefix(id string) string {
	for n := min(12, len(id)-1); n >= 2; n-- {
		if gantry.ValidName(id[:n]) {
			return id[:n]
		}
	}
	return ""
}

func (s *suite) testLookup(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(c *gantry.Container) string
	}{
		{"FullID", func(c *gantry.Container) string { return c.ID }},
		{"UniquePrefix", func(c *gantry.Container) string { return shortPrefix(c.ID) }},
		{"Name", func(c *gantry.Container) string { return c.Name }},
		{"SlashName", func(c *gantry.Container) string { return "/" + c.Name }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.require(t, gantry.FeatureStop)
			t.Parallel()
			rt := s.runtime(t)
			tag := newTag()
			c := s.create(t, rt, tag, scriptStopExits7)
			key := tc.key(c)
			ctx := s.ctx(t)
			if got := inspect(t, rt, key); got.ID != c.ID || got.Name != c.Name {
				t.Fatalf("Inspect(%q) = %s %q, want %s %q", key, got.ID, got.Name, c.ID, c.Name)
			}
			if err := rt.Start(ctx, key); err != nil {
				t.Fatalf("Start(%q): %v", key, err)
			}
			RequireLog(t, rt, key, "ready", s.patience)
			s.stop(t, rt, key, s.patience)
			s.wantStopExit7(t, s.wait(t, rt, key, gantry.WaitNotRunning))
			if err := rt.Remove(ctx, key, gantry.RemoveOptions{}); err != nil {
				t.Fatalf("Remove(%q): %v", key, err)
			}
			if _, err := rt.Inspect(ctx, c.ID); !errors.Is(err, gantry.ErrNotFound) {
				t.Errorf("Inspect after Remove(%q): %v, want ErrNotFound", key, err)
			}
		})
	}
	t.Run("AmbiguousPrefix", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		// Pigeonhole: among 40 IDs over an alphabet of at most 39
		// symbols, two share their first character.
		seen := map[byte]*gantry.Container{}
		var a, b *gantry.Container
		for range 40 {
			c := s.create(t, rt, tag, "exit 0")
			if other, ok := seen[c.ID[0]]; ok {
				a, b = other, c
				break
			}
			seen[c.ID[0]] = c
		}
		if a == nil {
			t.Fatal("40 containers have 40 distinct first ID characters")
		}
		n := 0
		for n < len(a.ID) && n < len(b.ID) && a.ID[n] == b.ID[n] {
			n++
		}
		prefix := a.ID[:n]
		ctx := s.ctx(t)
		if _, err := rt.Inspect(ctx, prefix); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Inspect(ambiguous prefix %q of %s and %s): %v, want ErrInvalidArgument", prefix, a.ID, b.ID, err)
		}
		if err := rt.Start(ctx, prefix); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Start(ambiguous prefix %q): %v, want ErrInvalidArgument", prefix, err)
		}
		if err := rt.Remove(ctx, prefix, gantry.RemoveOptions{Force: true}); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Remove(ambiguous prefix %q): %v, want ErrInvalidArgument", prefix, err)
		}
		wantStatus(t, rt, a.ID, gantry.StatusCreated)
		wantStatus(t, rt, b.ID, gantry.StatusCreated)
	})
	t.Run("NameBeforePrefix", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		a := s.create(t, rt, tag, "exit 0")
		prefix := namePrefix(a.ID)
		if prefix == "" {
			// No name can look like a prefix of this backend's IDs, so
			// names and prefixes never compete; the prefix still finds a.
			prefix = shortPrefix(a.ID)
			if got := inspect(t, rt, prefix); got.ID != a.ID {
				t.Errorf("Inspect(%q) = %s, want %s", prefix, got.ID, a.ID)
			}
			return
		}
		spec := s.spec(tag, "exit 0")
		spec.Name = prefix
		b := Create(t, rt, spec)
		if got := inspect(t, rt, prefix); got.ID != b.ID {
			t.Errorf("Inspect(%q) = %s, want %s, the container of that name (Docker resolves names before ID prefixes)", prefix, got.ID, b.ID)
		}
	})
	t.Run("Missing", s.testMissing)
}

// testMissing checks that every method refuses an unknown container with
// ErrNotFound.
func (s *suite) testMissing(t *testing.T) {
	rt := s.runtime(t)
	missing := "rtt-missing-" + randomHex(6)
	timeout := s.stopTimeout
	ops := []struct {
		name    string
		feature gantry.Feature
		call    func(ctx context.Context) error
	}{
		{"Start", gantry.FeatureStart, func(ctx context.Context) error { return rt.Start(ctx, missing) }},
		{"Stop", gantry.FeatureStop, func(ctx context.Context) error {
			return rt.Stop(ctx, missing, gantry.StopOptions{Timeout: &timeout})
		}},
		{"Kill", gantry.FeatureKill, func(ctx context.Context) error { return rt.Kill(ctx, missing, "") }},
		{"Remove", gantry.FeatureRemove, func(ctx context.Context) error {
			return rt.Remove(ctx, missing, gantry.RemoveOptions{})
		}},
		{"RemoveForce", gantry.FeatureRemove, func(ctx context.Context) error {
			return rt.Remove(ctx, missing, gantry.RemoveOptions{Force: true})
		}},
		{"WaitNotRunning", gantry.FeatureWait, func(ctx context.Context) error {
			_, err := rt.Wait(ctx, missing, gantry.WaitNotRunning)
			return err
		}},
		{"WaitNextExit", gantry.FeatureWait, func(ctx context.Context) error {
			_, err := rt.Wait(ctx, missing, gantry.WaitNextExit)
			return err
		}},
		{"WaitRemoved", gantry.FeatureWait, func(ctx context.Context) error {
			_, err := rt.Wait(ctx, missing, gantry.WaitRemoved)
			return err
		}},
		{"Logs", gantry.FeatureLogs, func(ctx context.Context) error {
			_, err := readLogs(ctx, rt, missing, gantry.LogsOptions{})
			return err
		}},
		{"LogsFollow", gantry.FeatureLogsFollow, func(ctx context.Context) error {
			_, err := readLogs(ctx, rt, missing, gantry.LogsOptions{Follow: true})
			return err
		}},
		{"Exec", gantry.FeatureExec, func(ctx context.Context) error {
			_, err := rt.Exec(ctx, missing, gantry.ExecConfig{Cmd: []string{"true"}})
			return err
		}},
		{"Inspect", gantry.FeatureInspect, func(ctx context.Context) error {
			_, err := rt.Inspect(ctx, missing)
			return err
		}},
		{"Restart", gantry.FeatureRestart, func(ctx context.Context) error {
			return gantry.Restart(ctx, rt, missing, gantry.StopOptions{Timeout: &timeout})
		}},
		{"Pause", gantry.FeaturePause, func(ctx context.Context) error { return gantry.Pause(ctx, rt, missing) }},
		{"Unpause", gantry.FeaturePause, func(ctx context.Context) error { return gantry.Unpause(ctx, rt, missing) }},
		{"Rename", gantry.FeatureRename, func(ctx context.Context) error {
			return gantry.Rename(ctx, rt, missing, "rtt-renamed-"+randomHex(4))
		}},
		{"Update", gantry.FeatureUpdate, func(ctx context.Context) error {
			return gantry.Update(ctx, rt, missing, gantry.Resources{CPU: 1})
		}},
		{"Attach", gantry.FeatureAttach, func(ctx context.Context) error {
			return gantry.Attach(ctx, rt, missing, gantry.AttachOptions{})
		}},
		{"Top", gantry.FeatureTop, func(ctx context.Context) error {
			_, err := gantry.Top(ctx, rt, missing)
			return err
		}},
		{"Stats", gantry.FeatureStats, func(ctx context.Context) error {
			_, err := gantry.ContainerStats(ctx, rt, missing)
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			s.require(t, op.feature)
			t.Parallel()
			if err := op.call(s.ctx(t)); !errors.Is(err, gantry.ErrNotFound) {
				t.Errorf("%s(%q): %v, want ErrNotFound", op.name, missing, err)
			}
		})
	}
}
