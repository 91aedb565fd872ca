package metering

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// badText answers the path of the first string in a JSON document, key or value, that
// PostgreSQL cannot store as text: one holding NUL (raw or "\u0000"), bytes that are not
// UTF-8, or a lone surrogate escape ("\ud800"). encoding/json would let each through,
// replacing the last two with U+FFFD, so an event's id could be silently changed or its
// insert fail. doc must be valid JSON; fields are named as in problem details ("data.tags[1]").
//
// A local check for now: a shared one for every request body is coming to platform/httpx.
func badText(doc []byte) (field string, bad bool) {
	sc := textScanner{doc: doc}
	sc.value("")
	return sc.field, sc.bad
}

type textScanner struct {
	doc   []byte
	i     int
	field string
	bad   bool
}

func (sc *textScanner) value(path string) {
	sc.space()
	if sc.i >= len(sc.doc) {
		return
	}
	switch sc.doc[sc.i] {
	case '{':
		sc.i++
		for !sc.bad && sc.next('}') {
			key, ok := sc.str()
			field := join(path, key)
			if !ok {
				sc.field, sc.bad = field, true
				return
			}
			sc.space()
			sc.i++ // ':'
			sc.value(field)
		}
	case '[':
		sc.i++
		for n := 0; !sc.bad && sc.next(']'); n++ {
			sc.value(path + "[" + strconv.Itoa(n) + "]")
		}
	case '"':
		if _, ok := sc.str(); !ok {
			sc.field, sc.bad = path, true
		}
	default: // a number, true, false or null; at least one byte, so a loop always advances
		sc.i++
		for sc.i < len(sc.doc) && strings.IndexByte(",]} \t\r\n", sc.doc[sc.i]) < 0 {
			sc.i++
		}
	}
}

// next skips a separating comma and answers whether another member or element follows
// before end, which it consumes.
func (sc *textScanner) next(end byte) bool {
	sc.space()
	if sc.i < len(sc.doc) && sc.doc[sc.i] == ',' {
		sc.i++
		sc.space()
	}
	if sc.i >= len(sc.doc) || sc.doc[sc.i] == end {
		sc.i++
		return false
	}
	return true
}

func (sc *textScanner) space() {
	for sc.i < len(sc.doc) && strings.IndexByte(" \t\r\n", sc.doc[sc.i]) >= 0 {
		sc.i++
	}
}

// str reads the string literal at sc.i and answers it decoded (for naming a key) and whether
// it is text. An invalid sequence decodes as U+FFFD, and NUL too, so a field's name is text.
func (sc *textScanner) str() (string, bool) {
	var b strings.Builder
	ok := true
	sc.i++ // the opening quote
	for sc.i < len(sc.doc) {
		c := sc.doc[sc.i]
		switch {
		case c == '"':
			sc.i++
			return b.String(), ok
		case c == '\\' && sc.i+1 < len(sc.doc) && sc.doc[sc.i+1] == 'u':
			r, n := sc.escape(sc.i)
			if utf16.IsSurrogate(r) {
				// A high surrogate must be followed by a low one: together they are one rune.
				if low, m := sc.escape(sc.i + n); m > 0 {
					if pair := utf16.DecodeRune(r, low); pair != utf8.RuneError {
						r, n = pair, n+m
					}
				}
			}
			if r == 0 || utf16.IsSurrogate(r) || n == 0 {
				r, ok = utf8.RuneError, false
			}
			b.WriteRune(r)
			sc.i += max(n, 2)
		case c == '\\':
			if sc.i+1 < len(sc.doc) {
				b.WriteByte(unescape(sc.doc[sc.i+1]))
			}
			sc.i += 2
		case c == 0:
			b.WriteRune(utf8.RuneError)
			ok = false
			sc.i++
		default:
			r, n := utf8.DecodeRune(sc.doc[sc.i:])
			if r == utf8.RuneError && n == 1 {
				ok = false
			}
			b.WriteRune(r)
			sc.i += n
		}
	}
	return b.String(), ok
}

// escape reads a \uXXXX escape at i: its code unit and length (6), or 0 if there is none.
func (sc *textScanner) escape(i int) (rune, int) {
	if i+6 > len(sc.doc) || sc.doc[i] != '\\' || sc.doc[i+1] != 'u' {
		return 0, 0
	}
	v, err := strconv.ParseUint(string(sc.doc[i+2:i+6]), 16, 16)
	if err != nil {
		return 0, 0
	}
	return rune(v), 6
}

func unescape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\' and '/'
}

// join names a member of the object at path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
