package gcptest

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The special fields of a structured log line that Cloud Logging moves
// from the JSON object to the LogEntry (RULES.md, "Strict mode").
const (
	fieldLabels       = "logging.googleapis.com/labels"
	fieldInsertID     = "logging.googleapis.com/insertId"
	fieldOperation    = "logging.googleapis.com/operation"
	fieldSource       = "logging.googleapis.com/sourceLocation"
	fieldSpanID       = "logging.googleapis.com/spanId"
	fieldTrace        = "logging.googleapis.com/trace"
	fieldTraceSampled = "logging.googleapis.com/trace_sampled"
)

// structuredPayload makes le the entry Cloud Run writes for a line that is
// one JSON object: the object becomes jsonPayload, and the special fields
// Cloud Logging recognises are moved out of it to the entry. A line that
// is not one JSON object stays textPayload. A special field whose value
// does not have the documented form stays in jsonPayload.
func structuredPayload(le *loggingpb.LogEntry, line string) {
	trimmed := strings.TrimSpace(line)
	if !strings.HasPrefix(trimmed, "{") {
		return
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(trimmed), &obj); err != nil || obj == nil {
		return
	}
	liftSeverity(le, obj)
	liftTime(le, obj)
	liftMessage(obj, "httpRequest", func(m proto.Message) { le.HttpRequest = m.(*ltype.HttpRequest) }, &ltype.HttpRequest{})
	liftMessage(obj, fieldOperation, func(m proto.Message) { le.Operation = m.(*loggingpb.LogEntryOperation) }, &loggingpb.LogEntryOperation{})
	liftMessage(obj, fieldSource, func(m proto.Message) { le.SourceLocation = m.(*loggingpb.LogEntrySourceLocation) }, &loggingpb.LogEntrySourceLocation{})
	liftLabels(le, obj)
	if v, ok := obj[fieldInsertID].(string); ok {
		le.InsertId = v
		delete(obj, fieldInsertID)
	}
	if v, ok := obj[fieldTrace].(string); ok {
		le.Trace = v
		delete(obj, fieldTrace)
	}
	if v, ok := obj[fieldSpanID].(string); ok {
		le.SpanId = v
		delete(obj, fieldSpanID)
	}
	if v, ok := obj[fieldTraceSampled].(bool); ok {
		le.TraceSampled = v
		delete(obj, fieldTraceSampled)
	}
	payload, err := structpb.NewStruct(obj)
	if err != nil {
		return
	}
	le.Payload = &loggingpb.LogEntry_JsonPayload{JsonPayload: payload}
}

// severityAliases are the common spellings Cloud Logging reads besides
// LogSeverity's names.
var severityAliases = map[string]ltype.LogSeverity{"WARN": ltype.LogSeverity_WARNING}

// liftSeverity moves "severity" to the entry when it names a LogSeverity
// (in any case, or WARN) or is one of its numbers.
func liftSeverity(le *loggingpb.LogEntry, obj map[string]any) {
	var (
		sev ltype.LogSeverity
		ok  bool
	)
	switch v := obj["severity"].(type) {
	case string:
		up := strings.ToUpper(v)
		if n, known := ltype.LogSeverity_value[up]; known {
			sev, ok = ltype.LogSeverity(n), true
		} else {
			sev, ok = severityAliases[up]
		}
	case float64:
		if _, known := ltype.LogSeverity_name[int32(v)]; known && v == math.Trunc(v) {
			sev, ok = ltype.LogSeverity(v), true
		}
	}
	if ok {
		le.Severity = sev
		delete(obj, "severity")
	}
}

// liftTime sets the entry's timestamp from the first time field present,
// in the order Cloud Logging reads them: "timestamp" as {"seconds",
// "nanos"} (or an RFC 3339 string), "timestampSeconds" with
// "timestampNanos", then "time" as an RFC 3339 string.
func liftTime(le *loggingpb.LogEntry, obj map[string]any) {
	set := func(t time.Time, fields ...string) {
		le.Timestamp = timestamppb.New(t)
		for _, f := range fields {
			delete(obj, f)
		}
	}
	switch v := obj["timestamp"].(type) {
	case map[string]any:
		if t, ok := secondsNanos(v["seconds"], v["nanos"]); ok {
			set(t, "timestamp")
			return
		}
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			set(t, "timestamp")
			return
		}
	}
	if _, ok := obj["timestampSeconds"]; ok {
		if t, ok := secondsNanos(obj["timestampSeconds"], obj["timestampNanos"]); ok {
			set(t, "timestampSeconds", "timestampNanos")
			return
		}
	}
	if v, ok := obj["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			set(t, "time")
		}
	}
}

// secondsNanos reads whole seconds and optional nanoseconds (0 to
// 999,999,999) as JSON numbers.
func secondsNanos(sec, nsec any) (time.Time, bool) {
	s, ok := sec.(float64)
	if !ok || s != math.Trunc(s) {
		return time.Time{}, false
	}
	n := 0.0
	if nsec != nil {
		if n, ok = nsec.(float64); !ok || n != math.Trunc(n) || n < 0 || n >= 1e9 {
			return time.Time{}, false
		}
	}
	return time.Unix(int64(s), int64(n)).UTC(), true
}

// liftMessage moves field to the entry when it is an object of m's JSON
// form; fields m does not have are dropped.
func liftMessage(obj map[string]any, field string, assign func(proto.Message), m proto.Message) {
	v, ok := obj[field].(map[string]any)
	if !ok {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
		return
	}
	assign(m)
	delete(obj, field)
}

// liftLabels adds "logging.googleapis.com/labels", an object of strings,
// to the entry's labels. The labels Cloud Run sets keep their values.
func liftLabels(le *loggingpb.LogEntry, obj map[string]any) {
	v, ok := obj[fieldLabels].(map[string]any)
	if !ok {
		return
	}
	labels := make(map[string]string, len(v))
	for k, x := range v {
		s, ok := x.(string)
		if !ok {
			return
		}
		labels[k] = s
	}
	if le.Labels == nil {
		le.Labels = map[string]string{}
	}
	for k, s := range labels {
		if _, set := le.Labels[k]; !set {
			le.Labels[k] = s
		}
	}
	delete(obj, fieldLabels)
}
