package metering

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// The CloudEvents HTTP binding's binary content mode: the attributes travel in ce-* headers
// and the body is the event's data, its Content-Type the event's datacontenttype. A request
// is in binary mode when it has a ce-specversion header.

const headerPrefix = "ce-"

// IsBinary reports whether a request carries an event in the binary content mode.
func IsBinary(h http.Header) bool {
	_, ok := h[http.CanonicalHeaderKey(headerPrefix+"specversion")]
	return ok
}

// ParseBinary reads the one event of a binary-mode request. It maps the request onto the
// event's JSON format, as the binding defines the two to be equivalent (data that is not JSON
// becomes data_base64), and reads that as ParseEvents reads a structured event, so that
// both modes accept and refuse exactly the same events. Problems name the header that
// carried the attribute.
func ParseBinary(h http.Header, body []byte, meters []Meter, now time.Time) ([]UsageEvent, error) {
	attrs := map[string]any{}
	var f errs.Fields
	for key, values := range h {
		name, ok := strings.CutPrefix(strings.ToLower(key), headerPrefix)
		if !ok {
			continue
		}
		header := headerPrefix + name
		switch {
		case name == "data" || name == "data_base64" || name == "datacontenttype":
			f.Add(header, "is not sent in binary mode: the body is the data, its Content-Type the datacontenttype")
			continue
		case len(values) > 1:
			f.Add(header, "must be sent once")
			continue
		}
		// The binding percent-encodes what is not printable ASCII, and the '%' itself.
		v, err := url.PathUnescape(values[0])
		if err != nil {
			f.Add(header, "must be percent-encoded as the CloudEvents HTTP binding says (%XX)")
			continue
		}
		if f.AddFrom(httpx.CheckText(header, v)) {
			continue
		}
		attrs[name] = v
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	if ct := h.Get("Content-Type"); ct != "" {
		attrs["datacontenttype"] = ct
	}
	if len(body) > 0 {
		if isJSON(h.Get("Content-Type")) {
			if !json.Valid(body) {
				return nil, errs.Field("data", "must be JSON, as the Content-Type says")
			}
			attrs["data"] = json.RawMessage(body)
		} else {
			attrs["data_base64"] = base64.StdEncoding.EncodeToString(body)
		}
	}
	raw, err := json.Marshal(attrs)
	if err != nil {
		return nil, err // cannot happen: strings and valid JSON
	}
	var problems batchErrors
	ev := parseEvent(0, raw, meters, now, &problems)
	for i, p := range problems {
		problems[i].Field = headerOf(p.Field)
	}
	return []UsageEvent{ev}, problems.err()
}

// headerOf names the part of a binary-mode request that carried an event's field.
func headerOf(field string) string {
	name, _, _ := strings.Cut(field, ".")
	name, _, _ = strings.Cut(name, "[")
	switch name {
	case "data":
		return field
	case "data_base64":
		return "data" + strings.TrimPrefix(field, "data_base64")
	case "datacontenttype":
		return "Content-Type"
	}
	return headerPrefix + field
}

// BindingFingerprint answers what of a request, besides its body, is part of its meaning: in
// binary mode the ce-* headers and the Content-Type. An idempotency key hashes it with the
// body, so a retry under the same key with another ce-id is a mismatch rather than an answer
// replayed for an event that was never stored. Other modes answer nil: the body is all.
func BindingFingerprint(r *http.Request) []byte {
	if !IsBinary(r.Header) {
		return nil
	}
	var lines []string
	for key, values := range r.Header {
		if k := strings.ToLower(key); strings.HasPrefix(k, headerPrefix) || k == "content-type" {
			for _, v := range values {
				lines = append(lines, k+": "+v)
			}
		}
	}
	slices.Sort(lines)
	// Header names and values cannot hold a newline, so the lines are unambiguous.
	return []byte(strings.Join(lines, "\n"))
}
