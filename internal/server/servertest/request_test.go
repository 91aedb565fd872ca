package servertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTryDoSendsBodies: TryDo sends a string or []byte body byte for byte (malformed JSON
// included: that is what fault and input tests send it for), and anything else as JSON.
func TestTryDoSendsBodies(t *testing.T) {
	type received struct {
		body        string
		contentType string
	}
	got := make(chan received, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		got <- received{string(body), r.Header.Get("Content-Type")}
	}))
	defer ts.Close()
	s := &Server{URL: ts.URL}

	for _, c := range []struct {
		name string
		body any
		want received
	}{
		{"string", `{"name": "x"`, received{`{"name": "x"`, "application/json"}},
		{"bytes", []byte(`["x"] trailing`), received{`["x"] trailing`, "application/json"}},
		{"value", map[string]string{"name": "x"}, received{`{"name":"x"}`, "application/json"}},
		{"none", nil, received{"", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := s.TryDo(Request{Method: "POST", Path: "/echo", Body: c.body})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != http.StatusOK {
				t.Fatalf("status %d", res.Status)
			}
			if r := <-got; r != c.want {
				t.Errorf("the server received body %q with Content-Type %q, want %q with %q", r.body, r.contentType, c.want.body, c.want.contentType)
			}
		})
	}
}
