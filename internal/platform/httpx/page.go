package httpx

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Page is a keyset page request: items after (or before, for newest-first lists) the id
// in Cursor, at most Limit of them. Ids are UUIDv7, so id order is creation order.
type Page struct {
	Limit  int
	Cursor uuid.UUID // uuid.Nil: from the start
}

// List is the answer shape of every paginated list.
type List[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// ParsePage reads limit (default 50, at most 200) and cursor from the query.
func ParsePage(r *http.Request) (Page, error) {
	q := r.URL.Query()
	p := Page{Limit: 50}
	var fields errs.Fields
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			fields.Add("limit", "must be an integer from 1 to 200")
		}
		p.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 16 {
			fields.Add("cursor", "is not a cursor this API returned")
		} else {
			copy(p.Cursor[:], b)
		}
	}
	return p, fields.Err()
}

// NewList builds a page answer from up to Limit+1 items: the extra one, if present, only
// tells that there is a next page, whose cursor is the last returned item's id.
func NewList[T any](items []T, p Page, id func(T) uuid.UUID) List[T] {
	l := List[T]{Data: items}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(items) > p.Limit {
		l.Data = items[:p.Limit]
		last := id(l.Data[p.Limit-1])
		c := base64.RawURLEncoding.EncodeToString(last[:])
		l.NextCursor = &c
	}
	return l
}

// Before is the id a newest-first page reads below: the cursor, or above every id.
func (p Page) Before() uuid.UUID {
	if p.Cursor == uuid.Nil {
		return uuid.Max
	}
	return p.Cursor
}
