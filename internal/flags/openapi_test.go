package flags

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/saasbase/saasbase/openapi"
)

// mergedSpec is openapi/openapi.yaml, loaded and validated.
func mergedSpec(t testing.TB) (*openapi3.T, routers.Router) {
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

// validateResponse checks an answer against the operation the merged spec describes: its
// status must be documented, and its headers and body must match.
func validateResponse(t testing.TB, router routers.Router, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not described by the spec: %v", req.Method, req.URL.Path, err)
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
		t.Errorf("%s %s → %d does not match the spec: %v\nbody: %s", req.Method, req.URL.Path, status, err, body)
	}
}

// Every route of the flag handlers (testRouter mirrors the server's wiring) is described in
// openapi.yaml.
func TestSpecDescribesEveryFlagRoute(t *testing.T) {
	spec, _ := mergedSpec(t)
	for _, route := range routesOf(t, testRouter(&Handler{Client: &Client{}}, &AdminHandler{}, nil)) {
		method, path, _ := strings.Cut(route, " ")
		if spec.Paths.Value(path).GetOperation(method) == nil {
			t.Errorf("%s is not described in openapi.yaml", route)
		}
	}
}
