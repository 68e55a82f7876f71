package logfilter

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/protobuf/types/known/structpb"
)

// Filter is a parsed query. The zero Filter (from an empty query) matches
// every entry. A Filter is immutable and safe for concurrent use.
type Filter struct {
	src  string
	root Expr
}

// Root returns the top expression, or nil for an empty filter.
func (f *Filter) Root() Expr { return f.root }

// Match reports whether the entry satisfies the filter.
func (f *Filter) Match(e *loggingpb.LogEntry) bool {
	return f.root == nil || f.root.Match(e)
}

// String returns the filter in a canonical form that Parse accepts and
// that means the same thing: every value quoted, every nested AND or OR in
// parentheses, and value lists expanded into one comparison per value.
func (f *Filter) String() string {
	if f.root == nil {
		return ""
	}
	return f.root.String()
}

// Expr is a node of a parsed filter.
type Expr interface {
	// Match reports whether the entry satisfies the expression.
	Match(e *loggingpb.LogEntry) bool
	// String returns the expression in the canonical syntax.
	String() string
}

// And is satisfied when every term is.
type And struct{ Terms []Expr }

// Or is satisfied when any term is.
type Or struct{ Terms []Expr }

// Not negates X.
type Not struct{ X Expr }

// Global is a value written on its own: a restriction that holds when any
// searchable field of the entry contains the value (case-insensitively).
// The searched fields are textPayload, string leaves of jsonPayload,
// logName, insertId, resource.type, and the values of resource.labels and
// labels.
type Global struct{ Value string }

// Op is a comparison operator.
type Op int

// The comparison operators of the Logging query language.
const (
	OpEq       Op = iota // =
	OpNe                 // !=
	OpLt                 // <
	OpLe                 // <=
	OpGt                 // >
	OpGe                 // >=
	OpHas                // :
	OpRegex              // =~
	OpNotRegex           // !~
)

