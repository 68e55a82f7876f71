// Package meta stores what gantry needs to rebuild a container (its ID,
// name, spec, user labels and creation time) on the cloud resource that
// runs it, so that no state that matters lives in a process.
//
// Google Cloud labels are filterable but narrow: keys and values of at most
// 63 characters from lowercase letters, digits, '_' and '-', keys starting
// with a letter, at most 64 per resource. Annotations are free text. A
// Record is therefore written twice: in full as JSON in one annotation (the
// authority), and as labels for what fits (for the console, billing reports
// and the sweeper), with an escaping that is reversible and never produces
// a character Google refuses.
//
// The JSON outlives the gantry that wrote it, so it is a versioned type of
// this package's own with explicit field names, never gantry.Spec
// marshalled as it is: renaming a Spec field changes the conversion code,
// not what is stored. Version 2, which gantry writes, uses lower-camel
// names, leaves out fields at their zero value and stores durations as Go
// duration strings ("1m30s"). Version 1, gantry.Spec's Go field names with
// durations in nanoseconds, is frozen in its own type and still read.
// Decode refuses a field it does not know and a version it does not read,
// rather than rebuild a container that differs from the one created.
// testdata holds a golden record of every version: a change to the format
// is a new version with a new golden, and the old goldens keep decoding.
//
//	rec := meta.Record{ID: id, Name: "web", Created: time.Now(), Spec: spec}
//	labels := rec.Labels(meta.System{Session: "s1"})
//	annotations, err := rec.Annotations()
//	// ... later, from the resource:
//	back, err := meta.Decode(job.Labels, job.Annotations)
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantryhq/gantry"
)

// The label keys gantry writes on every resource it creates.
const (
	// LabelManagedBy marks a resource as gantry's; its value is
	// ManagedByValue. The sweeper touches nothing without it.
	LabelManagedBy = "managed-by"
	ManagedByValue = "gantry"
	// LabelSession is the session that created the resource.
	LabelSession = "gantry-session"
	// LabelID holds the first IDLabelLen characters of the container ID.
	LabelID = "gantry-id"
	// LabelName holds the container name, escaped (when it fits).
	LabelName = "gantry-name"
	// UserLabelPrefix starts the key of a user label copied to labels.
	UserLabelPrefix = "l-"
	// AnnotationRecord is the annotation that holds the Record as JSON.
	AnnotationRecord = "gantry.gantryhq.github.io/container"
)

// IDLabelLen is how much of the container ID LabelID holds: 128 bits, which
// identify a container as surely as the full ID, within the 63-character
// limit.
const IDLabelLen = 32

// MaxLabels is Google's limit of labels on one resource.
const MaxLabels = 64

// MaxLabelLen is Google's limit on the length of a label key or value.
const MaxLabelLen = 63

var (
	keyRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	valueRE = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

// ValidKey reports whether k is a label key Google accepts (restricted to
// ASCII: gantry writes no international characters).
func ValidKey(k string) bool { return keyRE.MatchString(k) }

// ValidValue reports whether v is a label value Google accepts (ASCII).
func ValidValue(v string) bool { return valueRE.MatchString(v) }

// Escape maps any string to the label alphabet: lowercase letters, digits
// and '-' stand for themselves; every other byte becomes '_' and two
// lowercase hex digits. Unescape reverses it exactly. The result may be
// longer than MaxLabelLen; callers check.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789abcdef"
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Unescape reverses Escape. It refuses any string Escape cannot produce.
func Unescape(s string) (string, error) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-':
			b = append(b, c)
		case c == '_' && i+2 < len(s) && isLowerHex(s[i+1]) && isLowerHex(s[i+2]):
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if (v >= 'a' && v <= 'z') || (v >= '0' && v <= '9') || v == '-' {
				return "", fmt.Errorf("label text %q: byte %q is escaped but need not be", s, v)
			}
			b = append(b, v)
			i += 2
		default:
			return "", fmt.Errorf("label text %q: unexpected %q at %d", s, c, i)
		}
	}
	return string(b), nil
}

