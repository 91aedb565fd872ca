package idempotency_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// The idempotency middleware on a plain endpoint: POST /v1/projects with a key creates one
// project however often it is sent, concurrently or not, and replays the first answer.
func TestIdempotentProjectCreate(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "idem")
	post := func(key, name string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token,
			Body: map[string]string{"name": name}, Header: map[string]string{"Idempotency-Key": key}})
	}

	var wg sync.WaitGroup
	answers := make([]*servertest.Response, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = post(`"create-apollo"`, "Apollo")
		}()
	}
	wg.Wait()
	var first *servertest.Response
	for _, res := range answers {
		switch res.Status {
		case http.StatusCreated:
			if first != nil && string(res.Body) != string(first.Body) {
				t.Fatalf("two different 201s:\n%s\n%s", first.Body, res.Body)
			}
			first = res
		case http.StatusConflict:
			if res.Problem(t).Code != "idempotency_key_in_use" {
				t.Fatalf("409 %s", res.Body)
			}
		default:
			t.Fatalf("answer %d %s", res.Status, res.Body)
		}
	}
	if first == nil {
		t.Fatal("no request created the project")
	}
	again := post(`"create-apollo"`, "Apollo")
	if again.Status != http.StatusCreated || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v %s; want the first 201 replayed", again.Status, again.Header, again.Body)
	}
	var list struct{ Data []struct{ ID string } }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects", Token: a.Token}).Decode(t, &list)
	if len(list.Data) != 1 {
		t.Fatalf("%d projects, want 1", len(list.Data))
	}
	var events struct{ Data []struct{ Type string } }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=project.created", Token: a.Token}).Decode(t, &events)
	if len(events.Data) != 1 {
		t.Fatalf("%d project.created events, want 1", len(events.Data))
	}

	if res := post(`"create-apollo"`, "Other"); res.Status != http.StatusUnprocessableEntity || res.Problem(t).Code != "idempotency_key_mismatch" {
		t.Fatalf("other body: %d %s", res.Status, res.Body)
	}
	// Keys are scoped to the principal: another tenant's same key is independent.
	b := s.Signup(t, "idem-b")
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: b.Token,
		Body: map[string]string{"name": "Apollo"}, Header: map[string]string{"Idempotency-Key": `"create-apollo"`}})
	if res.Status != http.StatusCreated || res.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("tenant B with A's key: %d %v", res.Status, res.Header)
	}
	// A validation error is stored and replayed too.
	bad := func() *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token,
			Body: map[string]string{"name": ""}, Header: map[string]string{"Idempotency-Key": "bad-one"}})
	}
	if r1, r2 := bad(), bad(); r1.Status != 400 || r2.Status != 400 || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("400 not replayed: %d, %d %v", r1.Status, r2.Status, r2.Header)
	}
}
