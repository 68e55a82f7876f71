package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "write the golden record of the current version, testdata/record-v<recordVersion>.json, if there is none yet (no golden is ever rewritten)")

// goldens holds, for every version gantry has written, the Record that
// testdata/record-v<version>.json holds. An older version's entry is as
// frozen as its golden file: a Spec field added later goes into the entry
// of the version that adds it.
var goldens = map[int]func() Record{
	1: goldenRecordV1,
	2: goldenRecordV2,
	3: goldenRecordV3,
}

func TestMain(m *testing.M) {
	flag.Parse()
	if *update {
		if err := writeGolden(); err != nil {
			fmt.Fprintln(os.Stderr, "-update:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// writeGolden writes the golden of the current version if there is none.
// It never rewrites one: a golden pins a format that records in the cloud
// already have, and a different format needs a version of its own.
func writeGolden() error {
	rec, ok := goldens[recordVersion]
	if !ok {
		return fmt.Errorf("recordVersion %d has no entry in goldens", recordVersion)
	}
	ann, err := rec().Annotations()
	if err != nil {
		return err
	}
	path := goldenPath(recordVersion)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		fmt.Fprintf(os.Stderr, "-update: %s exists and is not rewritten\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	_, werr := f.WriteString(ann[AnnotationRecord])
	if err := errors.Join(werr, f.Close()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "-update: wrote %s\n", path)
	return nil
}

func goldenPath(version int) string {
	return filepath.Join("testdata", fmt.Sprintf("record-v%d.json", version))
}

// goldenRecordV1 sets every field gantry.Spec had when version 1 was
// current: testdata/record-v1.json is what that gantry wrote for it.
func goldenRecordV1() Record {
	stop := 7 * time.Second
	return Record{
		ID:      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Name:    "web.1",
		Created: time.Date(2025, 11, 30, 23, 59, 58, 123456789, time.UTC),
		Spec: gantry.Spec{
			Name:       "web.1",
			Image:      "us-docker.pkg.dev/p/r/web:1.2@sha256:0000000000000000000000000000000000000000000000000000000000000000",
			Entrypoint: []string{"/bin/sh", "-c"},
			Cmd:        []string{"test -f /ready && exec /srv <in >out"},
			Env:        []string{"MODE=prod", "GREETING=héllo"},
			WorkingDir: "/srv",
			User:       "1000:1000",
			Labels:     map[string]string{"team": "Infra", "tier": "front"},
			Ports:      []gantry.Port{{Port: 8080, Protocol: "tcp"}, {Port: 53, Protocol: "udp"}},
			Healthcheck: &gantry.Healthcheck{
				Test:        []string{"CMD", "/bin/check"},
				HTTPPath:    "/healthz",
				TCPPort:     9000,
				Port:        8080,
				Interval:    30 * time.Second,
				Timeout:     1500 * time.Millisecond,
				StartPeriod: 2 * time.Minute,
				Retries:     3,
			},
			Resources:   gantry.Resources{CPU: 1.5, MemoryBytes: 512 << 20, GPUs: 1, GPUType: "nvidia-l4"},
			Timeout:     90 * time.Minute,
			StopSignal:  "SIGINT",
			StopTimeout: &stop,
			Mounts: []gantry.Mount{
				{Type: gantry.MountTmpfs, Target: "/tmp", SizeBytes: 64 << 20},
				{Type: gantry.MountGCS, Source: "bucket", Target: "/data", ReadOnly: true},
			},
			Secrets: []gantry.Secret{
				{Name: "api-key", Version: "3", Env: "API_KEY"},
				{Name: "projects/p/secrets/cert", Version: "latest", Path: "/certs/tls.pem"},
			},
			Tty:       true,
			OpenStdin: true,
			Sidecars: []gantry.Sidecar{{
				Name:       "proxy",
				Image:      "envoyproxy/envoy:v1.31",
				Entrypoint: []string{"envoy"},
				Cmd:        []string{"-c", "/etc/envoy.yaml"},
				Env:        []string{"LOG=info"},
				Ports:      []gantry.Port{{Port: 9901, Protocol: "tcp"}},
				Resources:  gantry.Resources{CPU: 0.25, MemoryBytes: 128 << 20, GPUs: 2, GPUType: "nvidia-t4"},
			}},
		},
	}
}

// goldenRecordV2 sets every field gantry.Spec had when version 2 was
// current.
func goldenRecordV2() Record { return goldenRecordV1() }

// goldenRecordV3 must set every field of gantry.Spec
// (TestGoldenSetsEveryField), so that a field mapped into the record
// changes the current golden.
func goldenRecordV3() Record {
	r := goldenRecordV2()
	r.Spec.RestartPolicy = gantry.RestartPolicy{Name: gantry.RestartOnFailure, MaxRetries: 5}
	return r
}

func goldenLabels(r Record) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelID: idLabel(r.ID)}
}

func TestGoldensDecode(t *testing.T) {
	for v := 1; v <= recordVersion; v++ {
		want, ok := goldens[v]
		if !ok {
			t.Errorf("version %d has no entry in goldens", v)
			continue
		}
		raw, err := os.ReadFile(goldenPath(v))
		if errors.Is(err, fs.ErrNotExist) && v == recordVersion {
			t.Errorf("%s is missing: write it with go test ./internal/meta -run TestGolden -update", goldenPath(v))
			continue
		}
		if err != nil {
			t.Errorf("version %d: %v (a golden of an older version is never removed or rewritten)", v, err)
			continue
		}
		got, err := Decode(goldenLabels(want()), map[string]string{AnnotationRecord: string(raw)})
		if err != nil {
			t.Errorf("%s: %v", goldenPath(v), err)
			continue
		}
		if diff := cmp.Diff(want(), got); diff != "" {
			t.Errorf("%s decodes to a different record (-want +got):\n%s", goldenPath(v), diff)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "record-v*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "record-v"), ".json"))
		if err != nil || v < 1 || v > recordVersion {
			t.Errorf("%s is not the golden of a version this gantry reads (1 to %d)", f, recordVersion)
		}
	}
}

// TestGoldenCurrentFormat pins what Annotations writes, byte for byte, to
// the golden of the current version: a change to the format must come
// with a new version, or a gantry that reads this version would be given
// records it cannot read.
func TestGoldenCurrentFormat(t *testing.T) {
	rec, ok := goldens[recordVersion]
	if !ok {
		t.Fatalf("recordVersion %d has no entry in goldens", recordVersion)
	}
	ann, err := rec().Annotations()
	if err != nil {
		t.Fatal(err)
	}
	got := []byte(ann[AnnotationRecord])
	path := goldenPath(recordVersion)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: write it with go test ./internal/meta -run TestGolden -update", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("Annotations no longer writes what %s holds: the record format changed. "+
			"Bump recordVersion, add a reader for the new version and its golden (go test ./internal/meta -run TestGolden -update), "+
			"and keep the old golden decoding; never edit it (-golden +Annotations):\n%s",
			path, cmp.Diff(indentJSON(t, want), indentJSON(t, got)))
	}
}

func indentJSON(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

func TestGoldenSetsEveryField(t *testing.T) {
	rec := goldens[recordVersion]()
	all, set := map[string]bool{}, map[string]bool{}
	fieldsSet(reflect.ValueOf(rec), "Record", all, set)
	for p := range all {
		if !set[p] {
			t.Errorf("goldenRecordV%d leaves %s at its zero value: set it, so that its encoding is pinned by the golden", recordVersion, p)
		}
	}
}

// fieldsSet records in all the path of every field under v and in set
// those that are not zero, in some element for a field of list elements.
func fieldsSet(v reflect.Value, path string, all, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fieldsSet(v.Elem(), path, all, set)
		}
	case reflect.Slice:
		for i := range v.Len() {
			fieldsSet(v.Index(i), path+"[]", all, set)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			p := path + "." + v.Type().Field(i).Name
			all[p] = true
			if !v.Field(i).IsZero() {
				set[p] = true
			}
			fieldsSet(v.Field(i), p, all, set)
		}
	}
}

// fill sets every field under v to a value that is not zero and differs
// from every other field's, so that a round trip that drops a field or
// swaps two shows. Booleans cannot all differ: they are all true when
// onlyBool is negative, and otherwise only the onlyBool'th is.
type filler struct {
	t        *testing.T
	n        int
	bools    int
	onlyBool int
}

func (f *filler) fill(v reflect.Value, path string) {
	f.n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(f.n))
	case reflect.Bool:
		v.SetBool(f.onlyBool < 0 || f.onlyBool == f.bools)
		f.bools++
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(f.n))
	case reflect.Float64:
		v.SetFloat(float64(f.n) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range v.Len() {
			f.fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			f.fill(k, path+" key")
			f.fill(e, path+" value")
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				f.t.Fatalf("%s.%s is unexported: the filler cannot set it", path, v.Type().Field(i).Name)
			}
			f.fill(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	default:
		f.t.Fatalf("%s is a %s, which the filler does not know: teach it, and store the field in the record", path, v.Kind())
	}
}

