package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// MaxBody is the default request body limit.
const MaxBody = 1 << 20

// Validator is a request body that can check itself after decoding.
type Validator interface {
	Validate() error
}

// Decode reads one JSON object of at most limit bytes into v, strictly: unknown fields,
// wrong types, trailing data, oversized bodies and strings PostgreSQL cannot store (see
// CheckStrings) are client errors that name the problem. If v is a Validator, it is
// validated too.
func Decode(r *http.Request, v any, limit int64) error {
	if limit <= 0 {
		limit = MaxBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return errs.Wrap(err, errs.Invalid, "validation_failed", "the request body could not be read")
	}
	if int64(len(body)) > limit {
		return errs.E(errs.TooLarge, "payload_too_large", "the request body is larger than %d bytes", limit)
	}
	return DecodeBytes(body, v)
}

// DecodeBytes is Decode for a body already read.
func DecodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errs.Field("body", "a JSON body is required")
	}
	// Before decoding: a string decoded into a type of its own (a time, a UUID) would fail
	// there with an error that names no field, and encoding/json hides invalid UTF-8.
	if err := CheckStrings(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.Field("body", "unexpected data after the JSON value")
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return errs.Field("body", fmt.Sprintf("malformed JSON at byte %d", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Field("body", "malformed JSON: unexpected end")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return errs.Field("body", "the body must be a JSON "+jsonKind(typ.Type.Kind().String()))
		}
		return errs.Field(field, "must be "+jsonKind(typ.Type.Kind().String())+", not "+typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return errs.Field("body", `unknown field ""`)
		}
		return errs.Field(name, "unknown field")
	}
	return errs.Field("body", "invalid JSON: "+err.Error())
}

// jsonKind names a Go kind as the JSON type a client must send.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a valid value"
}

// PathUUID parses the named chi path parameter as a UUID.
func PathUUID(r *http.Request, name string) (uuid.UUID, error) {
	s := chi.URLParam(r, name)
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, errs.Field(name, "must be a UUID")
	}
	return id, nil
}
