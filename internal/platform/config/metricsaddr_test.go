package config

import (
	"maps"
	"testing"
)

// TestMetricsAddr: production serves /metrics on a listener of its own, :9090 unless
// METRICS_ADDR says otherwise; development keeps it on HTTP_ADDR unless METRICS_ADDR is set.
func TestMetricsAddr(t *testing.T) {
	prod := map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://owner@db/app", "JWT_SIGNING_KEY": ownKey, "WEBHOOK_SECRET_KEY": ownKey}
	prodSet := maps.Clone(prod)
	prodSet["METRICS_ADDR"] = "10.0.0.5:9100"
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"development", nil, ""},
		{"development, set", map[string]string{"METRICS_ADDR": "127.0.0.1:9100"}, "127.0.0.1:9100"},
		{"production", prod, ":9090"},
		{"production, set", prodSet, "10.0.0.5:9100"},
	} {
		cfg, err := load(c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.MetricsAddr != c.want {
			t.Errorf("%s: METRICS_ADDR %q, want %q", c.name, cfg.MetricsAddr, c.want)
		}
	}
}
