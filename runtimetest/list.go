package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
)

func (s *suite) testInspect(t *testing.T) {
	s.require(t, gantry.FeatureInspect)
	t.Run("Fields", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), `echo "$GREETING"; exit 9`)
		spec.Env = []string{"GREETING=hello"}
		spec.Labels["tier"] = "backend"
		spec.Labels["empty"] = ""
		spec.StopTimeout = new(3 * time.Second)
		before := time.Now()
		c := Create(t, rt, spec)
		after := time.Now()
		slack := time.Second + s.h.Latency
		if c.Created.Before(before.Add(-slack)) || c.Created.After(after.Add(slack)) {
			t.Errorf("Created %v, want between %v and %v", c.Created, before, after)
		}
		got := inspect(t, rt, c.ID)
		if got.ID != c.ID || got.Name != spec.Name || got.Image != spec.Image || !got.Created.Equal(c.Created) {
			t.Errorf("Inspect: ID %s Name %q Image %q Created %v; want %s %q %q %v", got.ID, got.Name, got.Image, got.Created, c.ID, spec.Name, spec.Image, c.Created)
		}
		if diff := cmp.Diff(spec.Labels, got.Labels); diff != "" {
			t.Errorf("Labels (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(spec, got.Spec, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Spec did not round-trip (-want +got):\n%s", diff)
		}
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 9, "")
		done := wantStatus(t, rt, c.ID, gantry.StatusExited)
		st := done.State
		if st.ExitCode != 9 || st.Signal != "" || st.Error != "" {
			t.Errorf("State after exit 9: %+v", st)
		}
		if st.StartedAt.Before(done.Created) || stampedBefore(st.FinishedAt, st.StartedAt) {
			t.Errorf("times out of order: Created %v StartedAt %v FinishedAt %v", done.Created, st.StartedAt, st.FinishedAt)
		}
		if done.RestartCount != 0 {
			t.Errorf("RestartCount after one run = %d, want 0", done.RestartCount)
		}
		wantLines(t, "logs", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"hello"})
	})
	t.Run("ReturnsCopies", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		first := inspect(t, rt, c.ID)
		first.Labels["mutated"] = "yes"
		first.Spec.Cmd[0] = "mutated"
		second := inspect(t, rt, c.ID)
		if _, ok := second.Labels["mutated"]; ok || second.Spec.Cmd[0] == "mutated" {
			t.Errorf("changing what Inspect returned changed the container: %+v", second)
		}
	})
}

