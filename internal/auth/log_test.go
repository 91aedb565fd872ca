package auth

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestLogUUID: the access log's tenant_id is written as slog.Any would write the uuid itself,
// by the JSON handler and the text one.
func TestLogUUID(t *testing.T) {
	id := uuid.New()
	noTime := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, noTime) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, noTime) },
	} {
		var want, got bytes.Buffer
		slog.New(h(&want)).Info("x", slog.Any("tenant_id", id))
		slog.New(h(&got)).Info("x", slog.Any("tenant_id", logUUID(id)))
		if got.String() != want.String() || !strings.Contains(got.String(), id.String()) {
			t.Errorf("logUUID logs %s, want %s", got.String(), want.String())
		}
	}
}
