package flags

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// OFREP, the OpenFeature Remote Evaluation Protocol
// (https://github.com/open-feature/protocol/blob/main/service/openapi.yaml), lets any
// OpenFeature SDK evaluate flags here. It answers in its own shapes, errors included, so
// these handlers write their answers themselves instead of returning errors to httpx.

// ofrepFailure is OFREP's error body; Key is empty for the bulk endpoint.
type ofrepFailure struct {
	Key          string    `json:"key,omitempty"`
	ErrorCode    ErrorCode `json:"errorCode"`
	ErrorDetails string    `json:"errorDetails,omitempty"`

	status int
}

// ofrepGeneral is OFREP's body for a server error: details only, and nothing internal.
type ofrepGeneral struct {
	ErrorDetails string `json:"errorDetails"`
}

// OFREPFlag is POST /ofrep/v1/evaluate/flags/{key}: one flag for the caller's context.
func (h *Handler) OFREPFlag(w http.ResponseWriter, r *http.Request) {
	key := chi.URLParam(r, "key")
	t, fail, err := h.ofrepTarget(r)
	switch {
	case err != nil:
		ofrepInternal(w, r, err)
		return
	case fail != nil:
		fail.Key = key
		httpx.JSON(w, fail.status, fail)
		return
	}
	res := h.Client.Snapshot(r.Context()).Evaluate(key, TypeAny, t)
	switch {
	case res.ErrorCode == CodeFlagNotFound:
		httpx.JSON(w, http.StatusNotFound, ofrepFailure{Key: key, ErrorCode: CodeFlagNotFound,
			ErrorDetails: fmt.Sprintf("flag %q was not found", key)})
	case res.Reason == ReasonError:
		httpx.JSON(w, http.StatusBadRequest, ofrepFailure{Key: key, ErrorCode: res.ErrorCode})
	default:
		httpx.JSON(w, http.StatusOK, evaluation(res))
	}
}

// ofrepBulk is the body of a bulk answer.
type ofrepBulk struct {
	Flags []any `json:"flags"` // Evaluation or ofrepFailure
}

// OFREPBulk is POST /ofrep/v1/evaluate/flags: every flag for the caller's context, from one
// snapshot. The answer carries an ETag (a hash of its body); a request whose If-None-Match
// names it gets a 304, so a polling client downloads flags only when its answer changed.
func (h *Handler) OFREPBulk(w http.ResponseWriter, r *http.Request) {
	t, fail, err := h.ofrepTarget(r)
	switch {
	case err != nil:
		ofrepInternal(w, r, err)
		return
	case fail != nil:
		httpx.JSON(w, fail.status, fail)
		return
	}
	results := h.Client.Snapshot(r.Context()).EvaluateAll(t)
	out := ofrepBulk{Flags: make([]any, len(results))}
	for i, res := range results {
		if res.Reason == ReasonError {
			out.Flags[i] = ofrepFailure{Key: res.Key, ErrorCode: res.ErrorCode}
		} else {
			out.Flags[i] = evaluation(res)
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		ofrepInternal(w, r, err)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	httpx.JSON(w, http.StatusOK, json.RawMessage(body))
}

// ofrepTarget reads the body {"context": {"targetingKey"?: ..., ...}} into the caller's
// Target. The body may be empty. tenant_id, plan and tenant_created_at in the context are
// dropped: the server supplies them. fail is the client's mistake, err the server's.
func (h *Handler) ofrepTarget(r *http.Request) (t Target, fail *ofrepFailure, err error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, httpx.MaxBody+1))
	switch {
	case err != nil:
		return Target{}, &ofrepFailure{status: http.StatusBadRequest, ErrorCode: CodeParseError, ErrorDetails: "the request body could not be read"}, nil
	case len(body) > httpx.MaxBody:
		return Target{}, &ofrepFailure{status: http.StatusRequestEntityTooLarge, ErrorCode: CodeGeneral,
			ErrorDetails: "the request body is larger than " + strconv.Itoa(httpx.MaxBody) + " bytes"}, nil
	}
	key, attrs, fail := parseOFREPContext(body)
	if fail != nil {
		return Target{}, fail, nil
	}
	if t, err = h.tenantTarget(r.Context(), key); err != nil {
		return Target{}, nil, err
	}
	t.Attributes = attrs
	return t, nil, nil
}

// parseOFREPContext answers the targeting key and the other attributes of a request body.
func parseOFREPContext(body []byte) (key string, attrs map[string]any, fail *ofrepFailure) {
	parseError := func(detail string) *ofrepFailure {
		return &ofrepFailure{status: http.StatusBadRequest, ErrorCode: CodeParseError, ErrorDetails: detail}
	}
	invalid := func(detail string) *ofrepFailure {
		return &ofrepFailure{status: http.StatusBadRequest, ErrorCode: CodeInvalidContext, ErrorDetails: detail}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil, nil
	}
	// Strings the service could not store are refused as on every route, in OFREP's words:
	// in the context, the context is invalid; elsewhere, the body.
	var bad *errs.Error
	if errors.As(httpx.CheckStrings(body), &bad) && len(bad.Fields) > 0 {
		f := bad.Fields[0]
		if f.Field == "context" || strings.HasPrefix(f.Field, "context.") {
			return "", nil, invalid(f.Field + " " + f.Message)
		}
		return "", nil, parseError(f.Field + " " + f.Message)
	}
	// Members other than context are ignored, not refused: a client written against a later
	// OFREP may send more, and its context still evaluates.
	var req struct {
		Context json.RawMessage `json:"context"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return "", nil, parseError("the body must be a JSON object")
		}
		return "", nil, parseError("invalid JSON: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, parseError("unexpected data after the JSON object")
	}
	raw := bytes.TrimSpace(req.Context)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, nil
	}
	if raw[0] != '{' {
		return "", nil, invalid("context must be an object")
	}
	if err := json.Unmarshal(raw, &attrs); err != nil {
		return "", nil, invalid("context must be an object")
	}
	if v, ok := attrs["targetingKey"]; ok {
		s, isString := v.(string)
		switch {
		case !isString:
			return "", nil, invalid("targetingKey must be a string")
		case utf8.RuneCountInString(s) > maxTargetingKey:
			return "", nil, invalid("targetingKey must be at most 256 characters")
		}
		key = s
	}
	for _, name := range []string{"targetingKey", AttrTenantID, AttrPlan, AttrTenantCreatedAt} {
		delete(attrs, name)
	}
	return key, attrs, nil
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110, 13.1.2): "*", or any listed
// entity tag whose opaque part equals etag's.
func etagMatches(header, etag string) bool {
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, tag := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == etag {
			return true
		}
	}
	return false
}

// ofrepInternal logs err and answers OFREP's 500, which reveals nothing.
func ofrepInternal(w http.ResponseWriter, r *http.Request, err error) {
	httpx.Logger(r.Context()).ErrorContext(r.Context(), "ofrep: request failed", slog.String("error", err.Error()))
	httpx.JSON(w, http.StatusInternalServerError, ofrepGeneral{
		ErrorDetails: "an internal error occurred; quote the request id when reporting it"})
}