func filledSpec(t *testing.T, onlyBool int) (gantry.Spec, int) {
	var s gantry.Spec
	f := &filler{t: t, onlyBool: onlyBool}
	f.fill(reflect.ValueOf(&s).Elem(), "Spec")
	return s, f.bools
}

// TestSpecRoundTrip catches a field of gantry.Spec that the record does
// not store, or stores in another field's place: add it to the current
// version's type, and as that changes the format, bump recordVersion.
func TestSpecRoundTrip(t *testing.T) {
	_, bools := filledSpec(t, -1)
	for only := -1; only < bools; only++ {
		spec, _ := filledSpec(t, only)
		rec := Record{ID: strings.Repeat("9", 64), Name: spec.Name, Created: time.Unix(1700000000, 5).UTC(), Spec: spec}
		ann, err := rec.Annotations()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(goldenLabels(rec), ann)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("spec filled with boolean %d of %d set (-1: all) does not come back (-want +got):\n%s", only, bools, diff)
		}
	}
}

func TestStopTimeoutZeroIsNotUnset(t *testing.T) {
	zero := time.Duration(0)
	for _, stop := range []*time.Duration{nil, &zero} {
		rec := Record{ID: "ab", Spec: gantry.Spec{Image: "i", StopTimeout: stop}}
		ann, err := rec.Annotations()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(goldenLabels(rec), ann)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("StopTimeout %v (-want +got):\n%s", stop, diff)
		}
	}
}