// String returns the operator as written in a filter.
func (o Op) String() string {
	switch o {
	case OpEq:
		return "="
	case OpNe:
		return "!="
	case OpLt:
		return "<"
	case OpLe:
		return "<="
	case OpGt:
		return ">"
	case OpGe:
		return ">="
	case OpHas:
		return ":"
	case OpRegex:
		return "=~"
	case OpNotRegex:
		return "!~"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// FieldKind identifies which LogEntry field a comparison reads.
type FieldKind int

// The fields the evaluator understands. KindUnsupported is a real
// LogEntry field (httpRequest, operation, sourceLocation, protoPayload,
// split, traceSampled, ...) whose values this emulator does not evaluate:
// it is accepted and treated as absent.
const (
	KindResourceType FieldKind = iota
	KindResourceLabel
	KindLabel
	KindLogName
	KindTimestamp
	KindReceiveTimestamp
	KindSeverity
	KindInsertID
	KindTextPayload
	KindTrace
	KindSpanID
	KindJSONPayload
	KindUnsupported
)

// Field is a resolved field path.
type Field struct {
	Kind FieldKind
	// Path holds the segments as written, without quotes.
	Path []string
	// Key is the label key for KindResourceLabel and KindLabel.
	Key string
}

// String returns the path, quoting segments that are not plain names.
func (f Field) String() string {
	var b strings.Builder
	for i, s := range f.Path {
		if i > 0 {
			b.WriteByte('.')
		}
		if plainSegment(s) {
			b.WriteString(s)
		} else {
			writeQuoted(&b, s)
		}
	}
	return b.String()
}

func plainSegment(s string) bool {
	if s == "" || s == "AND" || s == "OR" || s == "NOT" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPathChar(s[i]) {
			return false
		}
	}
	return true
}

// unsupportedTop lists LogEntry fields accepted in filters but not
// evaluated (see KindUnsupported).
var unsupportedTop = map[string]bool{
	"httpRequest": true, "operation": true, "sourceLocation": true, "protoPayload": true,
	"split": true, "traceSampled": true, "errorGroups": true, "apphub": true,
	"apphubDestination": true, "apphubSource": true,
}

func resolveField(path []string) (Field, error) {
	f := Field{Path: path}
	leaf := func(kind FieldKind) (Field, error) {
		if len(path) != 1 {
			return Field{}, fmt.Errorf("field %s has no subfield %q", path[0], path[1])
		}
		f.Kind = kind
		return f, nil
	}
	switch path[0] {
	case "resource":
		switch {
		case len(path) == 2 && path[1] == "type":
			f.Kind = KindResourceType
			return f, nil
		case len(path) >= 3 && path[1] == "labels":
			f.Kind = KindResourceLabel
			f.Key = strings.Join(path[2:], ".")
			return f, nil
		}
		return Field{}, fmt.Errorf("unsupported field %q: use resource.type or resource.labels.KEY", strings.Join(path, "."))
	case "labels":
		if len(path) < 2 {
			return Field{}, fmt.Errorf("field labels needs a key, as in labels.KEY")
		}
		f.Kind = KindLabel
		f.Key = strings.Join(path[1:], ".")
		return f, nil
	case "logName":
		return leaf(KindLogName)
	case "timestamp":
		return leaf(KindTimestamp)
	case "receiveTimestamp":
		return leaf(KindReceiveTimestamp)
	case "severity":
		return leaf(KindSeverity)
	case "insertId":
		return leaf(KindInsertID)
	case "textPayload":
		return leaf(KindTextPayload)
	case "trace":
		return leaf(KindTrace)
	case "spanId":
		return leaf(KindSpanID)
	case "jsonPayload":
		f.Kind = KindJSONPayload
		return f, nil
	}
	if unsupportedTop[path[0]] {
		f.Kind = KindUnsupported
		return f, nil
	}
	return Field{}, fmt.Errorf("unknown field %q: not a LogEntry field", path[0])
}

// Compare is a comparison of a field with a value, or (Present) the test
// "field:*" that the field exists.
type Compare struct {
	Field   Field
	Op      Op
	Value   string
	Present bool

	fold  string
	num   float64
	isNum bool
	t     time.Time
	sev   ltype.LogSeverity
	re    *regexp.Regexp
}

func newCompare(f Field, op Op, v string) (*Compare, error) {
	c := &Compare{Field: f, Op: op, Value: v, fold: strings.ToLower(v)}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		c.num, c.isNum = n, true
	}
	if op == OpRegex || op == OpNotRegex {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression %q: %v", v, err)
		}
		c.re = re
		return c, nil
	}
	switch f.Kind {
	case KindTimestamp, KindReceiveTimestamp:
		if op != OpHas {
			t, err := parseTime(v)
			if err != nil {
				return nil, err
			}
			c.t = t
		}
	case KindSeverity:
		if op != OpHas {
			s, ok := ParseSeverity(v)
			if !ok {
				return nil, fmt.Errorf("%q is not a severity (DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY or a number)", v)
			}
			c.sev = s
		}
	case KindLogName:
		c.fold = LogNameKey(v)
	}
	return c, nil
}

// ParseSeverity accepts a severity name (any case) or its number.
func ParseSeverity(v string) (ltype.LogSeverity, bool) {
	if n, ok := ltype.LogSeverity_value[strings.ToUpper(v)]; ok {
		return ltype.LogSeverity(n), true
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return ltype.LogSeverity(n), true
}

// Fold returns the form in which string values are compared: the query
// language's string comparisons are not case sensitive.
func Fold(s string) string { return strings.ToLower(s) }

// LogNameKey returns the canonical, folded form of a log name used for
// comparisons: the log ID is URL-unescaped, so that
// "projects/p/logs/run.googleapis.com%2Fstdout" (as stored) and
// "projects/p/logs/run.googleapis.com/stdout" (as people write it) are the
// same log.
func LogNameKey(name string) string {
	if i := strings.Index(name, "/logs/"); i >= 0 {
		if id, err := url.PathUnescape(name[i+len("/logs/"):]); err == nil {
			name = name[:i+len("/logs/")] + id
		}
	}
	return strings.ToLower(name)
}

// Match implements Expr.
func (a *And) Match(e *loggingpb.LogEntry) bool {
	for _, t := range a.Terms {
		if !t.Match(e) {
			return false
		}
	}
	return true
}

// Match implements Expr.
func (o *Or) Match(e *loggingpb.LogEntry) bool {
	for _, t := range o.Terms {
		if t.Match(e) {
			return true
		}
	}
	return false
}

// Match implements Expr.
func (n *Not) Match(e *loggingpb.LogEntry) bool { return !n.X.Match(e) }

// Match implements Expr.
func (g *Global) Match(e *loggingpb.LogEntry) bool {
	v := strings.ToLower(g.Value)
	has := func(s string) bool { return strings.Contains(strings.ToLower(s), v) }
	if has(e.GetTextPayload()) || has(e.GetInsertId()) || has(e.GetResource().GetType()) ||
		has(LogNameKey(e.GetLogName())) {
		return true
	}
	for _, s := range e.GetResource().GetLabels() {
		if has(s) {
			return true
		}
	}
	for _, s := range e.GetLabels() {
		if has(s) {
			return true
		}
	}
	return jsonContains(e.GetJsonPayload(), has)
}

func jsonContains(s *structpb.Struct, has func(string) bool) bool {
	for _, v := range s.GetFields() {
		if valueContains(v, has) {
			return true
		}
	}
	return false
}

func valueContains(v *structpb.Value, has func(string) bool) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return has(k.StringValue)
	case *structpb.Value_StructValue:
		return jsonContains(k.StructValue, has)
	case *structpb.Value_ListValue:
		for _, x := range k.ListValue.GetValues() {
			if valueContains(x, has) {
				return true
			}
		}
	}
	return false
}

