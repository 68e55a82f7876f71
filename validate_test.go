package gantry_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func validSpec() gantry.Spec {
	return gantry.Spec{
		Name:       "web-1",
		Image:      "us-docker.pkg.dev/p/repo/app:v1.2",
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{"echo hi"},
		Env:        []string{"A=1", "B="},
		WorkingDir: "/srv",
		User:       "1000:1000",
		Labels:     map[string]string{"team": "core"},
		Ports:      []gantry.Port{{Port: 8080}, {Port: 8080, Protocol: "udp"}},
		Healthcheck: &gantry.Healthcheck{
			HTTPPath: "/healthz", Interval: time.Second, Retries: 3,
		},
		Resources:   gantry.Resources{CPU: 1, MemoryBytes: 512 << 20, GPUs: 1, GPUType: "nvidia-l4"},
		Timeout:     time.Hour,
		StopSignal:  "SIGINT",
		StopTimeout: new(-1 * time.Second),
		Mounts: []gantry.Mount{
			{Type: gantry.MountTmpfs, Target: "/tmp/scratch", SizeBytes: 1 << 20},
			{Type: gantry.MountGCS, Source: "bucket", Target: "/data", ReadOnly: true},
			{Type: gantry.MountNFS, Source: "10.0.0.2:/export", Target: "/nfs"},
		},
		Secrets: []gantry.Secret{
			{Name: "db-password", Env: "DB_PASSWORD"},
			{Name: "projects/p/secrets/tls", Version: "3", Path: "/etc/tls/key"},
		},
		Sidecars: []gantry.Sidecar{{Name: "proxy", Image: "envoyproxy/envoy:v1.30"}},
	}
}

func TestValidateAcceptsAFullSpec(t *testing.T) {
	s := validSpec()
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate(valid spec) = %v", err)
	}
	if err := (&gantry.Spec{Image: "alpine"}).Validate(); err != nil {
		t.Fatalf("Validate(minimal spec) = %v", err)
	}
}

