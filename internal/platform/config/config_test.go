package config

import (
	"encoding/base64"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// ownKey is a valid signing key that is not the development one.
const ownKey = "c2VjcmV0LXNlZWQtb2YtdGhpcnR5LXR3by1ieXRlcyE="

func load(env map[string]string) (Config, error) {
	return Load(func(k string) string { return env[k] })
}

func TestLoadDefaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatalf("Load with an empty environment: %v", err)
	}
	devSeed, _ := base64.StdEncoding.DecodeString(DevJWTSigningKey)
	for _, check := range []struct {
		name      string
		got, want any
	}{
		{"APP_ENV", c.Env, "development"},
		{"HTTP_ADDR", c.HTTPAddr, ":8080"},
		{"METRICS_ADDR", c.MetricsAddr, ""},
		{"DEBUG_ADDR", c.DebugAddr, ""},
		{"DATABASE_URL", c.DatabaseURL, "postgres://postgres@127.0.0.1:5432/saasbase?sslmode=disable"},
		{"APP_DATABASE_URL", c.AppDatabaseURL, ""},
		{"DATABASE_MAX_CONNS", c.DatabaseMaxConns, int32(20)},
		{"DATABASE_STATEMENT_TIMEOUT", c.StatementTimeout, 5 * time.Second},
		{"REDIS_URL", c.RedisURL, "redis://127.0.0.1:6379/0"},
		{"REDIS_KEY_PREFIX", c.RedisKeyPrefix, "saasbase:"},
		{"JWT_SIGNING_KEY", string(c.JWTSigningKey), string(devSeed)},
		{"JWT_PREVIOUS_PUBLIC_KEYS", c.JWTPreviousKeys, ""},
		{"JWT_ISSUER", c.JWTIssuer, "saasbase"},
		{"JWT_AUDIENCE", c.JWTAudience, "saasbase-api"},
		{"JWT_MAX_TOKEN_TTL", c.JWTMaxTokenTTL, 24 * time.Hour},
		{"ACCESS_TOKEN_TTL", c.AccessTokenTTL, 15 * time.Minute},
		{"REFRESH_TOKEN_TTL", c.RefreshTokenTTL, 720 * time.Hour},
		{"STRIPE_SECRET_KEY", c.StripeSecretKey, ""},
		{"STRIPE_API_URL", c.StripeAPIURL, ""},
		{"KAFKA_BROKERS", len(c.KafkaBrokers), 0},
		{"KAFKA_TOPIC", c.KafkaTopic, "saasbase.events"},
		{"TRUSTED_PROXIES", len(c.TrustedProxies), 0},
		{"CORS_ALLOWED_ORIGINS", len(c.CORSAllowedOrigins), 0},
		{"AUTH_RATE_LIMIT_PER_MINUTE", c.AuthRatePerMinute, 20},
		{"PASSWORD_HASH_CONCURRENCY", c.PasswordConcurrency, runtime.GOMAXPROCS(0)},
		{"WEBHOOKS_ALLOW_PRIVATE_NETWORKS", c.WebhooksAllowPrivate, false},
		{"WEBHOOK_TIMEOUT", c.WebhookTimeout, 15 * time.Second},
		{"HTTP_READ_TIMEOUT", c.ReadTimeout, 15 * time.Second},
		{"HTTP_WRITE_TIMEOUT", c.WriteTimeout, 30 * time.Second},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 25 * time.Second},
		{"SHUTDOWN_DRAIN_DELAY", c.DrainDelay, 2 * time.Second},
		{"LOG_LEVEL", c.LogLevel, "info"},
		{"EVENTS_RETENTION", c.EventsRetention, 40 * 24 * time.Hour},
	} {
		if check.got != check.want {
			t.Errorf("%s defaults to %v, want %v", check.name, check.got, check.want)
		}
	}
	if len(c.JWTSigningKey) != 32 {
		t.Errorf("the default signing key is %d bytes, want 32", len(c.JWTSigningKey))
	}
	if c.Production() {
		t.Error("the default environment is production")
	}
}

