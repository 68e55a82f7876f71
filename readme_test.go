package gantry_test

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

var update = flag.Bool("update", false, "rewrite the generated parts of README.md")

// TestREADMECapabilities keeps the README's capability matrix generated
// from code: it fails when the table there differs from what the backends
// report, and rewrites it with -update.
func TestREADMECapabilities(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]gantry.Capabilities{
		"fake": fake.New(fake.WithHostProcesses()).Capabilities(),
	}
	got := readme
	for name, caps := range tables {
		var table bytes.Buffer
		if err := caps.Markdown(&table); err != nil {
			t.Fatal(err)
		}
		section := regexp.MustCompile(`(?s)(<!-- capabilities:` + name + ` -->\n).*?(<!-- end capabilities:` + name + ` -->)`)
		if !section.Match(got) {
			t.Fatalf("README.md has no capabilities:%s markers", name)
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
		if err := os.WriteFile("README.md", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error("README.md's capability tables are stale; run: go test . -run TestREADMECapabilities -update")
}