// TestValidateRejects covers every validated field: each case breaks one
// thing in an otherwise valid spec and names the field the error must name.
func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name  string
		field string
		edit  func(*gantry.Spec)
	}{
		{"name with space", "Name", func(s *gantry.Spec) { s.Name = "my app" }},
		{"name one char", "Name", func(s *gantry.Spec) { s.Name = "a" }},
		{"name leading dash", "Name", func(s *gantry.Spec) { s.Name = "-app" }},
		{"no image", "Image", func(s *gantry.Spec) { s.Image = "" }},
		{"uppercase repository", "Image", func(s *gantry.Spec) { s.Image = "Alpine" }},
		{"bad tag", "Image", func(s *gantry.Spec) { s.Image = "alpine:.bad" }},
		{"bad digest", "Image", func(s *gantry.Spec) { s.Image = "alpine@sha256:xyz" }},
		{"bad registry", "Image", func(s *gantry.Spec) { s.Image = "-reg.io/app" }},
		{"double slash", "Image", func(s *gantry.Spec) { s.Image = "reg.io//app" }},
		{"NUL in entrypoint", "Entrypoint[1]", func(s *gantry.Spec) { s.Entrypoint[1] = "-\x00c" }},
		{"NUL in cmd", "Cmd[0]", func(s *gantry.Spec) { s.Cmd[0] = "a\x00" }},
		{"env without =", "Env[1]", func(s *gantry.Spec) { s.Env[1] = "B" }},
		{"env empty key", "Env[0]", func(s *gantry.Spec) { s.Env[0] = "=1" }},
		{"env key with dash", "Env[0]", func(s *gantry.Spec) { s.Env[0] = "A-B=1" }},
		{"relative workdir", "WorkingDir", func(s *gantry.Spec) { s.WorkingDir = "srv" }},
		{"bad user", "User", func(s *gantry.Spec) { s.User = "a b" }},
		{"empty label key", "Labels[]", func(s *gantry.Spec) { s.Labels[""] = "x" }},
		{"label key with space", `Labels["a b"]`, func(s *gantry.Spec) { s.Labels["a b"] = "x" }},
		{"label value NUL", "Labels[team]", func(s *gantry.Spec) { s.Labels["team"] = "a\x00" }},
		{"port zero", "Ports[0].Port", func(s *gantry.Spec) { s.Ports[0].Port = 0 }},
		{"port too big", "Ports[0].Port", func(s *gantry.Spec) { s.Ports[0].Port = 70000 }},
		{"port protocol", "Ports[1].Protocol", func(s *gantry.Spec) { s.Ports[1].Protocol = "sctp" }},
		{"port twice", "Ports[1].Port", func(s *gantry.Spec) { s.Ports[1].Protocol = "tcp" }},
		{"two probe kinds", "Healthcheck", func(s *gantry.Spec) { s.Healthcheck.TCPPort = 80 }},
		{"no probe kind", "Healthcheck", func(s *gantry.Spec) { s.Healthcheck.HTTPPath = "" }},
		{"probe test kind", "Healthcheck.Test[0]", func(s *gantry.Spec) {
			s.Healthcheck.HTTPPath, s.Healthcheck.Test = "", []string{"RUN", "x"}
		}},
		{"probe CMD alone", "Healthcheck.Test", func(s *gantry.Spec) {
			s.Healthcheck.HTTPPath, s.Healthcheck.Test = "", []string{"CMD"}
		}},
		{"probe NONE args", "Healthcheck.Test", func(s *gantry.Spec) {
			s.Healthcheck.HTTPPath, s.Healthcheck.Test = "", []string{"NONE", "x"}
		}},
		{"probe path", "Healthcheck.HTTPPath", func(s *gantry.Spec) { s.Healthcheck.HTTPPath = "healthz" }},
		{"probe tcp port", "Healthcheck.TCPPort", func(s *gantry.Spec) {
			s.Healthcheck.HTTPPath, s.Healthcheck.TCPPort = "", 99999
		}},
		{"probe port", "Healthcheck.Port", func(s *gantry.Spec) { s.Healthcheck.Port = -1 }},
		{"probe interval negative", "Healthcheck.Interval", func(s *gantry.Spec) { s.Healthcheck.Interval = -time.Second }},
		{"probe interval tiny", "Healthcheck.Interval", func(s *gantry.Spec) { s.Healthcheck.Interval = time.Microsecond }},
		{"probe timeout absurd", "Healthcheck.Timeout", func(s *gantry.Spec) { s.Healthcheck.Timeout = 2 * gantry.MaxDuration }},
		{"probe start period", "Healthcheck.StartPeriod", func(s *gantry.Spec) { s.Healthcheck.StartPeriod = -1 }},
		{"probe retries", "Healthcheck.Retries", func(s *gantry.Spec) { s.Healthcheck.Retries = -1 }},
		{"negative cpu", "Resources.CPU", func(s *gantry.Spec) { s.Resources.CPU = -1 }},
		{"NaN cpu", "Resources.CPU", func(s *gantry.Spec) { s.Resources.CPU = math.NaN() }},
		{"negative memory", "Resources.MemoryBytes", func(s *gantry.Spec) { s.Resources.MemoryBytes = -1 }},
		{"tiny memory", "Resources.MemoryBytes", func(s *gantry.Spec) { s.Resources.MemoryBytes = 1024 }},
		{"negative gpus", "Resources.GPUs", func(s *gantry.Spec) { s.Resources.GPUs = -1 }},
		{"gpu type without gpus", "Resources.GPUType", func(s *gantry.Spec) { s.Resources.GPUs = 0 }},
		{"negative timeout", "Timeout", func(s *gantry.Spec) { s.Timeout = -time.Second }},
		{"absurd timeout", "Timeout", func(s *gantry.Spec) { s.Timeout = time.Duration(math.MaxInt64) }},
		{"stop signal", "StopSignal", func(s *gantry.Spec) { s.StopSignal = "SIGNOPE" }},
		{"absurd stop timeout", "StopTimeout", func(s *gantry.Spec) { s.StopTimeout = new(gantry.MaxDuration + 1) }},
		{"mount type", "Mounts[0].Type", func(s *gantry.Spec) { s.Mounts[0].Type = "overlay" }},
		{"tmpfs with source", "Mounts[0].Source", func(s *gantry.Spec) { s.Mounts[0].Source = "x" }},
		{"gcs without source", "Mounts[1].Source", func(s *gantry.Spec) { s.Mounts[1].Source = "" }},
		{"bind relative", "Mounts[1].Source", func(s *gantry.Spec) { s.Mounts[1].Type = gantry.MountBind }},
		{"nfs source", "Mounts[2].Source", func(s *gantry.Spec) { s.Mounts[2].Source = "server" }},
		{"size on gcs", "Mounts[1].SizeBytes", func(s *gantry.Spec) { s.Mounts[1].SizeBytes = 10 }},
		{"relative target", "Mounts[1].Target", func(s *gantry.Spec) { s.Mounts[1].Target = "data" }},
		{"shared target", "Mounts[2].Target", func(s *gantry.Spec) { s.Mounts[2].Target = "/data/" }},
		{"secret no name", "Secrets[0].Name", func(s *gantry.Spec) { s.Secrets[0].Name = "" }},
		{"secret version", "Secrets[0].Version", func(s *gantry.Spec) { s.Secrets[0].Version = "v1" }},
		{"secret env and path", "Secrets[0]", func(s *gantry.Spec) { s.Secrets[0].Path = "/x" }},
		{"secret neither", "Secrets[0]", func(s *gantry.Spec) { s.Secrets[0].Env = "" }},
		{"secret env name", "Secrets[0].Env", func(s *gantry.Spec) { s.Secrets[0].Env = "1X" }},
		{"secret env conflicts", "Secrets[0].Env", func(s *gantry.Spec) { s.Secrets[0].Env = "A" }},
		{"secret path relative", "Secrets[1].Path", func(s *gantry.Spec) { s.Secrets[1].Path = "key" }},
		{"sidecar name", "Sidecars[0].Name", func(s *gantry.Spec) { s.Sidecars[0].Name = "" }},
		{"sidecar twice", "Sidecars[1].Name", func(s *gantry.Spec) { s.Sidecars = append(s.Sidecars, s.Sidecars[0]) }},
		{"sidecar image", "Sidecars[0].Image", func(s *gantry.Spec) { s.Sidecars[0].Image = "UPPER" }},
		{"sidecar env", "Sidecars[0].Env[0]", func(s *gantry.Spec) { s.Sidecars[0].Env = []string{"x"} }},
		{"sidecar port", "Sidecars[0].Ports[0].Port", func(s *gantry.Spec) { s.Sidecars[0].Ports = []gantry.Port{{Port: -2}} }},
		{"sidecar cpu", "Sidecars[0].Resources.CPU", func(s *gantry.Spec) { s.Sidecars[0].Resources.CPU = -2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.edit(&s)
			err := s.Validate()
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want ErrInvalidArgument", err)
			}
			var fe *gantry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %T, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("error names field %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestValidateImage(t *testing.T) {
	good := []string{
		"alpine", "alpine:3.20", "library/alpine", "docker.io/library/alpine:latest",
		"localhost:5000/app", "localhost/app", "us-central1-docker.pkg.dev/my-proj/repo/img:v1",
		"gcr.io/p/a__b", "a/b-c/d.e_f", "[::1]:5000/app",
		"alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"ghcr.io/o/r:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"Registry.Example.COM/app",
	}
	for _, ref := range good {
		if err := gantry.ValidateImage(ref); err != nil {
			t.Errorf("ValidateImage(%q) = %v, want nil", ref, err)
		}
	}
	bad := []string{
		"", "Alpine", "alpine:", ":tag", "alpine::1", "a//b", "a/", "/a", "a b",
		"alpine@sha256:abc", "alpine@", "a--_b", "_a", "reg.io:port/app",
		strings.Repeat("a", 256),
	}
	for _, ref := range bad {
		if err := gantry.ValidateImage(ref); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("ValidateImage(%q) = %v, want ErrInvalidArgument", ref, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"ab": true, "web_1.a-b": true, "0x": true, "a": false, "": false,
		"_a": false, "a/b": false, "/ab": false, "héllo": false,
	} {
		if got := gantry.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLogsOptionsValidate(t *testing.T) {
	now := time.Now()
	for _, o := range []gantry.LogsOptions{
		{Tail: -2},
		{Since: now, Until: now.Add(-time.Second)},
	} {
		if err := o.Validate(); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidArgument", o, err)
		}
	}
	for _, o := range []gantry.LogsOptions{{}, {Tail: gantry.TailNone, Follow: true}, {Since: now, Until: now}, {Since: now, Until: now.Add(1)}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", o, err)
		}
	}
}

func FuzzValidateImage(f *testing.F) {
	for _, s := range []string{"alpine", "gcr.io/p/a:b", "localhost:5000/x@sha256:" + strings.Repeat("a", 64), "A", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		err := gantry.ValidateImage(ref)
		if err != nil && !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Fatalf("ValidateImage(%q) = %v: not ErrInvalidArgument", ref, err)
		}
		if err == nil && (ref == "" || strings.ContainsAny(ref, " \t\n\x00")) {
			t.Fatalf("ValidateImage(%q) accepted", ref)
		}
	})
}

func TestExecConfigValidate(t *testing.T) {
	ok := gantry.ExecConfig{Cmd: []string{"ls"}, Env: []string{"A=1"}, WorkingDir: "/", User: "root", Tty: true, Resize: make(chan gantry.TerminalSize)}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	for _, tt := range []struct {
		field string
		edit  func(*gantry.ExecConfig)
	}{
		{"Cmd", func(c *gantry.ExecConfig) { c.Cmd = nil }},
		{"Cmd", func(c *gantry.ExecConfig) { c.Cmd = []string{"", "x"} }},
		{"Cmd[0]", func(c *gantry.ExecConfig) { c.Cmd = []string{"a\x00"} }},
		{"Env[0]", func(c *gantry.ExecConfig) { c.Env = []string{"A"} }},
		{"WorkingDir", func(c *gantry.ExecConfig) { c.WorkingDir = "tmp" }},
		{"User", func(c *gantry.ExecConfig) { c.User = "a:b:c" }},
		{"Resize", func(c *gantry.ExecConfig) { c.Tty = false }},
	} {
		c := ok
		tt.edit(&c)
		var fe *gantry.FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%s: Validate() = %v, want a FieldError naming it", tt.field, err)
		}
	}
}