// Match implements Expr. A comparison on a field the entry does not have
// is false whatever the operator; NOT of it is true.
func (c *Compare) Match(e *loggingpb.LogEntry) bool {
	switch c.Field.Kind {
	case KindTimestamp, KindReceiveTimestamp:
		ts := e.GetTimestamp()
		if c.Field.Kind == KindReceiveTimestamp {
			ts = e.GetReceiveTimestamp()
		}
		if ts == nil {
			return false
		}
		if c.Present {
			return true
		}
		t := ts.AsTime()
		switch c.Op {
		case OpHas, OpRegex, OpNotRegex:
			return c.matchString(t.UTC().Format(time.RFC3339Nano))
		}
		return c.cmpResult(t.Compare(c.t))
	case KindSeverity:
		if c.Present {
			return true
		}
		switch c.Op {
		case OpHas, OpRegex, OpNotRegex:
			return c.matchString(e.GetSeverity().String())
		}
		return c.cmpResult(cmpInt(int64(e.GetSeverity()), int64(c.sev)))
	case KindLogName:
		if e.GetLogName() == "" {
			return false
		}
		if c.Present {
			return true
		}
		if c.Op == OpRegex || c.Op == OpNotRegex {
			return c.matchString(e.GetLogName())
		}
		return c.matchFolded(LogNameKey(e.GetLogName()))
	}
	v, ok := c.value(e)
	if !ok {
		return false
	}
	if c.Present {
		return true
	}
	return c.matchString(v)
}

// value extracts the string value of a string-valued field.
func (c *Compare) value(e *loggingpb.LogEntry) (string, bool) {
	switch c.Field.Kind {
	case KindResourceType:
		return e.GetResource().GetType(), e.GetResource() != nil
	case KindResourceLabel:
		v, ok := e.GetResource().GetLabels()[c.Field.Key]
		return v, ok
	case KindLabel:
		v, ok := e.GetLabels()[c.Field.Key]
		return v, ok
	case KindInsertID:
		return e.GetInsertId(), e.GetInsertId() != ""
	case KindTextPayload:
		p, ok := e.GetPayload().(*loggingpb.LogEntry_TextPayload)
		if !ok {
			return "", false
		}
		return p.TextPayload, true
	case KindTrace:
		return e.GetTrace(), e.GetTrace() != ""
	case KindSpanID:
		return e.GetSpanId(), e.GetSpanId() != ""
	case KindJSONPayload:
		return jsonLeaf(e.GetJsonPayload(), c.Field.Path[1:], c.Present)
	}
	return "", false
}

// jsonLeaf walks a jsonPayload path. Strings, numbers and booleans compare
// by their text; objects and lists only exist (for ":*").
func jsonLeaf(s *structpb.Struct, path []string, presence bool) (string, bool) {
	if s == nil {
		return "", false
	}
	var v *structpb.Value
	for i, seg := range path {
		if s == nil {
			return "", false
		}
		x, ok := s.GetFields()[seg]
		if !ok {
			return "", false
		}
		v = x
		if i < len(path)-1 {
			s = x.GetStructValue()
		}
	}
	if v == nil {
		return "", presence
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64), true
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue), true
	case *structpb.Value_NullValue:
		return "", false
	}
	return "", presence
}