func TestEmptyIsUnset(t *testing.T) {
	rec := Record{ID: "ab", Spec: gantry.Spec{
		Cmd:         []string{},
		Labels:      map[string]string{},
		Ports:       []gantry.Port{},
		Healthcheck: &gantry.Healthcheck{},
		Mounts:      []gantry.Mount{{}},
	}}
	ann, err := rec.Annotations()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":3,"id":"ab","name":"","created":"0001-01-01T00:00:00Z","spec":{"healthcheck":{},"mounts":[{}]}}`
	if got := ann[AnnotationRecord]; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got, err := Decode(goldenLabels(rec), ann)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDurationText(t *testing.T) {
	for _, d := range []time.Duration{math.MinInt64, math.MinInt64 + 1, -1, 1, 1500 * time.Millisecond, 90 * time.Minute, math.MaxInt64} {
		b, err := duration(d).MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back duration
		if err := back.UnmarshalText(b); err != nil || time.Duration(back) != d {
			t.Errorf("%d is stored as %q, which reads back as %d, %v", d, b, back, err)
		}
	}
}

func FuzzDurationText(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, n int64) {
		b, _ := duration(n).MarshalText()
		var back duration
		if err := back.UnmarshalText(b); err != nil || int64(back) != n {
			t.Fatalf("%d is stored as %q, which reads back as %d, %v", n, b, back, err)
		}
	})
}

func TestDecodeVersions(t *testing.T) {
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelID: "x"}
	for name, tc := range map[string]struct{ raw, err string }{
		"v1 durations in nanoseconds":  {raw: `{"v":1,"id":"x","spec":{"Timeout":1000}}`},
		"v2 durations as text":         {raw: `{"v":2,"id":"x","spec":{"timeout":"1µs"}}`},
		"v2 duration as a number":      {raw: `{"v":2,"id":"x","spec":{"timeout":1000}}`, err: "timeout"},
		"v1 duration in v2":            {raw: `{"v":2,"id":"x","spec":{"Timeout":1000}}`, err: "timeout"},
		"v2 duration in v1":            {raw: `{"v":1,"id":"x","spec":{"timeout":"1µs"}}`, err: "Timeout"},
		"unknown field":                {raw: `{"v":2,"id":"x","spec":{"workDir":"/"}}`, err: "unknown field"},
		"unknown nested field":         {raw: `{"v":2,"id":"x","spec":{"ports":[{"port":1,"host":2}]}}`, err: "unknown field"},
		"restart policy in v2":         {raw: `{"v":2,"id":"x","spec":{"restartPolicy":{"name":"always"}}}`, err: "unknown field"},
		"v3 durations as text":         {raw: `{"v":3,"id":"x","spec":{"timeout":"1µs","restartPolicy":{"name":"always"}}}`},
		"unknown version":              {raw: `{"v":4,"id":"x"}`, err: "reads versions 1, 2, 3"},
		"version 0":                    {raw: `{"v":0,"id":"x"}`, err: "reads versions 1, 2, 3"},
		"no version":                   {raw: `{"id":"x"}`, err: "no record version"},
		"created before year 0 in UTC": {raw: `{"v":2,"id":"x","created":"0000-01-01T00:00:00+01:00"}`, err: "out of range"},
		"trailing bracket":             {raw: `{"v":2,"id":"x"}]`, err: "after top-level value"},
	} {
		got, err := Decode(labels, map[string]string{AnnotationRecord: tc.raw})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.err == "" && got.Spec.Timeout != time.Microsecond:
			t.Errorf("%s: timeout %v, want 1µs", name, got.Spec.Timeout)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: Decode = %v, want an error with %q", name, err, tc.err)
		}
	}
}
