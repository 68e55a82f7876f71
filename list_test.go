package gantry_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// listFixture is three containers, created a second apart: web (running),
// db (exited) and idle (created), so newest first is idle, db, web.
func listFixture() []*gantry.Container {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []*gantry.Container{
		{ID: "aaa111", Name: "web-1", Image: "busybox", Created: t0,
			Labels: map[string]string{"tier": "web", "team": "a"},
			State:  gantry.State{Status: gantry.StatusRunning, Running: true}},
		{ID: "bbb222", Name: "db", Image: "docker.io/library/busybox:latest", Created: t0.Add(time.Second),
			Labels: map[string]string{"tier": "db", "team": "a"},
			State:  gantry.State{Status: gantry.StatusExited, ExitCode: 3}},
		{ID: "aab333", Name: "idle", Image: "gcr.io/p/app:v1", Created: t0.Add(2 * time.Second),
			Labels: map[string]string{"tier": "web"},
			State:  gantry.State{Status: gantry.StatusCreated}},
	}
}

func names(cs []*gantry.Container) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestSelectContainers(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts gantry.ListOptions
		want []string
	}{
		{"RunningOnly", gantry.ListOptions{}, []string{"web-1"}},
		{"AllNewestFirst", gantry.ListOptions{All: true}, []string{"idle", "db", "web-1"}},
		{"IDPrefix", gantry.ListOptions{All: true, IDs: []string{"aa"}}, []string{"idle", "web-1"}},
		{"NameSubstring", gantry.ListOptions{All: true, Names: []string{"e"}}, []string{"idle", "web-1"}},
		{"NameAnchored", gantry.ListOptions{All: true, Names: []string{"^web"}}, []string{"web-1"}},
		{"NameWithDockerSlash", gantry.ListOptions{All: true, Names: []string{"^/db$"}}, []string{"db"}},
		{"NameAlternatives", gantry.ListOptions{All: true, Names: []string{"^db$", "^idle$"}}, []string{"idle", "db"}},
		{"LabelKey", gantry.ListOptions{All: true, Labels: []string{"team"}}, []string{"db", "web-1"}},
		{"LabelValue", gantry.ListOptions{All: true, Labels: []string{"tier=web"}}, []string{"idle", "web-1"}},
		{"LabelEmptyValue", gantry.ListOptions{All: true, Labels: []string{"tier="}}, []string{}},
		{"Status", gantry.ListOptions{Status: []gantry.Status{gantry.StatusExited, gantry.StatusCreated}}, []string{"idle", "db"}},
		{"ImageShort", gantry.ListOptions{All: true, Image: "busybox"}, []string{"db", "web-1"}},
		{"ImageTagged", gantry.ListOptions{All: true, Image: "busybox:latest"}, []string{"db", "web-1"}},
		{"ImageFull", gantry.ListOptions{All: true, Image: "docker.io/library/busybox:latest"}, []string{"db", "web-1"}},
		{"ImageOtherTag", gantry.ListOptions{All: true, Image: "busybox:1.36"}, []string{}},
		{"ImageRegistry", gantry.ListOptions{All: true, Image: "gcr.io/p/app:v1"}, []string{"idle"}},
		{"Limit", gantry.ListOptions{Limit: 2}, []string{"idle", "db"}},
		{"LimitAfterFilters", gantry.ListOptions{Labels: []string{"team=a"}, Limit: 1}, []string{"db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := gantry.SelectContainers(tc.opts, listFixture(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tc.want) {
				t.Errorf("SelectContainers(%+v) = %q, want %q", tc.opts, names(got), tc.want)
			}
		})
	}
}

func TestSelectContainersCompletesOnlyWhatIsListed(t *testing.T) {
	var completed []string
	got, err := gantry.SelectContainers(gantry.ListOptions{All: true, Limit: 1}, listFixture(), func(c *gantry.Container) (*gantry.Container, error) {
		completed = append(completed, c.Name)
		c.State.Error = "completed"
		return c, nil
	})
	if err != nil || len(got) != 1 || got[0].State.Error != "completed" {
		t.Fatalf("SelectContainers = %v, %v", got, err)
	}
	if !slices.Equal(completed, []string{"idle"}) {
		t.Errorf("complete called for %q, want only the listed idle", completed)
	}
	boom := errors.New("boom")
	_, err = gantry.SelectContainers(gantry.ListOptions{All: true}, listFixture(), func(*gantry.Container) (*gantry.Container, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("a failing complete gave %v, want its error", err)
	}
}

func TestListOptionsValidate(t *testing.T) {
	if err := (gantry.ListOptions{All: true, Labels: []string{"a", "b=c", "d="}, Status: []gantry.Status{gantry.StatusExited}, Limit: 3}).Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	for _, tc := range []struct {
		field string
		opts  gantry.ListOptions
	}{
		{"Limit", gantry.ListOptions{Limit: -1}},
		{"Names[1]", gantry.ListOptions{Names: []string{"ok", "(unclosed"}}},
		{"Labels[0]", gantry.ListOptions{Labels: []string{"=v"}}},
		{"Status[0]", gantry.ListOptions{Status: []gantry.Status{"sleeping"}}},
		{"Image", gantry.ListOptions{Image: "Upper/Case"}},
	} {
		err := tc.opts.Validate()
		var fe *gantry.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%+v.Validate() = %v, want a FieldError for %s", tc.opts, err, tc.field)
		}
		if _, err := gantry.SelectContainers(tc.opts, listFixture(), nil); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("SelectContainers(%+v) = %v, want ErrInvalidArgument", tc.opts, err)
		}
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                          "docker.io/library/busybox:latest",
		"busybox:1.36":                     "docker.io/library/busybox:1.36",
		"docker.io/library/busybox:latest": "docker.io/library/busybox:latest",
		"user/app":                         "docker.io/user/app:latest",
		"localhost:5000/app":               "localhost:5000/app:latest",
		"us-docker.pkg.dev/p/r/img:v1":     "us-docker.pkg.dev/p/r/img:v1",
	} {
		if got, err := gantry.NormalizeImage(in); err != nil || got != want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := gantry.NormalizeImage("Bad"); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("NormalizeImage(Bad) = %v, want ErrInvalidArgument", err)
	}
}

func FuzzSelectContainers(f *testing.F) {
	for _, s := range []string{"web", "^/db$", "(", "[a-", "busybox", ""} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, name, label, image string) {
		opts := gantry.ListOptions{All: true, Names: []string{name}, Labels: []string{label}, Image: image}
		if image == "" {
			opts.Image = ""
		}
		got, err := gantry.SelectContainers(opts, listFixture(), nil)
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("SelectContainers error %v is not ErrInvalidArgument", err)
			}
			return
		}
		if len(got) > 3 {
			t.Fatalf("SelectContainers returned %d of 3 containers", len(got))
		}
	})
}
