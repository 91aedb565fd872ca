package jsonlog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/jsonlog"
)

// tenantID formats as its text only when logged (a slog.LogValuer), as the service's tenant
// attribute does.
type tenantID uuid.UUID

func (t tenantID) LogValue() slog.Value { return slog.StringValue(uuid.UUID(t).String()) }

// TestSameLinesAsSlog: every record, through the handler and through slog.JSONHandler with
// the same options, attributes and groups, gives the same bytes: records of the kinds the
// handler encodes itself (strings that need escaping among them) and records it hands to
// slog's.
func TestSameLinesAsSlog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 12, 6, 18, 22, 31, 264692000, time.UTC)
	strs := []string{"", "plain", `quote " and \ backslash`, "line\nfeed\ttab\rret", "\x00\x01\x1f\x7f",
		"<html>&amp;", "héllo wörld ✓", "bad \xff utf8 \xe2\x82", "sep \u2028 \u2029 end", "emoji 🎉", "/v1/projects/{id}"}
	values := []func() slog.Value{
		func() slog.Value { return slog.StringValue(strs[rng.IntN(len(strs))]) },
		func() slog.Value { return slog.Int64Value(rng.Int64() - rng.Int64()) },
		func() slog.Value { return slog.Uint64Value(rng.Uint64()) },
		func() slog.Value { return slog.BoolValue(rng.IntN(2) == 0) },
		func() slog.Value { return slog.DurationValue(time.Duration(rng.Int64N(int64(time.Hour)))) },
		func() slog.Value { return slog.TimeValue(at.Add(time.Duration(rng.Int64N(1e15)))) },
		func() slog.Value { return slog.TimeValue(time.Now()) }, // with a monotonic reading
		func() slog.Value { return slog.AnyValue(tenantID(uuid.New())) },
		// What slog writes itself.
		func() slog.Value { return slog.Float64Value(rng.Float64()) },
		func() slog.Value { return slog.AnyValue(errors.New("boom")) },
		func() slog.Value { return slog.AnyValue(map[string]int{"a": 1}) },
		func() slog.Value { return slog.GroupValue(slog.String("in", "side")) },
		func() slog.Value { return slog.TimeValue(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) },
	}
	attr := func() slog.Attr {
		if rng.IntN(40) == 0 {
			return slog.Attr{} // the empty attribute, which slog leaves out
		}
		return slog.Attr{Key: strs[rng.IntN(len(strs))], Value: values[rng.IntN(len(values))]()}
	}
	attrs := func(max int) []slog.Attr {
		as := make([]slog.Attr, rng.IntN(max+1))
		for i := range as {
			as[i] = attr()
		}
		return as
	}
	optss := []*slog.HandlerOptions{nil, {Level: slog.LevelDebug},
		{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { a.Key = strings.ToUpper(a.Key); return a }}}
	for i := range 3000 {
		opts := optss[i%len(optss)]
		var got, want bytes.Buffer
		var h, s slog.Handler = jsonlog.New(&got, opts), slog.NewJSONHandler(&want, opts)
		if rng.IntN(3) == 0 {
			as := attrs(3)
			h, s = h.WithAttrs(as), s.WithAttrs(as)
		}
		if rng.IntN(8) == 0 {
			h, s = h.WithGroup("g"), s.WithGroup("g")
		}
		r := slog.NewRecord(at.Add(time.Duration(i)*time.Microsecond), slog.Level(rng.IntN(12)-4), strs[rng.IntN(len(strs))], 0)
		switch i % 50 {
		case 0:
			r.Time = time.Time{}
		case 1:
			r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // slog writes its error in the line
		}
		r.AddAttrs(attrs(12)...)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if err := s.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got.String(), want.String())
		}
	}
}

// TestLevel: lines below the handler's level are not enabled, as with slog's handler.
func TestLevel(t *testing.T) {
	h := jsonlog.New(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("Enabled does not follow the level")
	}
	if d := jsonlog.New(io.Discard, nil); d.Enabled(context.Background(), slog.LevelDebug) || !d.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("the default level is not Info")
	}
}

// BenchmarkAccessLine: the service's access line, through this handler and through slog's.
func BenchmarkAccessLine(b *testing.B) {
	tenant := tenantID(uuid.New())
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{{"jsonlog", jsonlog.New(io.Discard, nil)}, {"slog", slog.NewJSONHandler(io.Discard, nil)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
				r.AddAttrs(slog.String("request_id", "4bb8a0183638b10e5fb09052"), slog.String("method", "GET"),
					slog.String("route", "/v1/projects/{id}"), slog.String("client_ip", "127.0.0.1"),
					slog.Int("status", 200), slog.Int("bytes", 160), slog.Duration("duration", 812*time.Microsecond),
					slog.Any("tenant_id", tenant))
				c.h.Handle(context.Background(), r)
			}
		})
	}
}
