package metering_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// ceMeters defines, on events of type typ, a sum of data.n and a count.
func ceMeters(t *testing.T, s *servertest.Server, typ string) {
	s.PutMeter(t, typ+"_n", map[string]any{"event_type": typ, "aggregation": "sum", "value_property": "$.n"})
	s.PutMeter(t, typ+"_count", map[string]any{"event_type": typ, "aggregation": "count"})
}

// total answers a meter's value over the last day.
func total(t *testing.T, s *servertest.Server, token, meter string) string {
	t.Helper()
	now := time.Now().UTC().Truncate(15 * time.Minute) // sum and count meters answer on these boundaries
	q := url.Values{"from": {now.Add(-24 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Hour).Format(time.RFC3339)}}
	res := s.Get(t, token, "/v1/meters/"+meter+"/usage?"+q.Encode())
	var rep struct{ Data []struct{ Value any } }
	res.Decode(t, &rep)
	if res.Status != 200 || len(rep.Data) != 1 {
		t.Fatalf("usage of %s: %d %s", meter, res.Status, res.Body)
	}
	return fmt.Sprint(rep.Data[0].Value)
}

// binary sends one event in the binary content mode: attributes in ce-* headers, data as the body.
func binary(t *testing.T, s *servertest.Server, token string, headers map[string]string, body string) *servertest.Response {
	t.Helper()
	h := map[string]string{"ce-specversion": "1.0", "ce-source": "sdk", "ce-type": "bin"}
	for k, v := range headers {
		h[k] = v
	}
	var b any
	if body != "" {
		b = body
	}
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: token, Body: b, Header: h})
}

func wantAnswer(t *testing.T, res *servertest.Response, accepted, duplicates int) {
	t.Helper()
	var r struct{ Accepted, Duplicates int }
	if res.Status == 200 {
		res.Decode(t, &r)
	}
	if res.Status != 200 || r.Accepted != accepted || r.Duplicates != duplicates {
		t.Fatalf("%d %s, want 200 accepted %d duplicates %d", res.Status, res.Body, accepted, duplicates)
	}
}

// The binary content mode, as the official SDKs send by default.
func TestCloudEventsBinaryMode(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "ce-binary")
	ceMeters(t, s, "bin")
	s.PutMeter(t, "bin_users", map[string]any{"event_type": "bin", "aggregation": "unique_count", "value_property": "$.user"})

	// JSON object data, a percent-encoded subject and an extension.
	res := binary(t, s, a.Token, map[string]string{
		"ce-id": "b1", "ce-subject": "caf%C3%A9%20au%20lait", "ce-time": time.Now().UTC().Format(time.RFC3339),
		"ce-region": "eu", "Content-Type": "application/json; charset=utf-8",
	}, `{"n": 2.5, "user": "u1"}`)
	wantAnswer(t, res, 1, 0)
	// A retry is a duplicate; a *+json media type is JSON too.
	wantAnswer(t, binary(t, s, a.Token, map[string]string{"ce-id": "b1", "Content-Type": "application/json"}, `{"n": 2.5, "user": "u1"}`), 0, 1)
	wantAnswer(t, binary(t, s, a.Token, map[string]string{"ce-id": "b2", "Content-Type": "application/vnd.usage+json"}, `{"n": 1, "user": "u2"}`), 1, 0)
	if got := total(t, s, a.Token, "bin_n"); got != "3.5" {
		t.Fatalf("sum %s, want 3.5", got)
	}
	var stored string
	if err := pgtest.Owner(t).QueryRow(context.Background(), "SELECT subject FROM usage_events WHERE tenant_id = $1 AND id = 'b1'", a.ID).Scan(&stored); err != nil || stored != "café au lait" {
		t.Fatalf("subject %q (%v), want the percent-decoded value", stored, err)
	}

	// Every required attribute is named by its header.
	for _, h := range []string{"ce-id", "ce-source", "ce-type"} {
		hs := map[string]string{"ce-id": "x", "Content-Type": "application/json", h: ""}
		res := binary(t, s, a.Token, hs, `{"n": 1, "user": "u"}`)
		if p := res.Problem(t); res.Status != 400 || !p.Field(h) {
			t.Errorf("no %s: %d %s", h, res.Status, res.Body)
		}
	}
	// NUL (raw or percent-encoded) and invalid UTF-8 in a header are named.
	for _, v := range []string{"a%00b", "caf%C3", "a%zz"} {
		res := binary(t, s, a.Token, map[string]string{"ce-id": "x", "ce-subject": v, "Content-Type": "application/json"}, `{"n": 1, "user": "u"}`)
		if p := res.Problem(t); res.Status != 400 || !p.Field("ce-subject") {
			t.Errorf("ce-subject %q: %d %s", v, res.Status, res.Body)
		}
	}
	// A value out of bounds, or missing, is the 400 it is in the other modes.
	res = binary(t, s, a.Token, map[string]string{"ce-id": "x", "Content-Type": "application/json"}, `{"n": -1, "user": "u"}`)
	if p := res.Problem(t); res.Status != 400 || !p.Field("data.n") {
		t.Errorf("negative value: %d %s", res.Status, res.Body)
	}
	// Non-JSON data is opaque: counted by a meter of its type that reads nothing, refused by
	// one that must read a value from it.
	s.PutMeter(t, "blob_count", map[string]any{"event_type": "blob", "aggregation": "count"})
	wantAnswer(t, binary(t, s, a.Token, map[string]string{"ce-id": "p1", "ce-type": "blob", "Content-Type": "application/octet-stream"}, "\x00\xff raw"), 1, 0)
	wantAnswer(t, binary(t, s, a.Token, map[string]string{"ce-id": "p2", "ce-type": "blob"}, ""), 1, 0)
	if got := total(t, s, a.Token, "blob_count"); got != "2" {
		t.Fatalf("blob count %s, want 2", got)
	}
	res = binary(t, s, a.Token, map[string]string{"ce-id": "x", "Content-Type": "text/plain"}, "n=1")
	if p := res.Problem(t); res.Status != 400 || !p.Field("data.n") {
		t.Errorf("text data for a sum meter: %d %s", res.Status, res.Body)
	}
	// Invalid JSON under a JSON media type.
	res = binary(t, s, a.Token, map[string]string{"ce-id": "x", "Content-Type": "application/json"}, `{"n":`)
	if p := res.Problem(t); res.Status != 400 || !p.Field("data") {
		t.Errorf("invalid JSON data: %d %s", res.Status, res.Body)
	}
}

