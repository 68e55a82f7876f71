package logfilter

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxLength is the longest filter the Logging API accepts, in characters
// (ListLogEntriesRequest.filter: "The maximum length of a filter is 20,000
// characters").
const MaxLength = 20000

// maxDepth bounds the nesting of parentheses and negations so that a
// hostile filter cannot exhaust the stack.
const maxDepth = 100

// ParseError reports a filter the parser rejects. Pos is the byte offset in
// the filter where the problem was found.
type ParseError struct {
	Pos int
	Msg string
}

// Error returns the message with the position, in the one-line form the
// emulator passes to the client in an INVALID_ARGUMENT status.
func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid filter at position %d: %s", e.Pos, e.Msg)
}

// Parse parses a Cloud Logging query. An empty (or all-blank) filter
// matches every entry.
func Parse(filter string) (*Filter, error) {
	if n := utf8.RuneCountInString(filter); n > MaxLength {
		return nil, &ParseError{Pos: 0, Msg: fmt.Sprintf("filter is %d characters long, the maximum is %d", n, MaxLength)}
	}
	p := &parser{src: filter}
	p.skipSpace()
	if p.eof() {
		return &Filter{src: filter}, nil
	}
	root, err := p.parseConj(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.errorf("unexpected %q", p.peekText())
	}
	return &Filter{src: filter, root: root}, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) errorf(format string, args ...any) error {
	return &ParseError{Pos: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		default:
			return
		}
	}
}

// peekText returns a short excerpt of the input at the current position for
// error messages.
func (p *parser) peekText() string {
	rest := p.src[p.pos:]
	if len(rest) > 20 {
		rest = rest[:20]
	}
	return rest
}

// keyword reports whether the upper-case keyword kw starts at the current
// position and ends at a word boundary. Keywords are case sensitive in the
// Logging query language: "and" is a search term, "AND" is the operator.
func (p *parser) keyword(kw string) bool {
	if !strings.HasPrefix(p.src[p.pos:], kw) {
		return false
	}
	end := p.pos + len(kw)
	if end == len(p.src) {
		return true
	}
	switch p.src[end] {
	case ' ', '\t', '\n', '\r', '\f', '\v', '(', ')', '"':
		return true
	}
	return false
}

