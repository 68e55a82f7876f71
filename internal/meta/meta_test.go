package meta

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEscapeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web", "web"},
		{"Web_1", "_57eb_5f1"},
		{"a.b", "a_2eb"},
		{"", ""},
		{"é", "_c3_a9"},
	} {
		got := Escape(tc.in)
		if got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := Unescape(got)
		if err != nil || back != tc.in {
			t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestUnescapeRefuses(t *testing.T) {
	for _, in := range []string{"A", "_", "_4", "_zz", "_61", "a b", "_4G"} {
		if got, err := Unescape(in); err == nil {
			t.Errorf("Unescape(%q) = %q, want an error", in, got)
		}
	}
}

func testRecord() Record {
	timeout := 3 * time.Second
	return Record{
		ID:      strings.Repeat("ab", 32),
		Name:    "My.Container_1",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Spec: gantry.Spec{
			Name:        "My.Container_1",
			Image:       "busybox",
			Cmd:         []string{"sh", "-c", "echo hi"},
			Env:         []string{"A=1"},
			Labels:      map[string]string{"team": "Infra", "Long": strings.Repeat("x", 80)},
			StopTimeout: &timeout,
			Mounts:      []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/t", SizeBytes: 1 << 20}},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := testRecord()
	labels := rec.Labels(System{Session: "s1", Labels: map[string]string{"env": "ci"}})
	for k, v := range labels {
		if !ValidKey(k) || !ValidValue(v) {
			t.Errorf("label %q=%q breaks Google's label rules", k, v)
		}
	}
	want := map[string]string{
		"env": "ci", LabelManagedBy: ManagedByValue, LabelSession: "s1",
		LabelID: rec.ID[:IDLabelLen], LabelName: "_4dy_2e_43ontainer_5f1",
		"l-team": "_49nfra",
	}
	if diff := cmp.Diff(want, labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	ann, err := rec.Annotations()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(labels, ann)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if !SameContainer(labels, rec.ID) || SameContainer(labels, strings.Repeat("cd", 32)) {
		t.Error("SameContainer does not tell this container from another")
	}
}

func TestLabelCountLimit(t *testing.T) {
	rec := testRecord()
	rec.Spec.Labels = map[string]string{}
	for i := range 100 {
		rec.Spec.Labels[strings.Repeat("k", i+1)] = "v"
	}
	labels := rec.Labels(System{Session: "s"})
	if len(labels) != MaxLabels {
		t.Errorf("got %d labels, want the limit %d", len(labels), MaxLabels)
	}
}

func TestDecodeRefuses(t *testing.T) {
	rec := testRecord()
	ann, _ := rec.Annotations()
	labels := rec.Labels(System{Session: "s"})
	other := map[string]string{LabelManagedBy: ManagedByValue, LabelID: "0123"}
	for name, tc := range map[string]struct{ labels, ann map[string]string }{
		"not managed":      {map[string]string{"a": "b"}, ann},
		"no annotation":    {labels, nil},
		"bad json":         {labels, map[string]string{AnnotationRecord: "{"}},
		"wrong version":    {labels, map[string]string{AnnotationRecord: `{"v":4,"id":"` + rec.ID + `"}`}},
		"id disagrees":     {other, ann},
		"unknown field":    {labels, map[string]string{AnnotationRecord: `{"v":2,"id":"` + rec.ID + `","zzz":1}`}},
		"unknown v1 field": {labels, map[string]string{AnnotationRecord: `{"v":1,"id":"` + rec.ID + `","zzz":1}`}},
		"trailing data":    {labels, map[string]string{AnnotationRecord: ann[AnnotationRecord] + "{}"}},
		"no container id":  {map[string]string{LabelManagedBy: ManagedByValue}, map[string]string{AnnotationRecord: `{"v":1}`}},
	} {
		if _, err := Decode(tc.labels, tc.ann); err == nil {
			t.Errorf("%s: Decode succeeded, want an error", name)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "web", "Web_1", "é", "\x00\xff", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			c := e[i]
			if !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
				t.Fatalf("Escape(%q) = %q has %q outside the label alphabet", s, e, c)
			}
		}
		back, err := Unescape(e)
		if err != nil || back != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
	})
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "_57eb", "_4", "__", "_61"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Unescape(s)
		if err != nil {
			return
		}
		if Escape(u) != s {
			t.Fatalf("Unescape(%q) = %q, which escapes to %q: not one-to-one", s, u, Escape(u))
		}
	})
}

// FuzzDecode feeds Decode arbitrary annotation text. Whatever it accepts
// must be a record Annotations can store again, which reads back as the
// same record, and storing that is a fixed point: the same bytes again.
func FuzzDecode(f *testing.F) {
	ann, _ := testRecord().Annotations()
	f.Add(ann[AnnotationRecord], testRecord().ID[:IDLabelLen])
	for v := range goldens {
		if raw, err := os.ReadFile(goldenPath(v)); err == nil {
			f.Add(string(raw), goldens[v]().ID[:IDLabelLen])
		}
	}
	f.Add(`{"v":1,"id":"x"}`, "x")
	f.Add(`{"v":1,"id":"x","spec":{"StopTimeout":0,"Labels":{},"Healthcheck":{}}}`, "x")
	f.Add(`{"v":1,"id":"x","created":"0000-01-01T00:30:00+01:00"}`, "x")
	f.Add(`{"v":2,"id":"x","created":"2000-01-01T00:00:00+01:00","spec":{"stopTimeout":"0s","mounts":[{}]}}`, "x")
	f.Fuzz(func(t *testing.T, raw, idLabel string) {
		// A character can take six bytes once escaped, and version 1's
		// durations grow as text: a large input may not fit once stored.
		if len(raw) > MaxAnnotationBytes/8 {
			t.Skip()
		}
		labels := map[string]string{LabelManagedBy: ManagedByValue, LabelID: idLabel}
		rec, err := Decode(labels, map[string]string{AnnotationRecord: raw})
		if err != nil {
			return
		}
		again, err := rec.Annotations()
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		rec2, err := Decode(rec.Labels(System{Session: "s"}), again)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(rec, rec2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("re-encoding changed the record (-decoded +re-encoded):\n%s", diff)
		}
		third, err := rec2.Annotations()
		if err != nil {
			t.Fatal(err)
		}
		if third[AnnotationRecord] != again[AnnotationRecord] {
			t.Fatalf("storing a record twice gives different text:\n%s\n%s", again[AnnotationRecord], third[AnnotationRecord])
		}
	})
}

// Google's rules for what Labels and Annotations produce (Cloud Run API v2
// follows Google Cloud's label rules and Kubernetes' annotation rules).
var (
	googleKeyRE          = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	googleValueRE        = regexp.MustCompile(`^[a-z0-9_-]*$`)
	annotationPrefixRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	annotationNameRE     = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	cloudRunSystemPrefix = []string{"run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev", "autoscaling.knative.dev"}
)

// checkGoogleRules fails t for any label or annotation Cloud Run would
// refuse.
func checkGoogleRules(t *testing.T, labels, annotations map[string]string) {
	t.Helper()
	if len(labels) > MaxLabels {
		t.Errorf("%d labels, over Google's %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if len(k) < 1 || len(k) > MaxLabelLen || !googleKeyRE.MatchString(k) {
			t.Errorf("label key %q breaks Google's rules", k)
		}
		if len(v) > MaxLabelLen || !googleValueRE.MatchString(v) {
			t.Errorf("label %q value %q breaks Google's rules", k, v)
		}
	}
	total := 0
	for k, v := range annotations {
		total += len(k) + len(v)
		prefix, name, ok := strings.Cut(k, "/")
		if !ok || len(prefix) > 253 || !annotationPrefixRE.MatchString(prefix) || len(name) > 63 || !annotationNameRE.MatchString(name) {
			t.Errorf("annotation key %q breaks Kubernetes' rules", k)
		}
		for _, p := range cloudRunSystemPrefix {
			if prefix == p {
				t.Errorf("annotation key %q is in a namespace Cloud Run rejects", k)
			}
		}
		if !utf8.ValidString(v) {
			t.Errorf("annotation %q is not valid UTF-8", k)
		}
	}
	if total > MaxAnnotationBytes {
		t.Errorf("annotations total %d bytes, over %d", total, MaxAnnotationBytes)
	}
}

// FuzzRecord builds arbitrary specs that pass gantry's validation and
// checks that every label and annotation the codec produces is within
// Google's rules, and that the record comes back unchanged, or that
// Annotations refuses the spec with ErrInvalidArgument before any call
// could be made.
func FuzzRecord(f *testing.F) {
	f.Add("web", "Team", "Infra", "echo hi", "s1", uint16(1), uint8(1))
	f.Add("a.b_C-1", strings.Repeat("k", 70), strings.Repeat("V", 70), "\xff", "", uint16(0), uint8(70))
	f.Add("x", "é", "ü", "A=1x", "sess", uint16(65535), uint8(3))
	f.Fuzz(func(t *testing.T, name, key, value, arg, session string, repeat uint16, nLabels uint8) {
		spec := gantry.Spec{
			Name:    name,
			Image:   "busybox",
			Cmd:     []string{strings.Repeat(arg, int(repeat))},
			Env:     []string{"A=" + arg},
			Labels:  map[string]string{},
			Secrets: []gantry.Secret{{Name: "s", Env: "S_" + strconv.Itoa(len(arg))}},
		}
		for i := range int(nLabels) {
			spec.Labels[key+strconv.Itoa(i)] = value
		}
		if spec.Name == "" {
			spec.Name = "x"
		}
		if spec.Validate() != nil || !ValidValue(session) {
			t.Skip()
		}
		rec := Record{ID: strings.Repeat("0f", 32), Name: spec.Name, Created: time.Unix(1, 2).UTC(), Spec: spec}
		labels := rec.Labels(System{Session: session, Labels: map[string]string{"env": "ci"}})
		ann, err := rec.Annotations()
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("Annotations refused a spec with %v, want ErrInvalidArgument", err)
			}
			return
		}
		checkGoogleRules(t, labels, ann)
		back, err := Decode(labels, ann)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		// An empty list or map is stored as none, and gantry treats the two
		// as the same spec.
		if diff := cmp.Diff(rec, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("the record does not come back as it was (-want +got):\n%s", diff)
		}
		for k, v := range spec.Labels {
			if got, ok := labels[UserLabelPrefix+Escape(k)]; ok && got != Escape(v) {
				t.Errorf("user label %q=%q stored as %q", k, v, got)
			}
		}
	})
}

func TestAnnotationsRefuse(t *testing.T) {
	for name, spec := range map[string]gantry.Spec{
		"invalid UTF-8":   {Image: "busybox", Cmd: []string{"echo \xff"}},
		"invalid env":     {Image: "busybox", Env: []string{"A=\xc3"}},
		"over the limit":  {Image: "busybox", Cmd: []string{strings.Repeat("x", MaxAnnotationBytes)}},
		"invalid mount":   {Image: "busybox", Mounts: []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/\xff"}}},
		"invalid sidecar": {Image: "busybox", Sidecars: []gantry.Sidecar{{Name: "s", Image: "busybox", Cmd: []string{"\xfe"}}}},
	} {
		rec := Record{ID: "ab", Name: "x", Spec: spec}
		if _, err := rec.Annotations(); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%s: Annotations = %v, want ErrInvalidArgument", name, err)
		}
	}
}