// An Idempotency-Key covers the ce-* headers too: another event under the same key is a
// mismatch, not the first one's stored answer.
func TestCloudEventsBinaryModeIdempotency(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "ce-idem")
	ceMeters(t, s, "idem")
	wantAnswer(t, binary(t, s, a.Token, map[string]string{"ce-type": "idem", "ce-id": "k1", "Idempotency-Key": "key-1", "Content-Type": "application/json"}, `{"n": 1}`), 1, 0)
	res := binary(t, s, a.Token, map[string]string{"ce-type": "idem", "ce-id": "k1", "Idempotency-Key": "key-1", "Content-Type": "application/json"}, `{"n": 1}`)
	if res.Status != 200 || res.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %s", res.Status, res.Header, res.Body)
	}
	res = binary(t, s, a.Token, map[string]string{"ce-type": "idem", "ce-id": "k2", "Idempotency-Key": "key-1", "Content-Type": "application/json"}, `{"n": 1}`)
	res.Want(t, http.StatusUnprocessableEntity, "idempotency_key_mismatch")
}

// The structured and batch content modes, and data_base64.
func TestCloudEventsStructuredAndBatchModes(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "ce-structured")
	ceMeters(t, s, "st")
	ev := func(id string, n any) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": "s", "type": "st", "data": map[string]any{"n": n}}
	}
	post := func(ct string, body any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: a.Token, Body: body, Header: map[string]string{"Content-Type": ct}})
	}
	wantAnswer(t, post("application/cloudevents+json", ev("s1", 1)), 1, 0)
	wantAnswer(t, post("application/cloudevents+json; charset=utf-8", ev("s1", 1)), 0, 1)
	wantAnswer(t, post("application/cloudevents-batch+json", []any{ev("s1", 1), ev("s2", 2)}), 1, 1)
	wantAnswer(t, post("application/cloudevents-batch+json", []any{ev("s2", 2)}), 0, 1)

	// data_base64 is standard: JSON inside is data.
	b64 := func(id, ct, data string) map[string]any {
		e := map[string]any{"specversion": "1.0", "id": id, "source": "s", "type": "st", "data_base64": base64.StdEncoding.EncodeToString([]byte(data))}
		if ct != "" {
			e["datacontenttype"] = ct
		}
		return e
	}
	wantAnswer(t, post("application/cloudevents+json", b64("s3", "application/json", `{"n": 4}`)), 1, 0)
	wantAnswer(t, post("application/cloudevents-batch+json", []any{b64("s3", "application/json", `{"n": 4}`), b64("s4", "application/cloudevents+json", `{"n": 0.5}`)}), 1, 1)
	if got := total(t, s, a.Token, "st_n"); got != "7.5" {
		t.Fatalf("sum %s, want 7.5", got)
	}
	if got := total(t, s, a.Token, "st_count"); got != "4" {
		t.Fatalf("count %s, want 4", got)
	}
	both := b64("x", "application/json", `{"n": 1}`)
	both["data"] = map[string]any{"n": 1}
	notBase64 := b64("x", "application/json", "")
	notBase64["data_base64"] = "not base64!"
	for _, c := range []struct {
		name, field string
		event       map[string]any
	}{
		{"invalid JSON inside", "data_base64", b64("x", "application/json", "{")},
		{"not base64", "data_base64", notBase64},
		{"data and data_base64", "data", both},
		{"text a sum meter cannot read", "data.n", b64("x", "text/plain", "n=1")},
	} {
		res := post("application/cloudevents+json", c.event)
		if p := res.Problem(t); res.Status != 400 || !p.Field(c.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", c.name, res.Status, res.Body, c.field)
		}
	}
	// A data_base64 event whose type no meter reads a value of is stored, opaque.
	s.PutMeter(t, "att_count", map[string]any{"event_type": "att", "aggregation": "count"})
	e := b64("o1", "image/png", "\x89PNG")
	e["type"] = "att"
	wantAnswer(t, post("application/cloudevents+json", e), 1, 0)

	// Any JSON value is data; one without the value a meter reads is refused.
	e = ev("x", nil)
	e["data"] = []any{1, 2}
	if res := post("application/cloudevents+json", e); res.Status != 400 || !res.Problem(t).Field("data.n") {
		t.Errorf("array data: %d %s", res.Status, res.Body)
	}
	e["type"] = "att"
	e["id"] = "o2"
	wantAnswer(t, post("application/cloudevents+json", e), 1, 0)
}
