package ratelimit_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// sfItem is a member of a structured-field List (RFC 9651, section 3.1) whose value is a
// string or a token, with its parameters (integers, strings, tokens, booleans).
type sfItem struct {
	name   string
	params map[string]any
}

// parseList parses a structured-field List of bare items and their parameters: enough of
// RFC 9651 for the RateLimit fields, strict where it parses, so that a malformed field fails
// the test rather than matching by accident. Inner lists, decimals and byte sequences are
// refused.
func parseList(t *testing.T, field string) []sfItem {
	t.Helper()
	p := sfParser{s: field}
	list, err := p.list()
	if err != nil {
		t.Fatalf("structured field %q: %v", field, err)
	}
	return list
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) list() ([]sfItem, error) {
	var out []sfItem
	p.skip(" ")
	for p.i < len(p.s) {
		name, err := p.bare()
		if err != nil {
			return nil, err
		}
		s, ok := name.(string)
		if !ok {
			return nil, fmt.Errorf("at %d: member %v is neither a string nor a token", p.i, name)
		}
		it := sfItem{name: s, params: map[string]any{}}
		for p.i < len(p.s) && p.s[p.i] == ';' {
			p.i++
			p.skip(" ")
			key := p.key()
			if key == "" {
				return nil, fmt.Errorf("at %d: want a parameter key", p.i)
			}
			if _, dup := it.params[key]; dup {
				return nil, fmt.Errorf("parameter %q twice", key)
			}
			it.params[key] = true
			if p.i < len(p.s) && p.s[p.i] == '=' {
				p.i++
				if it.params[key], err = p.bare(); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, it)
		p.skip(" \t")
		if p.i == len(p.s) {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("at %d: want a comma", p.i)
		}
		p.i++
		p.skip(" \t")
		if p.i == len(p.s) {
			return nil, fmt.Errorf("trailing comma")
		}
	}
	return out, nil
}

func (p *sfParser) skip(set string) {
	for p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *sfParser) key() string {
	j := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.i > j && strings.IndexByte("0123456789_-.*", p.s[p.i]) >= 0 || p.i == j && p.s[p.i] == '*') {
		p.i++
	}
	return p.s[j:p.i]
}

// bare parses an integer (int64), a string or a token (string), or a boolean.
func (p *sfParser) bare() (any, error) {
	if p.i == len(p.s) {
		return nil, fmt.Errorf("want an item at the end")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			switch c := p.s[p.i]; {
			case c == '"':
				p.i++
				return b.String(), nil
			case c == '\\' && p.i+1 < len(p.s) && (p.s[p.i+1] == '"' || p.s[p.i+1] == '\\'):
				p.i++
				b.WriteByte(p.s[p.i])
			case c < 0x20 || c > 0x7e || c == '\\':
				return nil, fmt.Errorf("at %d: bad byte in a string", p.i)
			default:
				b.WriteByte(c)
			}
		}
		return nil, fmt.Errorf("unterminated string")
	case c == '-' || '0' <= c && c <= '9':
		j := p.i
		p.i++
		for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i < len(p.s) && p.s[p.i] == '.' {
			return nil, fmt.Errorf("at %d: decimals are not expected", p.i)
		}
		return strconv.ParseInt(p.s[j:p.i], 10, 64)
	case c == '?' && p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1'):
		p.i += 2
		return p.s[p.i-1] == '1', nil
	case c == '*' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		j := p.i
		for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return p.s[j:p.i], nil
	}
	return nil, fmt.Errorf("at %d: unexpected %q", p.i, p.s[p.i])
}

func isTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// TestParseList holds the test parser to the RFC's examples it must take and refuse.
func TestParseList(t *testing.T) {
	got := parseList(t, `"tenant";q=5;w=5, "tenant.concurrency";q=1;qu="concurrent-requests", tok;a;b=?0`)
	if len(got) != 3 || got[0].name != "tenant" || got[0].params["q"] != int64(5) ||
		got[1].params["qu"] != "concurrent-requests" || got[2].name != "tok" || got[2].params["a"] != true || got[2].params["b"] != false {
		t.Fatalf("parsed %+v", got)
	}
	for _, bad := range []string{`"a",`, `"a" "b"`, `"a";q=1.5`, `"a`, `"a";Q=1`, `"a";q=1;q=2`, `("a")`} {
		p := sfParser{s: bad}
		if _, err := p.list(); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
