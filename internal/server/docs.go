package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// embeddedFile serves a file compiled into the binary (the reference page and its Redoc
// bundle) with an ETag of its content, so a browser revalidates the 1 MB bundle with a 304
// rather than fetching it again, and a new binary's file is never served from a stale cache.
// A client that accepts gzip gets it compressed (a quarter of the size). The hash and the
// compressed copy are made once, on the first request, not when routes are built.
func embeddedFile(contentType string, content func() []byte) http.HandlerFunc {
	type file struct {
		body, gzipped []byte
		tag           string
	}
	load := sync.OnceValue(func() file {
		body := content()
		sum := sha256.Sum256(body)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body) // a bytes.Buffer does not fail
		zw.Close()
		return file{body: body, gzipped: buf.Bytes(), tag: hex.EncodeToString(sum[:12])}
	})
	return func(w http.ResponseWriter, r *http.Request) {
		f := load()
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		content, etag := f.body, `"`+f.tag+`"`
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			content, etag = f.gzipped, `"`+f.tag+`-gzip"`
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	}
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip: named (or *) without
// q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return !(q == "q=0" || strings.HasPrefix(q, "q=0.") && strings.Trim(q[4:], "0") == "")
	}
	return false
}
