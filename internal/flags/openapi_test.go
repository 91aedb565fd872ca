package flags

import (
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/saasbase/saasbase/openapi/openapitest"
)

// mergedSpec is openapi/openapi.yaml, loaded and validated.
func mergedSpec(t testing.TB) (*openapi3.T, routers.Router) { return openapitest.Load(t) }

// validateResponse checks an answer against openapi.yaml.
func validateResponse(t testing.TB, router routers.Router, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	openapitest.Check(t, router, req, reqBody, status, header, body)
}

// Every route the flag handlers mount (their Routes and OFREPRoutes, through testRouter) is
// described in openapi.yaml.
func TestSpecDescribesEveryFlagRoute(t *testing.T) {
	spec, _ := mergedSpec(t)
	for _, route := range routesOf(t, testRouter(&Handler{Client: &Client{}}, &AdminHandler{}, nil)) {
		method, path, _ := strings.Cut(route, " ")
		if spec.Paths.Value(path).GetOperation(method) == nil {
			t.Errorf("%s is not described in openapi.yaml", route)
		}
	}
}
