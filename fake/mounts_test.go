package fake_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// TestHostMountsSubstitutePaths runs a command whose arguments, working
// directory and environment name paths under two nested bind mounts and a
// tmpfs mount, and checks that each whole-argument path reached the host
// directory it stands for, while paths inside an argument did not.
func TestHostMountsSubstitutePaths(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	data, nested := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "in"), []byte("from data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nested, "in"), []byte("from nested\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `cat "$1"; cat "$2"; cat ./in; echo "$OUT"; echo "$INNER"; echo "$3"; echo hi > "$4"; cat "$4"; ls "$5"`
	c, err := rt.Create(ctx, gantry.Spec{
		Image:      "busybox",
		Entrypoint: []string{"sh", "-c", script, "sh"},
		Cmd:        []string{"/data/in", "/data/nested/in", "--file=/data/in", "/scratch/f", "/data"},
		WorkingDir: "/data/nested",
		Env:        []string{"OUT=/data", "INNER=x:/data/in"},
		Mounts: []gantry.Mount{
			{Type: gantry.MountBind, Source: data, Target: "/data"},
			{Type: gantry.MountBind, Source: nested, Target: "/data/nested/"},
			{Type: gantry.MountTmpfs, Target: "/scratch"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 0 {
		t.Fatalf("wait: %+v, %v", st, err)
	}
	out, stderr := output(t, rt, c.ID, gantry.LogsOptions{})
	want := strings.Join([]string{"from data", "from nested", "from nested", data, "x:/data/in", "--file=/data/in", "hi", "in"}, "\n") + "\n"
	if out != want || stderr != "" {
		t.Errorf("output %q, stderr %q; want %q", out, stderr, want)
	}
	got, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Cmd[0] != "/data/in" || got.Spec.WorkingDir != "/data/nested" {
		t.Errorf("Inspect shows the rewritten spec: %q, %q", got.Spec.Cmd, got.Spec.WorkingDir)
	}
}

// TestHostTmpfsIsPerRun checks that a tmpfs mount is an empty directory
// at each start and is gone once the run has ended, and that an exec sees
// the container's mounts.
func TestHostTmpfsIsPerRun(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c, err := rt.Create(ctx, gantry.Spec{
		Image:      "busybox",
		Entrypoint: []string{"sh", "-c", `ls "$1"; echo "$1"; touch "$1/mark"; echo ready; sleep 30`, "sh", "/t"},
		Mounts:     []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/t"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for run := range 2 {
		if err := rt.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			out, _ := output(t, rt, c.ID, gantry.LogsOptions{})
			if strings.Count(out, "ready\n") == run+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d never got ready: %q", run, out)
			}
		}
		var out strings.Builder
		res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"ls", "/t"}, Stdout: &out})
		if err != nil || res.ExitCode != 0 || out.String() != "mark\n" {
			t.Errorf("run %d: exec ls /t = %q, %+v, %v", run, out.String(), res, err)
		}
		if err := rt.Kill(ctx, c.ID, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
			t.Fatal(err)
		}
		lines, _ := output(t, rt, c.ID, gantry.LogsOptions{})
		all := strings.Split(strings.TrimSpace(lines), "\n")
		dir := all[len(all)-2]
		dirs = append(dirs, dir)
		if len(all)%2 != 0 || !filepath.IsAbs(dir) || dir == "/t" {
			t.Fatalf("run %d logged %q: want the tmpfs directory, empty at start, then ready", run, all)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run %d: tmpfs directory %s still exists after the run: %v", run, dir, err)
		}
	}
	if dirs[0] == dirs[1] {
		t.Errorf("both runs had tmpfs directory %s", dirs[0])
	}
}

// TestMountsRefused checks what cannot be mounted: anything in Go-function
// mode, and volume, gcs and nfs mounts or a missing bind source on host
// processes.
func TestMountsRefused(t *testing.T) {
	ctx := context.Background()
	goRT := fake.New(fake.WithImage("img", fake.Image{Run: func(context.Context, *fake.Process) int { return 0 }}))
	defer goRT.Close()
	_, err := goRT.Create(ctx, gantry.Spec{Image: "img", Mounts: []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/t"}}})
	if !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("Go-function mode, tmpfs: %v, want ErrNotSupported", err)
	}
	host := newHost(t)
	for _, m := range []gantry.Mount{
		{Type: gantry.MountVolume, Source: "vol", Target: "/v"},
		{Type: gantry.MountGCS, Source: "bucket", Target: "/g"},
		{Type: gantry.MountNFS, Source: "10.0.0.1:/x", Target: "/n"},
	} {
		_, err := host.Create(ctx, gantry.Spec{Image: "busybox", Cmd: []string{"true"}, Mounts: []gantry.Mount{m}})
		if !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("host, %s: %v, want ErrNotSupported", m.Type, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing")
	_, err = host.Create(ctx, gantry.Spec{Image: "busybox", Cmd: []string{"true"}, Mounts: []gantry.Mount{{Type: gantry.MountBind, Source: missing, Target: "/m"}}})
	if !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("host, missing bind source: %v, want ErrInvalidArgument", err)
	}
	if lvl := host.Capabilities().Level(gantry.FeatureMounts); lvl != gantry.Partial {
		t.Errorf("host mounts are %s, want partial", lvl)
	}
	if lvl := goRT.Capabilities().Level(gantry.FeatureMounts); lvl != gantry.None {
		t.Errorf("Go-function mounts are %s, want none", lvl)
	}
}