func isLowerHex(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// Record is what gantry stores about a container on its resource.
type Record struct {
	ID      string
	Name    string
	Created time.Time
	// Spec is the container's spec as created; Spec.Labels are the user's
	// labels.
	Spec gantry.Spec
}

// System is what every resource carries besides the record: the session,
// and labels the user asked to put on every resource (Google labels,
// already valid).
type System struct {
	Session string
	Labels  map[string]string
}

// recordVersion is the version of the record Annotations writes. A change
// to what it writes, even a field added, is a new version: an older gantry
// refuses fields it does not know, and the version is how it says why.
// Every version gantry has written stays in readers.
const recordVersion = 3

// readers reads each version of the record gantry has written: a container
// outlives the release of gantry that created it.
var readers = map[int]func(raw string) (Record, error){
	1: readV1,
	2: readV2,
	3: readV3,
}

// Labels returns the labels for r's resource: sys.Labels, the managed-by,
// session, ID and name labels, and as many user labels as fit Google's
// rules and count limit (in key order; all of them stay in the
// annotation).
func (r Record) Labels(sys System) map[string]string {
	l := make(map[string]string, len(sys.Labels)+4+len(r.Spec.Labels))
	maps.Copy(l, sys.Labels)
	l[LabelManagedBy] = ManagedByValue
	l[LabelSession] = sys.Session
	l[LabelID] = idLabel(r.ID)
	if n := Escape(r.Name); len(n) <= MaxLabelLen {
		l[LabelName] = n
	}
	for _, k := range slices.Sorted(maps.Keys(r.Spec.Labels)) {
		if len(l) >= MaxLabels {
			break
		}
		key, val := UserLabelPrefix+Escape(k), Escape(r.Spec.Labels[k])
		if len(key) > MaxLabelLen || len(val) > MaxLabelLen {
			continue
		}
		if _, taken := l[key]; !taken {
			l[key] = val
		}
	}
	return l
}

func idLabel(id string) string {
	if len(id) > IDLabelLen {
		return id[:IDLabelLen]
	}
	return id
}

// MaxAnnotationBytes is the limit on the total size of a resource's
// annotations, keys and values together: Cloud Run follows Kubernetes,
// whose limit is 256 KiB.
const MaxAnnotationBytes = 256 << 10

// Annotations returns the annotations for r's resource. It refuses, with
// an error that wraps gantry.ErrInvalidArgument, a record that cannot be
// stored as it is: one with a string that is not valid UTF-8 (JSON and
// the API's protobuf strings carry text only, and would alter it) or one
// whose JSON is over MaxAnnotationBytes.
func (r Record) Annotations() (map[string]string, error) {
	if field, ok := notText(reflect.ValueOf(r.Spec), "Spec"); ok {
		return nil, fmt.Errorf("store container record: %s: %w: not valid UTF-8, which Google Cloud resources cannot hold", field, gantry.ErrInvalidArgument)
	}
	b, err := json.Marshal(toV3(r))
	if err != nil {
		return nil, fmt.Errorf("encode container record: %w", err)
	}
	if n := len(AnnotationRecord) + len(b); n > MaxAnnotationBytes {
		return nil, fmt.Errorf("store container record: %w: the spec takes %d bytes as JSON, over the %d bytes of annotations a Cloud Run resource holds (large scripts or environments belong in an image or a secret)", gantry.ErrInvalidArgument, n, MaxAnnotationBytes)
	}
	return map[string]string{AnnotationRecord: string(b)}, nil
}

// notText returns the path of the first string in v that is not valid
// UTF-8 (map keys included).
func notText(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return path, !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return notText(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p, bad := notText(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad {
				return p, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			k := fmt.Sprintf("%s[%q]", path, fmt.Sprint(it.Key().Interface()))
			if _, bad := notText(it.Key(), k); bad {
				return k, true
			}
			if p, bad := notText(it.Value(), k); bad {
				return p, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			if p, bad := notText(v.Field(i), path+"."+t.Field(i).Name); bad {
				return p, true
			}
		}
	}
	return "", false
}

// ErrNotGantry is returned by Decode for a resource gantry did not create.
var ErrNotGantry = errors.New("resource is not managed by gantry")

// Managed reports whether labels mark a resource as gantry's.
func Managed(labels map[string]string) bool { return labels[LabelManagedBy] == ManagedByValue }

// Decode rebuilds the Record from a resource's labels and annotations. A
// resource without the managed-by label is ErrNotGantry; one whose
// annotation is missing, malformed or disagrees with its ID label is an
// error that says so.
func Decode(labels, annotations map[string]string) (Record, error) {
	if !Managed(labels) {
		return Record{}, ErrNotGantry
	}
	raw, ok := annotations[AnnotationRecord]
	if !ok {
		return Record{}, fmt.Errorf("gantry resource has no %s annotation", AnnotationRecord)
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return Record{}, fmt.Errorf("decode %s annotation: %w", AnnotationRecord, err)
	}
	if rec.ID == "" {
		return Record{}, fmt.Errorf("%s annotation has no container ID", AnnotationRecord)
	}
	// Annotations stores the time in UTC, as RFC 3339, which has four-digit
	// years: an offset can carry a time that reads past either end, and the
	// record could not be stored again.
	if y := rec.Created.UTC().Year(); y < 0 || y > 9999 {
		return Record{}, fmt.Errorf("%s annotation has creation time %s, which is out of range in UTC", AnnotationRecord, rec.Created.Format(time.RFC3339Nano))
	}
	if got := labels[LabelID]; got != idLabel(rec.ID) {
		return Record{}, fmt.Errorf("label %s=%q disagrees with the annotated container ID %q", LabelID, got, rec.ID)
	}
	return rec, nil
}

// decodeRecord reads raw with the reader of the version it declares.
func decodeRecord(raw string) (Record, error) {
	// Unmarshal, unlike a Decoder, refuses anything after the JSON value, so
	// the readers need not check for trailing data.
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal([]byte(raw), &head); err != nil {
		return Record{}, err
	}
	if head.V == nil {
		return Record{}, errors.New("no record version")
	}
	read, ok := readers[*head.V]
	if !ok {
		var known []string
		for _, v := range slices.Sorted(maps.Keys(readers)) {
			known = append(known, strconv.Itoa(v))
		}
		return Record{}, fmt.Errorf("record version %d; this gantry reads versions %s (a later version comes from a newer gantry)", *head.V, strings.Join(known, ", "))
	}
	return read(raw)
}

// decodeStrict decodes raw into v, refusing fields v does not have: a
// field this gantry does not know may hold what the container needs, and
// dropping it would rebuild a different container.
func decodeStrict(raw string, v any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// convert maps every element of in with f, returning nil for an empty in
// (the record stores no empty lists).
func convert[T, U any](in []T, f func(T) U) []U {
	if len(in) == 0 {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// SameContainer reports whether a resource's labels carry the ID label of
// container id: how a retried create recognises that its earlier attempt
// succeeded.
func SameContainer(labels map[string]string, id string) bool {
	return Managed(labels) && labels[LabelID] == idLabel(id)
}