func (c *Compare) matchString(v string) bool {
	switch c.Op {
	case OpRegex:
		return c.re.MatchString(v)
	case OpNotRegex:
		return !c.re.MatchString(v)
	}
	return c.matchFolded(strings.ToLower(v))
}

// matchFolded compares an already folded field value.
func (c *Compare) matchFolded(v string) bool {
	switch c.Op {
	case OpEq:
		return v == c.fold
	case OpNe:
		return v != c.fold
	case OpHas:
		return strings.Contains(v, c.fold)
	}
	if c.isNum {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return c.cmpResult(cmpFloat(n, c.num))
		}
	}
	return c.cmpResult(strings.Compare(v, c.fold))
}

func (c *Compare) cmpResult(r int) bool {
	switch c.Op {
	case OpEq, OpHas:
		return r == 0
	case OpNe:
		return r != 0
	case OpLt:
		return r < 0
	case OpLe:
		return r <= 0
	case OpGt:
		return r > 0
	case OpGe:
		return r >= 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String implements Expr.
func (a *And) String() string { return joinTerms(a.Terms, " AND ") }

// String implements Expr.
func (o *Or) String() string { return joinTerms(o.Terms, " OR ") }

func joinTerms(terms []Expr, sep string) string {
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		writeOperand(&b, t)
	}
	return b.String()
}

func writeOperand(b *strings.Builder, x Expr) {
	switch x.(type) {
	case *And, *Or:
		b.WriteByte('(')
		b.WriteString(x.String())
		b.WriteByte(')')
	default:
		b.WriteString(x.String())
	}
}

// String implements Expr.
func (n *Not) String() string {
	var b strings.Builder
	b.WriteString("NOT ")
	writeOperand(&b, n.X)
	return b.String()
}

// String implements Expr.
func (g *Global) String() string {
	var b strings.Builder
	writeQuoted(&b, g.Value)
	return b.String()
}

// String implements Expr.
func (c *Compare) String() string {
	var b strings.Builder
	b.WriteString(c.Field.String())
	if c.Present {
		b.WriteString(":*")
		return b.String()
	}
	b.WriteString(c.Op.String())
	writeQuoted(&b, c.Value)
	return b.String()
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// Constraint is an equality that every entry matching a filter satisfies:
// the field, named as in the filter ("resource.type", "logName",
// "resource.labels.KEY", "labels.KEY"), has the value Value. Value is in
// folded form (see Fold; LogNameKey for logName).
type Constraint struct {
	Field string
	Value string
}

// Constraints returns the equalities on resource.type, resource labels,
// entry labels and logName that appear as terms of the filter's top-level
// conjunction. A store can look any of them up in an index to find a
// superset of the matching entries; it must still call Match.
func (f *Filter) Constraints() []Constraint {
	var out []Constraint
	for _, t := range f.topTerms() {
		c, ok := t.(*Compare)
		if !ok || c.Op != OpEq || c.Present {
			continue
		}
		switch c.Field.Kind {
		case KindResourceType:
			out = append(out, Constraint{Field: "resource.type", Value: c.fold})
		case KindResourceLabel:
			out = append(out, Constraint{Field: "resource.labels." + c.Field.Key, Value: c.fold})
		case KindLabel:
			out = append(out, Constraint{Field: "labels." + c.Field.Key, Value: c.fold})
		case KindLogName:
			out = append(out, Constraint{Field: "logName", Value: c.fold})
		}
	}
	return out
}

// TimeRange returns inclusive bounds on the timestamp of every matching
// entry, from the top-level conjunction's comparisons on timestamp. A zero
// bound is unbounded.
func (f *Filter) TimeRange() (from, to time.Time) {
	for _, t := range f.topTerms() {
		c, ok := t.(*Compare)
		if !ok || c.Field.Kind != KindTimestamp || c.Present {
			continue
		}
		lower := func(x time.Time) {
			if from.IsZero() || x.After(from) {
				from = x
			}
		}
		upper := func(x time.Time) {
			if to.IsZero() || x.Before(to) {
				to = x
			}
		}
		switch c.Op {
		case OpGt, OpGe:
			lower(c.t)
		case OpLt, OpLe:
			upper(c.t)
		case OpEq:
			lower(c.t)
			upper(c.t)
		}
	}
	return from, to
}

func (f *Filter) topTerms() []Expr {
	switch r := f.root.(type) {
	case nil:
		return nil
	case *And:
		return r.Terms
	default:
		return []Expr{r}
	}
}
