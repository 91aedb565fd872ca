// Package openapitest checks HTTP answers against openapi.yaml, for every package's tests:
// the spec is the contract, so every answer a test sees must be one it describes.
package openapitest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/saasbase/saasbase/openapi"
)

// The reference page (GET /docs) and its script are text the description types as strings.
func init() {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.PlainBodyDecoder)
}

// Load loads and validates openapi.yaml and answers it with a router over its operations.
func Load(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return spec, router
}

// Check reports, as a test error, an answer that the operation of req does not describe: its
// status must be documented, and its headers and body must match the schema. reqBody is the
// body req was sent with.
func Check(t testing.TB, router routers.Router, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not described in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, status, err, body)
	}
}
