package httpx

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// allowable are the methods an Allow header may name, in the order it names them. HEAD is
// not among them: it is served wherever GET is (chi's middleware.GetHead).
var allowable = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// MethodNotAllowed is the router's answer to a method a known path does not serve: 405
// method_not_allowed with Allow naming the methods it does serve. chi decides this while
// routing, before any route's middleware (authentication included) runs, but hands its
// handler no list of the methods it found, so the handler asks routes again, one method at a
// time. chi also sends here a method it does not know at all, on any path: where no method
// is served, the answer is notFound's.
func MethodNotAllowed(routes chi.Routes, notFound http.Handler) http.Handler {
	return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		path := r.URL.RawPath
		if path == "" {
			path = r.URL.Path
		}
		var allow []string
		for _, m := range allowable {
			if routes.Match(chi.NewRouteContext(), m, path) {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) == 0 {
			notFound.ServeHTTP(w, r)
			return nil
		}
		return withHeader{
			err:   errs.E(errs.MethodNotAllowed, "method_not_allowed", "%s is not served at %s; Allow names the methods that are", methodLabel(r.Method), r.URL.Path),
			name:  "Allow",
			value: strings.Join(allow, ", "),
		}
	})
}

// withHeader is an error that sets one response header.
type withHeader struct {
	err         error
	name, value string
}

func (e withHeader) Error() string            { return e.err.Error() }
func (e withHeader) Unwrap() error            { return e.err }
func (e withHeader) SetHeaders(h http.Header) { h.Set(e.name, e.value) }

// jsonMediaTypes names, for a client, the media types RequireJSON takes.
const jsonMediaTypes = "application/json, application/*+json"

// RequireJSON refuses a POST, PUT or PATCH whose body is not JSON: 415
// unsupported_media_type, unless its media type is application/json or a +json type under
// application/ (parameters such as charset are allowed). A body without a Content-Type is
// refused too (RFC 9110 lets a server take it for application/octet-stream); a request
// without a body needs none. It runs before anything reads the body, so that an idempotency
// record neither hashes nor keeps a request that is not the one its client meant to send.
func RequireJSON(next http.Handler) http.Handler {
	return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			next.ServeHTTP(w, r)
			return nil
		}
		ct := r.Header.Get("Content-Type")
		if isJSON(ct) || !hasBody(r) {
			next.ServeHTTP(w, r)
			return nil
		}
		if ct == "" {
			ct = "none"
		}
		err := errs.E(errs.UnsupportedMediaType, "unsupported_media_type", "the body must be application/json or an application/*+json type, not %s", ct)
		// RFC 9110 15.5.16: the answer names what the method would take.
		switch r.Method {
		case http.MethodPost:
			return withHeader{err: err, name: "Accept-Post", value: jsonMediaTypes}
		case http.MethodPatch:
			return withHeader{err: err, name: "Accept-Patch", value: jsonMediaTypes}
		}
		return err
	})
}

// isJSON reports whether a Content-Type names JSON: application/json or application/*+json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// hasBody reports whether r carries a body. A body of unknown length (chunked) is looked at:
// one byte says, and is put back.
func hasBody(r *http.Request) bool {
	switch {
	case r.ContentLength > 0:
		return true
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		return false
	}
	var b [1]byte
	n, _ := io.ReadFull(r.Body, b[:])
	r.Body = readCloser{io.MultiReader(bytes.NewReader(b[:n]), r.Body), r.Body}
	return n > 0
}

type readCloser struct {
	io.Reader
	io.Closer
}
