package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
	"github.com/saasbase/saasbase/openapi"
)

// TestDocsServed: GET /docs is the reference page, which loads its script from the service
// itself, and the 1 MB script is revalidated with a 304 rather than sent again. (The page is
// rendered in a browser by cmd/api's TestDocsPageInBrowser.)
func TestDocsServed(t *testing.T) {
	s := servertest.New(t)
	page := s.Do(t, servertest.Request{Method: "GET", Path: "/docs"})
	if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", page.Status, page.Header.Get("Content-Type"))
	}
	for _, want := range []string{`spec-url="openapi.yaml"`, `src="docs/redoc.standalone.js"`} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("GET /docs: the page has no %s", want)
		}
	}
	if strings.Contains(string(page.Body), "://") {
		t.Errorf("GET /docs: the page names another origin:\n%s", page.Body)
	}

	script := s.Do(t, servertest.Request{Method: "GET", Path: "/docs/redoc.standalone.js"})
	if script.Status != http.StatusOK || !bytes.Equal(script.Body, openapi.Redoc()) {
		t.Fatalf("GET /docs/redoc.standalone.js: %d, %d bytes (embedded: %d)", script.Status, len(script.Body), len(openapi.Redoc()))
	}
	if bytes.Contains(script.Body, []byte("cdn.redoc.ly")) {
		t.Error("GET /docs/redoc.standalone.js: the script still loads its logo from Redocly's CDN")
	}
	etag := script.Header.Get("ETag")
	again := s.Do(t, servertest.Request{Method: "GET", Path: "/docs/redoc.standalone.js", Header: map[string]string{"If-None-Match": etag}})
	if again.Status != http.StatusNotModified || len(again.Body) != 0 {
		t.Errorf("GET /docs/redoc.standalone.js with If-None-Match %s: %d, %d bytes; want 304 and no body", etag, again.Status, len(again.Body))
	}
	if page.Header.Get("ETag") == etag {
		t.Error("the page and the script have one ETag")
	}

	// Compressed for a client that takes gzip, as it is for a browser; not for one that
	// refuses it.
	zipped := s.Do(t, servertest.Request{Method: "GET", Path: "/docs/redoc.standalone.js", Header: map[string]string{"Accept-Encoding": "gzip, deflate, br"}})
	if zipped.Header.Get("Content-Encoding") != "gzip" || len(zipped.Body) > len(openapi.Redoc())/2 {
		t.Fatalf("GET /docs/redoc.standalone.js accepting gzip: Content-Encoding %q, %d bytes", zipped.Header.Get("Content-Encoding"), len(zipped.Body))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped.Body))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, openapi.Redoc()) {
		t.Errorf("the gzipped script does not unzip to the script: %v", err)
	}
	plain := s.Do(t, servertest.Request{Method: "GET", Path: "/docs/redoc.standalone.js", Header: map[string]string{"Accept-Encoding": "gzip;q=0, identity"}})
	if plain.Header.Get("Content-Encoding") != "" || !bytes.Equal(plain.Body, openapi.Redoc()) {
		t.Errorf("GET /docs/redoc.standalone.js refusing gzip: Content-Encoding %q, %d bytes", plain.Header.Get("Content-Encoding"), len(plain.Body))
	}
}
