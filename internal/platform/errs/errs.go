// Package errs is the service's small error vocabulary. Every error that should reach a
// client carries a Kind, which httpx maps to an HTTP status in one place, and a stable
// machine Code that clients may switch on.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind uint8

const (
	Internal             Kind = iota // something went wrong on our side; details are never shown
	Invalid                          // the request is malformed or fails validation
	Unauthenticated                  // no or bad credentials
	Forbidden                        // authenticated but not allowed
	NotFound                         // absent, or belongs to another tenant
	Conflict                         // the state of the resource prevents the change
	TooLarge                         // the request body is over its limit
	RateLimited                      // a limit or quota is spent
	Unprocessable                    // well-formed but cannot be processed as sent
	PaymentFailed                    // a payment was declined
	Unavailable                      // a dependency is down; retrying later may work
	MethodNotAllowed                 // the path is served, but not under this method
	UnsupportedMediaType             // the body is of a media type the operation does not take
	Gone                             // existed, and is no longer available (an expired export)
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Unauthenticated:
		return "unauthenticated"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	case TooLarge:
		return "too_large"
	case RateLimited:
		return "rate_limited"
	case Unprocessable:
		return "unprocessable"
	case PaymentFailed:
		return "payment_failed"
	case Unavailable:
		return "unavailable"
	case MethodNotAllowed:
		return "method_not_allowed"
	case UnsupportedMediaType:
		return "unsupported_media_type"
	case Gone:
		return "gone"
	}
	return "internal"
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Index   *int   `json:"index,omitempty"` // position in a batch
	Code    string `json:"code,omitempty"`
}

// Error is an error with a kind, a stable code and a message safe to show the client.
type Error struct {
	Kind   Kind
	Code   string       // stable snake_case code, e.g. "slug_taken"
	Detail string       // human-readable, safe for clients
	Fields []FieldError // for validation errors
	Err    error        // the underlying cause, never shown to clients
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an Error of the given kind and code with a formatted detail.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap gives err a kind and code, keeping it as the cause.
func Wrap(err error, kind Kind, code, detail string) *Error {
	return &Error{Kind: kind, Code: code, Detail: detail, Err: err}
}

// Validation is the error for one or more invalid fields.
func Validation(fields ...FieldError) *Error {
	return &Error{Kind: Invalid, Code: "validation_failed", Detail: "the request is invalid", Fields: fields}
}

// Field is a shorthand for a single invalid field.
func Field(field, message string) *Error {
	return Validation(FieldError{Field: field, Message: message})
}

// NotFoundf is the common 404.
func NotFoundf(format string, args ...any) *Error {
	return E(NotFound, "not_found", format, args...)
}

// KindOf reports the kind of the first *Error in err's chain, Internal if none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries the given kind.
func Is(err error, kind Kind) bool {
	return err != nil && KindOf(err) == kind
}

// Fields collects field errors so a validator can report them all at once.
type Fields []FieldError

// Add records a problem with a field.
func (f *Fields) Add(field, message string) {
	*f = append(*f, FieldError{Field: field, Message: message})
}

// FieldsOf answers the field errors err carries, if it is a validation error.
func FieldsOf(err error) []FieldError {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	return e.Fields
}

// AddFrom records the field errors of err, a validation error from another validator, so
// that the client still learns every problem at once. It reports whether err had any.
func (f *Fields) AddFrom(err error) bool {
	fields := FieldsOf(err)
	*f = append(*f, fields...)
	return len(fields) > 0
}

// Err returns a validation error with the collected fields, or nil if there are none.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return Validation(f...)
}
