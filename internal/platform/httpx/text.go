package httpx

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Text that PostgreSQL cannot store is refused at the edge, where the client can be told which
// field is at fault: text and jsonb hold neither NUL nor bytes that are not UTF-8 (jsonb not
// even as \u0000), and jsonb refuses a surrogate escape without its pair. Let through, such a
// string fails deep in a query as a 500, or is silently changed to U+FFFD by encoding/json.

const (
	msgNUL       = `must not contain NUL (\u0000)`
	msgUTF8      = "must be valid UTF-8"
	msgSurrogate = `must not contain an unpaired surrogate escape (\uD800 to \uDFFF)`
)

// CheckText refuses s, as the named field, if it holds NUL or is not valid UTF-8: for a value
// that reaches the database without going through a JSON body (a header, say).
func CheckText(field, s string) error {
	if msg := textProblem(s); msg != "" {
		return errs.Field(field, msg)
	}
	return nil
}

// textProblem says what keeps s out of PostgreSQL's text, or answers "".
func textProblem(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return msgNUL
	case !utf8.ValidString(s):
		return msgUTF8
	}
	return ""
}

// CheckStrings refuses the JSON document raw if any of its strings, member names included,
// holds NUL (\u0000), bytes that are not UTF-8 or an unpaired surrogate escape. The error is
// a validation error naming the string's path: `tenant_name`, `items[2].name`, `[0].data`
// in a top-level array, `body` for the document itself; a bad member name is reported on
// the object that holds it. It checks nothing else: malformed JSON is the decoder's to report.
// Decode and DecodeBytes call it; a handler that parses a body itself should too.
func CheckStrings(raw []byte) error {
	// Nearly every body is valid UTF-8 without a suspect escape: two fast passes, no parsing.
	if utf8.Valid(raw) && !suspectEscape(raw) {
		return nil
	}
	return scanStrings(raw)
}

// suspectEscape reports whether raw holds an escape that may be \u0000 or a surrogate. It may
// be fooled by an escaped backslash followed by "u0000", never the other way.
func suspectEscape(raw []byte) bool {
	for {
		i := bytes.Index(raw, []byte(`\u`))
		if i < 0 || len(raw) < i+6 {
			return false
		}
		hex := raw[i+2 : i+6]
		nul := string(hex) == "0000"
		surrogate := (hex[0] == 'd' || hex[0] == 'D') && strings.IndexByte("89abcdefABCDEF", hex[1]) >= 0
		if nul || surrogate {
			return true
		}
		raw = raw[i+2:]
	}
}

// textFrame is an open object or array while scanning: its current element, or the raw
// (quoted) name of its current member.
type textFrame struct {
	array     bool
	index     int
	name      []byte
	expectKey bool
}

// scanStrings walks raw as JSON, without building anything, to find the first bad string and
// its path. It tolerates malformed JSON, reporting only what it met before the JSON broke.
func scanStrings(raw []byte) error {
	var frames [16]textFrame // deep enough for any body of ours without allocating
	stack := frames[:0]
	for i := 0; i < len(raw); {
		switch raw[i] {
		case '{':
			stack = append(stack, textFrame{expectKey: true})
		case '[':
			stack = append(stack, textFrame{array: true})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 {
				if top := &stack[n-1]; top.array {
					top.index++
				} else {
					top.expectKey = true
				}
			}
		case ':':
			if n := len(stack); n > 0 {
				stack[n-1].expectKey = false
			}
		case '"':
			end, msg := scanString(raw, i)
			if end < 0 {
				return nil
			}
			isName := len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].expectKey
			switch {
			case msg != "" && isName:
				return errs.Field(textPath(stack[:len(stack)-1]), "member names "+msg)
			case msg != "":
				return errs.Field(textPath(stack), msg)
			case isName:
				stack[len(stack)-1].name = raw[i:end]
			}
			i = end
			continue
		}
		i++
	}
	return nil
}

// scanString reads the string that starts with the quote at raw[start], and answers the
// index just past its closing quote (-1 if it does not end) and what is wrong with it, if
// anything.
func scanString(raw []byte, start int) (end int, problem string) {
	for i := start + 1; i < len(raw); {
		switch c := raw[i]; {
		case c == '"':
			return i + 1, ""
		case c == '\\':
			var u rune
			ok := i+1 < len(raw) && raw[i+1] == 'u'
			if ok {
				u, ok = hex4(raw, i+2)
			}
			if !ok {
				i += 2 // a one-character escape, or a malformed one for the decoder to report
				continue
			}
			switch {
			case u == 0:
				return i, msgNUL
			case u >= 0xDC00 && u <= 0xDFFF:
				return i, msgSurrogate
			case u >= 0xD800 && u <= 0xDBFF:
				if lo, ok := hex4(raw, i+8); !ok || raw[i+6] != '\\' || raw[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
					return i, msgSurrogate
				}
				i += 6
			}
			i += 6
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return i, msgUTF8
			}
			i += size
		}
	}
	return -1, ""
}

// hex4 reads the four hex digits at raw[i:i+4].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var n rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | rune(c)
	}
	return n, true
}

// textPath names the position the stack describes, as the service names fields.
func textPath(stack []textFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.array {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		var name string
		json.Unmarshal(f.name, &name) // checked already: a valid string
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(name)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// CheckURL refuses a request whose path or query holds NUL or invalid UTF-8 once decoded,
// before any handler, middleware or idempotency record can carry it to the database: a 400
// naming the path parameter (as routes would match it), the query parameter, or else `path`
// or `query`.
func CheckURL(routes chi.Routes) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if msg := textProblem(r.URL.Path); msg != "" {
				return errs.Field(pathParam(routes, r), msg)
			}
			if err := checkQuery(r.URL.RawQuery); err != nil {
				return err
			}
			next.ServeHTTP(w, r)
			return nil
		})
	}
}

// pathParam names the path parameter that holds bad text, or answers "path".
func pathParam(routes chi.Routes, r *http.Request) string {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	rctx := chi.NewRouteContext()
	if routes.Match(rctx, r.Method, path) {
		for i, name := range rctx.URLParams.Keys {
			if name != "*" && textProblem(rctx.URLParams.Values[i]) != "" {
				return name
			}
		}
	}
	return "path"
}

// checkQuery refuses a query that holds NUL or invalid UTF-8, naming the parameter.
func checkQuery(raw string) error {
	// A query without escapes is what the client's bytes are: no parsing needed.
	if strings.IndexByte(raw, '%') < 0 && textProblem(raw) == "" {
		return nil
	}
	values, _ := url.ParseQuery(raw) // pairs that do not parse are dropped, here as in handlers
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if msg := textProblem(name); msg != "" {
			return errs.Field("query", "parameter names "+msg)
		}
		for _, v := range values[name] {
			if msg := textProblem(v); msg != "" {
				return errs.Field(name, msg)
			}
		}
	}
	return nil
}