func TestLoadReadsValues(t *testing.T) {
	c, err := load(map[string]string{
		"APP_ENV":                         "production",
		"DATABASE_URL":                    "postgres://owner@db:5432/app",
		"JWT_SIGNING_KEY":                 ownKey,
		"WEBHOOK_SECRET_KEY":              ownKey,
		"HTTP_ADDR":                       "127.0.0.1:9000",
		"DATABASE_MAX_CONNS":              "7",
		"PASSWORD_HASH_CONCURRENCY":       "3",
		"ACCESS_TOKEN_TTL":                "5m",
		"JWT_MAX_TOKEN_TTL":               "2h",
		"SHUTDOWN_DRAIN_DELAY":            "1500ms",
		"KAFKA_BROKERS":                   " a:9092, b:9092 ,",
		"CORS_ALLOWED_ORIGINS":            "https://app.example.com,https://admin.example.com",
		"TRUSTED_PROXIES":                 "10.0.0.0/8, 192.168.1.7",
		"WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "false",
		"WEBHOOK_TIMEOUT":                 "30s",
		"LOG_LEVEL":                       "debug",
		"EVENTS_RETENTION":                "2160h",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Production() || c.HTTPAddr != "127.0.0.1:9000" || c.DatabaseMaxConns != 7 || c.PasswordConcurrency != 3 || c.AccessTokenTTL != 5*time.Minute || c.JWTMaxTokenTTL != 2*time.Hour ||
		c.DrainDelay != 1500*time.Millisecond || c.LogLevel != "debug" || c.DatabaseURL != "postgres://owner@db:5432/app" ||
		c.WebhookTimeout != 30*time.Second || c.EventsRetention != 90*24*time.Hour {
		t.Errorf("Load = %+v", c)
	}
	if want, _ := base64.StdEncoding.DecodeString(ownKey); string(c.JWTSigningKey) != string(want) {
		t.Errorf("JWT_SIGNING_KEY read as %x", c.JWTSigningKey)
	}
	if !slices.Equal(c.KafkaBrokers, []string{"a:9092", "b:9092"}) {
		t.Errorf("KAFKA_BROKERS = %q", c.KafkaBrokers)
	}
	if !slices.Equal(c.CORSAllowedOrigins, []string{"https://app.example.com", "https://admin.example.com"}) {
		t.Errorf("CORS_ALLOWED_ORIGINS = %q", c.CORSAllowedOrigins)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
	if !slices.Equal(c.TrustedProxies, want) {
		t.Errorf("TRUSTED_PROXIES = %v, want %v", c.TrustedProxies, want)
	}
}

func TestLoadRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		name, value string
	}{
		{"APP_ENV", "staging"},
		{"DATABASE_MAX_CONNS", "0"},
		{"DATABASE_MAX_CONNS", "twenty"},
		{"DATABASE_STATEMENT_TIMEOUT", "5"},
		{"DATABASE_STATEMENT_TIMEOUT", "-1s"},
		{"JWT_SIGNING_KEY", "not base64!"},
		{"JWT_SIGNING_KEY", base64.StdEncoding.EncodeToString([]byte("too short"))},
		{"ACCESS_TOKEN_TTL", "16m"},
		{"ACCESS_TOKEN_TTL", "0s"},
		{"ACCESS_TOKEN_TTL", "soon"},
		{"REFRESH_TOKEN_TTL", "forever"},
		{"JWT_MAX_TOKEN_TTL", "0s"},
		{"JWT_MAX_TOKEN_TTL", "-24h"},
		{"JWT_MAX_TOKEN_TTL", "a day"},
		{"AUTH_RATE_LIMIT_PER_MINUTE", "0"},
		{"PASSWORD_HASH_CONCURRENCY", "0"},
		{"WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "maybe"},
		{"WEBHOOK_TIMEOUT", "0s"},
		{"WEBHOOK_TIMEOUT", "2m"},
		{"WEBHOOK_TIMEOUT", "fast"},
		{"HTTP_READ_TIMEOUT", "1 minute"},
		{"SHUTDOWN_TIMEOUT", "x"},
		{"SHUTDOWN_DRAIN_DELAY", "-2s"},
		{"TRUSTED_PROXIES", "10.0.0.0/33"},
		{"TRUSTED_PROXIES", "proxy.internal"},
		{"LOG_LEVEL", "verbose"},
		{"EVENTS_RETENTION", "959h"},
		{"EVENTS_RETENTION", "30d"},
	} {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			_, err := load(map[string]string{c.name: c.value})
			if err == nil {
				t.Fatalf("%s=%q accepted", c.name, c.value)
			}
			if !strings.Contains(err.Error(), c.name) {
				t.Fatalf("the error does not name %s: %v", c.name, err)
			}
		})
	}
}

// The service never issues a token its own verifier would refuse: ACCESS_TOKEN_TTL may not
// exceed JWT_MAX_TOKEN_TTL.
func TestLoadAccessTokenTTLWithinTheCap(t *testing.T) {
	_, err := load(map[string]string{"JWT_MAX_TOKEN_TTL": "5m", "ACCESS_TOKEN_TTL": "10m"})
	if err == nil {
		t.Fatal("ACCESS_TOKEN_TTL=10m accepted under JWT_MAX_TOKEN_TTL=5m")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "ACCESS_TOKEN_TTL ") || !strings.Contains(msg, "JWT_MAX_TOKEN_TTL (5m0s)") {
		t.Fatalf("the error does not say ACCESS_TOKEN_TTL is over JWT_MAX_TOKEN_TTL: %v", err)
	}
	if _, err := load(map[string]string{"JWT_MAX_TOKEN_TTL": "10m", "ACCESS_TOKEN_TTL": "10m"}); err != nil {
		t.Fatalf("an access token TTL equal to the cap is refused: %v", err)
	}
}

