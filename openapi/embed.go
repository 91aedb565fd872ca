// Package openapi holds the hand-written OpenAPI 3.1 description of the public REST API.
//
// The server serves Spec at GET /openapi.yaml, and the HTTP tests validate every response
// against it, which keeps the description and the handlers in step.
package openapi

import _ "embed"

// Spec is the OpenAPI 3.1 document (openapi.yaml), in YAML.
//
//go:embed openapi.yaml
var Spec []byte