func (s *suite) testList(t *testing.T) {
	s.require(t, gantry.FeatureList)
	rt := s.runtime(t)
	tag := newTag()
	mk := func(name, script string, labels map[string]string) *gantry.Container {
		spec := s.spec(tag, script)
		spec.Name = "rtt-" + tag + "-" + name
		for k, v := range labels {
			spec.Labels[k] = v
		}
		return Create(t, rt, spec)
	}
	// Created in this order, so newest first is the reverse.
	web := mk("web", scriptForever, map[string]string{"tier": "web", "team": "a"})
	db := mk("db", "exit 0", map[string]string{"tier": "db", "team": "a"})
	idle := mk("idle", "exit 0", map[string]string{"tier": "web"})
	for _, c := range []*gantry.Container{web, db} {
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start(%s): %v", c.Name, err)
		}
	}
	s.wait(t, rt, db.ID, gantry.WaitNotRunning)
	RequireLog(t, rt, web.ID, "ready", s.patience)

	for _, tc := range []struct {
		name string
		opts gantry.ListOptions
		want []*gantry.Container
	}{
		{"RunningOnly", gantry.ListOptions{}, []*gantry.Container{web}},
		{"All", gantry.ListOptions{All: true}, []*gantry.Container{idle, db, web}},
		{"IDs", gantry.ListOptions{All: true, IDs: []string{db.ID, shortPrefix(idle.ID)}}, []*gantry.Container{idle, db}},
		{"Names", gantry.ListOptions{All: true, Names: []string{tag + "-web", tag + "-idle"}}, []*gantry.Container{idle, web}},
		{"LabelKey", gantry.ListOptions{All: true, Labels: []string{"team"}}, []*gantry.Container{db, web}},
		{"LabelKeyValue", gantry.ListOptions{All: true, Labels: []string{"tier=web"}}, []*gantry.Container{idle, web}},
		{"LabelsAllMatch", gantry.ListOptions{All: true, Labels: []string{"tier=web", "team=a"}}, []*gantry.Container{web}},
		{"LabelValueMismatch", gantry.ListOptions{All: true, Labels: []string{"tier=cache"}}, nil},
		{"StatusCreated", gantry.ListOptions{Status: []gantry.Status{gantry.StatusCreated}}, []*gantry.Container{idle}},
		{"StatusExited", gantry.ListOptions{Status: []gantry.Status{gantry.StatusExited}}, []*gantry.Container{db}},
		{"StatusSeveral", gantry.ListOptions{Status: []gantry.Status{gantry.StatusRunning, gantry.StatusCreated}}, []*gantry.Container{idle, web}},
		{"Image", gantry.ListOptions{All: true, Image: s.h.Image}, []*gantry.Container{idle, db, web}},
		{"OtherImage", gantry.ListOptions{All: true, Image: "runtimetest/no-such-image"}, nil},
		{"Limit", gantry.ListOptions{All: true, Limit: 2}, []*gantry.Container{idle, db}},
		{"LimitImpliesAll", gantry.ListOptions{Limit: 2}, []*gantry.Container{idle, db}},
		{"LimitAfterFilters", gantry.ListOptions{All: true, Labels: []string{"team=a"}, Limit: 1}, []*gantry.Container{db}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := s.list(t, rt, tag, tc.opts)
			want := make([]string, len(tc.want))
			for i, c := range tc.want {
				want[i] = c.ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("List(%+v) = %q, want %q (newest first)", tc.opts, got, want)
			}
		})
	}
	t.Run("ImageSpellings", func(t *testing.T) {
		// One image, three spellings: each lists all three containers.
		t.Parallel()
		spellings, err := imageSpellings(s.h.Image)
		if err != nil {
			t.Fatal(err)
		}
		tag := newTag()
		var want []string
		for _, img := range spellings {
			spec := s.spec(tag, "exit 0")
			spec.Image = img
			want = append([]string{Create(t, rt, spec).ID}, want...)
		}
		for _, img := range spellings {
			if got := s.list(t, rt, tag, gantry.ListOptions{All: true, Image: img}); !slices.Equal(got, want) {
				t.Errorf("List(Image: %q) = %q, want the containers made as %q: %q", img, got, spellings, want)
			}
		}
		other := strings.TrimSuffix(spellings[1], ":latest") + ":runtimetest-other"
		if got := s.list(t, rt, tag, gantry.ListOptions{All: true, Image: other}); len(got) != 0 {
			t.Errorf("List(Image: %q) = %q, want none: another tag is another image", other, got)
		}
	})
	t.Run("Contents", func(t *testing.T) {
		t.Parallel()
		cs, err := rt.List(s.ctx(t), gantry.ListOptions{All: true, Labels: []string{labelKey + "=" + tag, "tier=db"}})
		if err != nil || len(cs) != 1 {
			t.Fatalf("List: %d containers, %v; want 1", len(cs), err)
		}
		got := cs[0]
		if got.ID != db.ID || got.Name != db.Name || got.Image != s.h.Image || got.State.Status != gantry.StatusExited || got.State.ExitCode != 0 || got.Labels["tier"] != "db" {
			t.Errorf("List entry %+v does not describe the db container", got)
		}
	})
}