// parseConj parses a conjunction: disjunctions joined by AND or by
// juxtaposition. AND binds looser than OR in this language.
func (p *parser) parseConj(depth int) (Expr, error) {
	var terms []Expr
	for {
		t, err := p.parseDisj(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		p.skipSpace()
		if p.eof() || p.src[p.pos] == ')' {
			break
		}
		if p.keyword("AND") {
			p.pos += len("AND")
			p.skipSpace()
			if p.eof() || p.src[p.pos] == ')' {
				return nil, p.errorf("AND needs an expression after it")
			}
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &And{Terms: terms}, nil
}

func (p *parser) parseDisj(depth int) (Expr, error) {
	var terms []Expr
	for {
		t, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		p.skipSpace()
		if !p.keyword("OR") {
			break
		}
		p.pos += len("OR")
		p.skipSpace()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &Or{Terms: terms}, nil
}

func (p *parser) parseUnary(depth int) (Expr, error) {
	if depth > maxDepth {
		return nil, p.errorf("expression nested more than %d levels deep", maxDepth)
	}
	p.skipSpace()
	if p.eof() {
		return nil, p.errorf("unexpected end of filter, expected an expression")
	}
	if p.keyword("NOT") {
		p.pos += len("NOT")
		x, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Not{X: x}, nil
	}
	if p.src[p.pos] == '-' {
		p.pos++
		if p.eof() || isSpace(p.src[p.pos]) {
			return nil, p.errorf("'-' must be followed directly by an expression")
		}
		x, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Not{X: x}, nil
	}
	return p.parsePrimary(depth)
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

func (p *parser) parsePrimary(depth int) (Expr, error) {
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '(':
		p.pos++
		p.skipSpace()
		if !p.eof() && p.src[p.pos] == ')' {
			return nil, p.errorf("empty parentheses")
		}
		x, err := p.parseConj(depth + 1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ')' {
			return nil, p.errorf("missing ')' for the '(' at position %d", start)
		}
		p.pos++
		return x, nil
	case c == ')':
		return nil, p.errorf("unexpected ')'")
	case c == '"':
		s, err := p.parseQuoted()
		if err != nil {
			return nil, err
		}
		return &Global{Value: s}, nil
	case p.keyword("AND") || p.keyword("OR"):
		return nil, p.errorf("operator %s needs an expression before it", p.peekWord())
	}
	path, err := p.parsePath()
	if err != nil {
		return nil, err
	}
	end := p.pos
	if !p.eof() && p.src[p.pos] == '(' {
		return nil, &ParseError{Pos: start, Msg: fmt.Sprintf("function %s(...) is not supported", p.src[start:end])}
	}
	p.skipSpace()
	op, ok := p.parseOp()
	if !ok {
		// A word that is not compared with anything is a global
		// restriction, searched for in every field.
		return &Global{Value: p.src[start:end]}, nil
	}
	f, err := resolveField(path)
	if err != nil {
		return nil, &ParseError{Pos: start, Msg: err.Error()}
	}
	p.skipSpace()
	return p.parseRHS(f, op, depth)
}

func (p *parser) peekWord() string {
	end := p.pos
	for end < len(p.src) && !isSpace(p.src[end]) && p.src[end] != '(' && p.src[end] != ')' {
		end++
	}
	return p.src[p.pos:end]
}

// isPathChar reports whether c may appear in an unquoted path segment.
func isPathChar(c byte) bool {
	return c == '_' || c == '-' || c == '/' || c == '@' ||
		('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
		c >= utf8.RuneSelf
}

// parsePath parses a field path: segments separated by '.', each an
// unquoted name or a quoted string.
func (p *parser) parsePath() ([]string, error) {
	var segs []string
	for {
		if p.eof() {
			return nil, p.errorf("unexpected end of filter in a field name")
		}
		if p.src[p.pos] == '"' {
			s, err := p.parseQuoted()
			if err != nil {
				return nil, err
			}
			segs = append(segs, s)
		} else {
			start := p.pos
			for !p.eof() && isPathChar(p.src[p.pos]) {
				p.pos++
			}
			if p.pos == start {
				return nil, p.errorf("unexpected %q, expected a field name or value", p.peekText())
			}
			segs = append(segs, p.src[start:p.pos])
		}
		if p.eof() || p.src[p.pos] != '.' {
			return segs, nil
		}
		p.pos++
	}
}

func (p *parser) parseOp() (Op, bool) {
	rest := p.src[p.pos:]
	for _, cand := range []struct {
		text string
		op   Op
	}{
		{"<=", OpLe}, {">=", OpGe}, {"!=", OpNe}, {"=~", OpRegex}, {"!~", OpNotRegex},
		{"=", OpEq}, {"<", OpLt}, {">", OpGt}, {":", OpHas},
	} {
		if strings.HasPrefix(rest, cand.text) {
			p.pos += len(cand.text)
			return cand.op, true
		}
	}
	return 0, false
}

// parseRHS parses what follows a comparison operator: a value, the
// presence test "*" after ':', or a parenthesised list of values joined by
// OR, AND or juxtaposition, which is shorthand for the same comparison on
// each value.
func (p *parser) parseRHS(f Field, op Op, depth int) (Expr, error) {
	if p.eof() {
		return nil, p.errorf("missing value after %s", op)
	}
	if op == OpHas && p.src[p.pos] == '*' && (p.pos+1 == len(p.src) || isSpace(p.src[p.pos+1]) || p.src[p.pos+1] == ')') {
		p.pos++
		return &Compare{Field: f, Op: OpHas, Present: true}, nil
	}
	if p.src[p.pos] == '(' {
		if depth > maxDepth {
			return nil, p.errorf("expression nested more than %d levels deep", maxDepth)
		}
		open := p.pos
		p.pos++
		x, err := p.parseValueConj(f, op, depth+1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ')' {
			return nil, p.errorf("missing ')' for the '(' at position %d", open)
		}
		p.pos++
		return x, nil
	}
	return p.parseValue(f, op)
}

func (p *parser) parseValueConj(f Field, op Op, depth int) (Expr, error) {
	var terms []Expr
	for {
		var alts []Expr
		for {
			p.skipSpace()
			if p.eof() || p.src[p.pos] == ')' {
				return nil, p.errorf("expected a value")
			}
			v, err := p.parseRHS(f, op, depth)
			if err != nil {
				return nil, err
			}
			alts = append(alts, v)
			p.skipSpace()
			if !p.keyword("OR") {
				break
			}
			p.pos += len("OR")
		}
		if len(alts) == 1 {
			terms = append(terms, alts[0])
		} else {
			terms = append(terms, &Or{Terms: alts})
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] == ')' {
			break
		}
		if p.keyword("AND") {
			p.pos += len("AND")
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &And{Terms: terms}, nil
}

// parseValue parses one value: a quoted string, or a bare word that runs
// to the next blank or parenthesis (so unquoted timestamps with ':' work).
func (p *parser) parseValue(f Field, op Op) (Expr, error) {
	start := p.pos
	var v string
	if p.src[p.pos] == '"' {
		s, err := p.parseQuoted()
		if err != nil {
			return nil, err
		}
		v = s
	} else {
		for !p.eof() && !isSpace(p.src[p.pos]) && p.src[p.pos] != '(' && p.src[p.pos] != ')' && p.src[p.pos] != '"' {
			p.pos++
		}
		v = p.src[start:p.pos]
		if v == "" {
			return nil, p.errorf("missing value after %s", op)
		}
		if v == "AND" || v == "OR" || v == "NOT" {
			return nil, &ParseError{Pos: start, Msg: fmt.Sprintf("missing value after %s (found operator %s)", op, v)}
		}
	}
	c, err := newCompare(f, op, v)
	if err != nil {
		return nil, &ParseError{Pos: start, Msg: err.Error()}
	}
	return c, nil
}

// parseQuoted parses a double-quoted string. A backslash escapes the next
// character; \n, \t, \r, \\, \" and \uXXXX have their usual meanings.
func (p *parser) parseQuoted() (string, error) {
	open := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.eof() {
			return "", &ParseError{Pos: open, Msg: "unterminated quoted string"}
		}
		c := p.src[p.pos]
		switch c {
		case '"':
			p.pos++
			return b.String(), nil
		case '\\':
			if p.pos+1 >= len(p.src) {
				return "", &ParseError{Pos: open, Msg: "unterminated quoted string"}
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'u':
				if p.pos+4 > len(p.src) {
					return "", p.errorf("\\u needs four hexadecimal digits")
				}
				n, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
				if err != nil {
					return "", p.errorf("\\u needs four hexadecimal digits")
				}
				b.WriteRune(rune(n))
				p.pos += 4
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// parseTime accepts the timestamp forms of the query language: RFC 3339
// with or without fractional seconds.
func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp", v)
	}
	return t, nil
}
