package meta

import (
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
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
		"not managed":     {map[string]string{"a": "b"}, ann},
		"no annotation":   {labels, nil},
		"bad json":        {labels, map[string]string{AnnotationRecord: "{"}},
		"wrong version":   {labels, map[string]string{AnnotationRecord: `{"v":2,"id":"x"}`}},
		"id disagrees":    {other, ann},
		"unknown field":   {labels, map[string]string{AnnotationRecord: `{"v":1,"id":"x","zzz":1}`}},
		"trailing data":   {labels, map[string]string{AnnotationRecord: ann[AnnotationRecord] + "{}"}},
		"no container id": {map[string]string{LabelManagedBy: ManagedByValue}, map[string]string{AnnotationRecord: `{"v":1}`}},
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

func FuzzDecode(f *testing.F) {
	ann, _ := testRecord().Annotations()
	f.Add(ann[AnnotationRecord], testRecord().ID[:IDLabelLen])
	f.Add(`{"v":1,"id":"x"}`, "x")
	f.Fuzz(func(t *testing.T, raw, idLabel string) {
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
		if rec2.ID != rec.ID || rec2.Name != rec.Name || !rec2.Created.Equal(rec.Created) {
			t.Fatalf("re-encoding changed the record: %+v then %+v", rec, rec2)
		}
	})
}