func (s *suite) testValidate(t *testing.T) {
	s.require(t, gantry.FeatureCreate)
	for _, tc := range []struct {
		field, bad string
		edit       func(*gantry.Spec)
	}{
		{"Name", "LeadingDash", func(sp *gantry.Spec) { sp.Name = "-leading-dash" }},
		{"Name", "Space", func(sp *gantry.Spec) { sp.Name = "has space" }},
		{"Image", "Empty", func(sp *gantry.Spec) { sp.Image = "" }},
		{"Image", "Uppercase", func(sp *gantry.Spec) { sp.Image = "Upper/Case" }},
		{"Image", "TagWithSpace", func(sp *gantry.Spec) { sp.Image = "busybox:bad tag" }},
		{"Cmd[0]", "NUL", func(sp *gantry.Spec) { sp.Cmd = []string{"nul\x00byte"} }},
		{"Env[0]", "NoEquals", func(sp *gantry.Spec) { sp.Env = []string{"NOEQUALS"} }},
		{"Env[1]", "DigitFirst", func(sp *gantry.Spec) { sp.Env = []string{"OK=1", "1BAD=x"} }},
		{"WorkingDir", "Relative", func(sp *gantry.Spec) { sp.WorkingDir = "relative/dir" }},
		{"User", "Space", func(sp *gantry.Spec) { sp.User = "bad user" }},
		{"Labels[]", "EmptyKey", func(sp *gantry.Spec) { sp.Labels[""] = "x" }},
		{"Ports[0].Port", "TooLarge", func(sp *gantry.Spec) { sp.Ports = []gantry.Port{{Port: 70000}} }},
		{"Ports[0].Protocol", "SCTP", func(sp *gantry.Spec) { sp.Ports = []gantry.Port{{Port: 80, Protocol: "sctp"}} }},
		{"Ports[1].Port", "Duplicate", func(sp *gantry.Spec) { sp.Ports = []gantry.Port{{Port: 80}, {Port: 80, Protocol: "tcp"}} }},
		{"Healthcheck", "NoProbe", func(sp *gantry.Spec) { sp.Healthcheck = &gantry.Healthcheck{} }},
		{"Resources.CPU", "Negative", func(sp *gantry.Spec) { sp.Resources.CPU = -1 }},
		{"Resources.MemoryBytes", "BelowMinimum", func(sp *gantry.Spec) { sp.Resources.MemoryBytes = 1024 }},
		{"Timeout", "Negative", func(sp *gantry.Spec) { sp.Timeout = -time.Second }},
		{"Timeout", "Absurd", func(sp *gantry.Spec) { sp.Timeout = 2 * gantry.MaxDuration }},
		{"StopSignal", "Unknown", func(sp *gantry.Spec) { sp.StopSignal = "SIGNOPE" }},
		{"Mounts[0].Target", "Relative", func(sp *gantry.Spec) { sp.Mounts = []gantry.Mount{{Type: gantry.MountTmpfs, Target: "data"}} }},
		{"Mounts[0].Type", "Unknown", func(sp *gantry.Spec) { sp.Mounts = []gantry.Mount{{Type: "floppy", Target: "/data"}} }},
		{"Secrets[0]", "NeitherEnvNorPath", func(sp *gantry.Spec) { sp.Secrets = []gantry.Secret{{Name: "s"}} }},
		{"Sidecars[0].Name", "Empty", func(sp *gantry.Spec) { sp.Sidecars = []gantry.Sidecar{{Name: "", Image: "busybox"}} }},
	} {
		t.Run(tc.field+"/"+tc.bad, func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			tag := newTag()
			spec := s.spec(tag, "exit 0")
			tc.edit(&spec)
			c, err := rt.Create(s.ctx(t), spec)
			if err == nil {
				removeLater(t, rt, c)
			}
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("Create with a bad %s: %v, want ErrInvalidArgument", tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
			var fe *gantry.FieldError
			if errors.As(err, &fe) && fe.Field != tc.field {
				t.Errorf("FieldError.Field = %q, want %q", fe.Field, tc.field)
			}
			if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
				t.Errorf("a refused Create left containers %q", ids)
			}
			if spec.Name != "" && gantry.ValidName(spec.Name) {
				if _, err := rt.Inspect(s.ctx(t), spec.Name); !errors.Is(err, gantry.ErrNotFound) {
					t.Errorf("Inspect(%q) after a refused Create: %v, want ErrNotFound", spec.Name, err)
				}
			}
		})
	}
}

// concurrency is how many containers Concurrent drives at once.
const concurrency = 50

func (s *suite) testConcurrent(t *testing.T) {
	n := concurrency
	if testing.Short() {
		n = 10
	}
	t.Run(fmt.Sprintf("Lifecycle%d", n), func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := s.lifecycle(rt, tag, i); err != nil {
					errs <- fmt.Errorf("container %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("%d containers remain after every one was removed: %q", len(ids), ids)
		}
	})
}

// lifecycle drives one container through create, start, wait, logs and
// remove, checking the exact exit code and output. It reports instead of
// failing, since it runs on its own goroutine.
func (s *suite) lifecycle(rt gantry.Runtime, tag string, i int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.patience)
	defer cancel()
	code := (i * 37) % 256
	c, err := rt.Create(ctx, s.spec(tag, fmt.Sprintf("echo out %d; echo err %d >&2; exit %d", i, i, code)))
	if err != nil {
		return fmt.Errorf("Create: %w", err)
	}
	defer func() {
		if err != nil {
			rt.Remove(context.Background(), c.ID, gantry.RemoveOptions{Force: true})
		}
	}()
	if err := rt.Start(ctx, c.ID); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if st.ExitCode != code {
		return fmt.Errorf("exit code %d, want %d", st.ExitCode, code)
	}
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	var stdout, stderr bytes.Buffer
	if err := gantry.CopyLogs(&stdout, &stderr, r); err != nil {
		return fmt.Errorf("copyLogs: %w", err)
	}
	if got, want := stdout.String()+"|"+stderr.String(), fmt.Sprintf("out %d\n|err %d\n", i, i); got != want {
		return fmt.Errorf("output %q, want %q", got, want)
	}
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// imageSpellings returns three spellings of the harness's image that Docker
// takes for one image: as the harness gives it with no tag, with
// ":latest", and fully qualified (for busybox: "busybox",
// "busybox:latest", "docker.io/library/busybox:latest").
func imageSpellings(image string) ([]string, error) {
	full, err := gantry.ParseImage(image)
	if err != nil {
		return nil, fmt.Errorf("Harness.Image: %w", err)
	}
	if _, tagged := full.(reference.Tagged); !tagged || full.(reference.Tagged).Tag() != "latest" {
		return nil, fmt.Errorf("Harness.Image %q: the suite needs an image it can name without a tag (its latest)", image)
	}
	short := reference.FamiliarName(full)
	return []string{short, short + ":latest", full.String()}, nil
}