func TestLoadReportsEveryBadValue(t *testing.T) {
	bad := map[string]string{
		"APP_ENV":                    "prod",
		"DATABASE_MAX_CONNS":         "many",
		"DATABASE_STATEMENT_TIMEOUT": "long",
		"JWT_SIGNING_KEY":            "short",
		"ACCESS_TOKEN_TTL":           "1h",
		"JWT_MAX_TOKEN_TTL":          "0s",
		"AUTH_RATE_LIMIT_PER_MINUTE": "-5",
		"HTTP_WRITE_TIMEOUT":         "later",
		"TRUSTED_PROXIES":            "nowhere",
		"LOG_LEVEL":                  "loud",
	}
	_, err := load(bad)
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	for name := range bad {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, name+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is reported on %d lines, want 1:\n%v", name, n, err)
		}
	}
	if len(lines) != len(bad) {
		t.Errorf("%d lines for %d bad values:\n%v", len(lines), len(bad), err)
	}
}

func TestLoadProduction(t *testing.T) {
	valid := map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://owner@db/app", "JWT_SIGNING_KEY": ownKey, "WEBHOOK_SECRET_KEY": ownKey}
	with := func(changes map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range valid {
			env[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(env, k)
			} else {
				env[k] = v
			}
		}
		return env
	}
	if _, err := load(valid); err != nil {
		t.Fatalf("a complete production configuration is refused: %v", err)
	}
	for _, c := range []struct {
		name    string
		changes map[string]string
		want    []string
	}{
		{"no signing key", map[string]string{"JWT_SIGNING_KEY": ""}, []string{"JWT_SIGNING_KEY"}},
		{"the development key", map[string]string{"JWT_SIGNING_KEY": DevJWTSigningKey}, []string{"JWT_SIGNING_KEY"}},
		{"no database", map[string]string{"DATABASE_URL": ""}, []string{"DATABASE_URL"}},
		{"no webhook secret key", map[string]string{"WEBHOOK_SECRET_KEY": ""}, []string{"WEBHOOK_SECRET_KEY must be set in production"}},
		{"the development webhook key", map[string]string{"WEBHOOK_SECRET_KEY": base64.StdEncoding.EncodeToString(devWebhookSecretKey())}, []string{"WEBHOOK_SECRET_KEY"}},
		{"nothing of its own", map[string]string{"DATABASE_URL": "", "JWT_SIGNING_KEY": "", "WEBHOOK_SECRET_KEY": ""},
			[]string{"DATABASE_URL", "JWT_SIGNING_KEY", "WEBHOOK_SECRET_KEY"}},
		{"stripe without webhook secret", map[string]string{"STRIPE_SECRET_KEY": "sk_live_x"}, []string{"STRIPE_WEBHOOK_SECRET"}},
		{"private webhooks", map[string]string{"WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true"}, []string{"WEBHOOKS_ALLOW_PRIVATE_NETWORKS"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(with(c.changes))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not name %s: %v", w, err)
				}
			}
		})
	}
	// What production refuses, development accepts.
	if _, err := load(map[string]string{"JWT_SIGNING_KEY": DevJWTSigningKey, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true", "STRIPE_SECRET_KEY": "sk_test_x"}); err != nil {
		t.Errorf("development refuses its own defaults: %v", err)
	}
}

// PublicKeys names the secrets left at their public development values, which serve warns of.
func TestPublicKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"development defaults", nil, []string{"JWT_SIGNING_KEY", "WEBHOOK_SECRET_KEY"}},
		{"the development key set explicitly", map[string]string{"JWT_SIGNING_KEY": DevJWTSigningKey}, []string{"JWT_SIGNING_KEY", "WEBHOOK_SECRET_KEY"}},
		{"an own signing key only", map[string]string{"JWT_SIGNING_KEY": ownKey}, []string{"WEBHOOK_SECRET_KEY"}},
		{"an own webhook key only", map[string]string{"WEBHOOK_SECRET_KEY": ownKey}, []string{"JWT_SIGNING_KEY"}},
		{"keys of its own", map[string]string{"JWT_SIGNING_KEY": ownKey, "WEBHOOK_SECRET_KEY": ownKey}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.PublicKeys(); !slices.Equal(got, tc.want) {
				t.Errorf("PublicKeys() = %q, want %q", got, tc.want)
			}
		})
	}
}
