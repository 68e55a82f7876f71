package gantry_test

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions"
	"github.com/gantryhq/gantry/cloudrun"
	"github.com/gantryhq/gantry/docker"
	"github.com/gantryhq/gantry/fake"
	"google.golang.org/api/option"
)

var update = flag.Bool("update", false, "rewrite the generated parts of README.md")

// TestREADMECapabilities keeps the READMEs' capability matrices generated
// from code: it fails when a table differs from what its backend reports,
// and rewrites it with -update.
func TestREADMECapabilities(t *testing.T) {
	for _, doc := range []struct {
		file   string
		tables map[string]gantry.Capabilities
	}{
		{"README.md", map[string]gantry.Capabilities{"fake": fake.New(fake.WithHostProcesses()).Capabilities()}},
		{"cloudrun/README.md", map[string]gantry.Capabilities{"cloudrun": (&cloudrun.Runtime{}).Capabilities(), "cloudrun-agent": withAgent(t, ""), "cloudrun-instance": withAgent(t, cloudrun.KindInstance)}},
		{"docker/README.md", map[string]gantry.Capabilities{"docker": (&docker.Runtime{}).Capabilities()}},
		{"cloudfunctions/README.md", map[string]gantry.Capabilities{"cloudfunctions": (&cloudfunctions.Runtime{}).Capabilities()}},
	} {
		checkTables(t, doc.file, doc.tables)
	}
}

// withAgent is the capability table of a cloudrun Runtime with the agent
// whose containers are of kind. Its clients never connect: nothing is
// called.
func withAgent(t *testing.T, kind cloudrun.Kind) gantry.Capabilities {
	rt, err := cloudrun.New(t.Context(), cloudrun.Config{
		Project: "p", Region: "europe-west4", Kind: kind,
		Agent: &cloudrun.AgentConfig{Image: "registry.example/gantry-agent:1", Relay: "https://relay.example"},
	}, option.WithEndpoint("localhost:1"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	return rt.Capabilities()
}

func checkTables(t *testing.T, file string, tables map[string]gantry.Capabilities) {
	readme, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := readme
	for name, caps := range tables {
		var table bytes.Buffer
		if err := caps.Markdown(&table); err != nil {
			t.Fatal(err)
		}
		section := regexp.MustCompile(`(?s)(<!-- capabilities:` + name + ` -->\n).*?(<!-- end capabilities:` + name + ` -->)`)
		if !section.Match(got) {
			t.Fatalf("%s has no capabilities:%s markers", file, name)
		}
		got = section.ReplaceAllFunc(got, func(m []byte) []byte {
			sub := section.FindSubmatch(m)
			return append(append(append([]byte{}, sub[1]...), table.Bytes()...), sub[2]...)
		})
	}
	if bytes.Equal(got, readme) {
		return
	}
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's capability tables are stale; run: go test . -run TestREADMECapabilities -update", file)
}
