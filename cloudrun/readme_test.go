package cloudrun

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeTable keeps the capability table in README.md equal to what
// Capabilities returns.
func TestReadmeTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	if err := (&Runtime{}).Capabilities().Markdown(&want); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), want.String()) {
		t.Errorf("README.md's capability table is out of date; replace it with:\n%s", want.String())
	}
}
