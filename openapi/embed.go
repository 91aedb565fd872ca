// Package openapi holds the hand-written OpenAPI 3.1 description of the public REST API.
//
// The server serves Spec at GET /openapi.yaml, and the HTTP tests validate every response
// against it, which keeps the description and the handlers in step. GET /docs renders it
// with Redoc, vendored in docs/ (docs/README.md).
package openapi

import (
	"bytes"
	_ "embed"
	"sync"
)

// Spec is the OpenAPI 3.1 document (openapi.yaml), in YAML.
//
//go:embed openapi.yaml
var Spec []byte

// DocsPage is the HTML page of GET /docs: Redoc over /openapi.yaml.
//
//go:embed docs/index.html
var DocsPage []byte

//go:embed docs/redoc.standalone.js
var redocBundle []byte

// redocLogo is the one thing the bundle fetches from elsewhere: the logo of its "API docs by
// Redocly" link, from Redocly's CDN, always requested. The page is offline: an empty image
// stands in for it.
const redocLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg"

// Redoc answers Redoc's standalone bundle, which DocsPage loads from
// /docs/redoc.standalone.js, with redocLogo replaced. The 1.1 MB copy is made on first use,
// not when a process that never serves /docs starts.
var Redoc = sync.OnceValue(func() []byte {
	return bytes.Replace(redocBundle, []byte(redocLogo), []byte("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"), 1)
})
