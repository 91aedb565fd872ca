package servertest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// ListAll GETs every page of a list endpoint as token and answers all of its items. path may
// carry a query of its own; limit and cursor are added.
func (s *Server) ListAll(t testing.TB, token, path string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for page := 0; ; page++ {
		if page == 1000 {
			t.Fatalf("GET %s: more than 1000 pages; is next_cursor stuck?", path)
		}
		p := path + sep + "limit=200"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		res := s.Do(t, Request{Method: "GET", Path: p, Token: token})
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, res.Status, res.Body)
		}
		var out struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		res.Decode(t, &out)
		all = append(all, out.Data...)
		if out.NextCursor == nil {
			return all
		}
		if *out.NextCursor == cursor {
			t.Fatalf("GET %s: next_cursor %q repeats", p, cursor)
		}
		cursor = *out.NextCursor
	}
}

// IDs answers the "id" of each item.
func IDs(t testing.TB, items []json.RawMessage) []string {
	t.Helper()
	ids := make([]string, 0, len(items))
	for _, it := range items {
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(it, &v); err != nil {
			t.Fatalf("decode %s: %v", it, err)
		}
		ids = append(ids, v.ID)
	}
	return ids
}
