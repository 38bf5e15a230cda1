// Package jsonscan finds a top-level field of a JSON object, or the
// elements of a JSON array, in one pass that also validates the whole
// document, without decoding it into Go values: it returns slices of the
// input and allocates nothing. It accepts what encoding/json's Valid
// accepts (the fuzz test holds it to that), and is about three times as
// fast inside WebAssembly as encoding/json's scanner, which makes a
// function call per byte.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of Field and Elements. They read as the end of a sentence
// ("record value is not a JSON object").
var (
	ErrNotJSON   = errors.New("not valid JSON")
	ErrNotObject = errors.New("not a JSON object")
	ErrNotArray  = errors.New("not a JSON array")
)

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// Field returns the raw JSON text of the top-level field name of the JSON
// object doc (a string keeps its quotes; of repeated names, the last), and
// whether the object has it. It returns an error wrapping ErrNotJSON or
// ErrNotObject for other input.
func Field(doc []byte, name string) (raw []byte, found bool, err error) {
	p := parser{b: doc}
	p.space()
	if p.peek() != '{' {
		return nil, false, p.notKind(ErrNotObject)
	}
	p.i++
	p.space()
	if p.peek() == '}' {
		p.i++
		return nil, false, p.end()
	}
	for {
		p.space()
		start := p.i
		if p.peek() != '"' || !p.str() {
			return nil, false, p.invalid()
		}
		key := doc[start:p.i]
		p.space()
		if p.peek() != ':' {
			return nil, false, p.invalid()
		}
		p.i++
		p.space()
		start = p.i
		if !p.value() {
			return nil, false, p.invalid()
		}
		if keyEquals(key, name) {
			raw, found = doc[start:p.i], true
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
			if err := p.end(); err != nil {
				return nil, false, err
			}
			return raw, found, nil
		}
		return nil, false, p.invalid()
	}
}

// Elements calls fn with the raw JSON text of each element of the JSON
// array doc, in order, after checking that all of doc is valid JSON. It
// returns an error wrapping ErrNotJSON or ErrNotArray for other input, or
// fn's first error.
func Elements(doc []byte, fn func(raw []byte) error) error {
	p := parser{b: doc}
	if !p.value() || p.end() != nil {
		return p.invalid()
	}
	p = parser{b: doc}
	p.space()
	if p.peek() != '[' {
		return ErrNotArray
	}
	p.i++
	for {
		p.space()
		if p.peek() == ']' {
			return nil
		}
		start := p.i
		p.value()
		if err := fn(doc[start:p.i]); err != nil {
			return err
		}
		p.space()
		if p.peek() == ',' {
			p.i++
		}
	}
}

// String returns the text of a raw JSON string (without its quotes, escapes
// decoded) and true, or false when raw is not a string.
func String(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// keyEquals reports whether the raw JSON string raw is name.
func keyEquals(raw []byte, name string) bool {
	inner := raw[1 : len(raw)-1]
	if len(inner) < len(name) {
		return false // escapes only make the raw text longer
	}
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	s, ok := String(raw)
	return ok && string(s) == name
}

// parser validates JSON text; each method advances i past what it accepts
// and reports whether it did.
type parser struct {
	b     []byte
	i     int
	depth int
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) space() {
	b, i := p.b, p.i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	p.i = i
}

// end accepts trailing white space and nothing else.
func (p *parser) end() error {
	p.space()
	if p.i != len(p.b) {
		return p.invalid()
	}
	return nil
}

// invalid describes where the text stopped being JSON.
func (p *parser) invalid() error {
	if p.i >= len(p.b) {
		return fmt.Errorf("%w (unexpected end after %d bytes)", ErrNotJSON, len(p.b))
	}
	return fmt.Errorf("%w (unexpected %q at byte %d)", ErrNotJSON, p.b[p.i], p.i)
}

// notKind returns kind when the document is valid JSON of another type,
// and a description of what is wrong when it is not JSON at all.
func (p *parser) notKind(kind error) error {
	p.i = 0
	if !p.value() {
		return p.invalid()
	}
	if err := p.end(); err != nil {
		return err
	}
	return kind
}

func (p *parser) value() bool {
	p.space()
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '{':
		return p.container('}', true)
	case c == '[':
		return p.container(']', false)
	case c == '-' || '0' <= c && c <= '9':
		return p.num()
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	}
	return false
}

// container accepts an object (members) or an array starting at p.i.
func (p *parser) container(closing byte, members bool) bool {
	if p.depth++; p.depth > maxDepth {
		return false
	}
	p.i++
	p.space()
	if p.peek() == closing {
		p.i++
		p.depth--
		return true
	}
	for {
		if members {
			p.space()
			if p.peek() != '"' || !p.str() {
				return false
			}
			p.space()
			if p.peek() != ':' {
				return false
			}
			p.i++
		}
		if !p.value() {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case closing:
			p.i++
			p.depth--
			return true
		default:
			return false
		}
	}
}

func (p *parser) str() bool {
	// Locals rather than p.b and p.i, so that the loop does not load and
	// store through p for every byte.
	b, i := p.b, p.i+1 // past the opening quote
	for i < len(b) {
		c := b[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		switch {
		case c == '"':
			p.i = i + 1
			return true
		case c < 0x20:
			p.i = i
			return false
		}
		// A backslash.
		if i+1 >= len(b) {
			p.i = i
			return false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				p.i = i
				return false
			}
			for _, h := range b[i+2 : i+6] {
				if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
					p.i = i
					return false
				}
			}
			i += 6
		default:
			p.i = i
			return false
		}
	}
	p.i = i
	return false
}

func (p *parser) digits() bool {
	b, i := p.b, p.i
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	start := p.i
	p.i = i
	return i > start
}

func (p *parser) num() bool {
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case '1' <= c && c <= '9':
		p.digits()
	default:
		return false
	}
	if p.peek() == '.' {
		p.i++
		if !p.digits() {
			return false
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}
