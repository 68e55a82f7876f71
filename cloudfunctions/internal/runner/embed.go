package runner

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"time"
)

// The function's source as it is deployed: this package's runner.go and
// its own go.mod (kept as go.mod.txt, since a go.mod here would cut the
// directory out of gantry's module).
var (
	//go:embed runner.go
	source []byte
	//go:embed go.mod.txt
	goMod []byte
)

// EntryPoint is the function's entry point: the exported handler in
// runner.go.
const EntryPoint = "Run"

// Module is the module path in the function's go.mod.
const Module = "github.com/gantryhq/gantry/cloudfunctions/runner"

// Zip returns the function's source as the zip archive Cloud Functions
// builds from: go.mod and runner.go at its root. Its bytes depend only on
// the source, so the same runner is always the same upload.
func Zip() []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"go.mod", goMod}, {"runner.go", source}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			panic("runner: zip: " + err.Error())
		}
		w.Write(f.data)
	}
	if err := zw.Close(); err != nil {
		panic("runner: zip: " + err.Error())
	}
	return buf.Bytes()
}
