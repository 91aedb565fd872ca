// Package config reads the service's configuration from the environment, once, at start.
// Every bad or missing value is reported, each in its own clear line.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// DevJWTSigningKey is the development signing seed (base64 of 32 bytes). It is public, so
// production refuses to start with it.
const DevJWTSigningKey = "ZGV2ZWxvcG1lbnQtb25seS1zZWVkLWRvLW5vdC11c2U="

// Config is the whole configuration. Field comments name the variable and its default.
type Config struct {
	Env                  string        // APP_ENV: development | production (development)
	HTTPAddr             string        // HTTP_ADDR (:8080)
	MetricsAddr          string        // METRICS_ADDR: serve /metrics here, not on HTTP_ADDR ("" in development; :9090 in production)
	DebugAddr            string        // DEBUG_ADDR: serve /debug/pprof/ here; keep it off public networks ("": off)
	DatabaseURL          string        // DATABASE_URL: the schema owner (postgres://postgres@127.0.0.1:5432/saasbase?sslmode=disable in development)
	AppDatabaseURL       string        // APP_DATABASE_URL: the runtime role ("": DATABASE_URL as app_runtime)
	DatabaseMaxConns     int32         // DATABASE_MAX_CONNS (20)
	StatementTimeout     time.Duration // DATABASE_STATEMENT_TIMEOUT (5s)
	RedisURL             string        // REDIS_URL (redis://127.0.0.1:6379/0); with addr parameters, a Redis Cluster
	RedisKeyPrefix       string        // REDIS_KEY_PREFIX (saasbase:)
	JWTSigningKey        []byte        // JWT_SIGNING_KEY: base64 of a 32-byte Ed25519 seed (a public dev key in development)
	JWTPreviousKeys      string        // JWT_PREVIOUS_PUBLIC_KEYS: comma-separated base64 public keys ("")
	JWTIssuer            string        // JWT_ISSUER (saasbase)
	JWTAudience          string        // JWT_AUDIENCE (saasbase-api)
	JWTMaxTokenTTL       time.Duration // JWT_MAX_TOKEN_TTL: the longest exp - iat of a token, ours or the CLI's (24h)
	AccessTokenTTL       time.Duration // ACCESS_TOKEN_TTL (15m, at most 15m and at most JWT_MAX_TOKEN_TTL)
	RefreshTokenTTL      time.Duration // REFRESH_TOKEN_TTL (720h)
	StripeSecretKey      string        // STRIPE_SECRET_KEY ("": payments answer 503)
	StripeWebhookSecret  string        // STRIPE_WEBHOOK_SECRET ("")
	StripeAPIURL         string        // STRIPE_API_URL ("": Stripe itself)
	KafkaBrokers         []string      // KAFKA_BROKERS: comma-separated ("": in-process events)
	KafkaTopic           string        // KAFKA_TOPIC (saasbase.events)
	KafkaTopicPartitions int           // KAFKA_TOPIC_PARTITIONS: partitions when the service creates the topic (12)
	KafkaGroupPrefix     string        // KAFKA_GROUP_PREFIX: consumer groups are named this + the consumer's name (saasbase.)
	WebhookSecretKey     []byte        // WEBHOOK_SECRET_KEY: base64 of 32 bytes sealing webhook signing secrets (derived from the development seed in development; required in production)
	TrustedProxies       []netip.Prefix
	CORSAllowedOrigins   []string      // CORS_ALLOWED_ORIGINS ("": no CORS)
	AuthRatePerMinute    int           // AUTH_RATE_LIMIT_PER_MINUTE: each client address's budget of credential-free requests and failed authentications (20)
	PasswordConcurrency  int           // PASSWORD_HASH_CONCURRENCY: passwords hashed or checked at once (GOMAXPROCS)
	RateLimitEnabled     bool          // RATE_LIMIT_ENABLED: false turns rate limiting off, e.g. behind a gateway that does it (true)
	WebhooksAllowPrivate bool          // WEBHOOKS_ALLOW_PRIVATE_NETWORKS (false)
	WebhookTimeout       time.Duration // WEBHOOK_TIMEOUT: time for one delivery attempt, connection included (15s, at most 1m)
	ReadTimeout          time.Duration // HTTP_READ_TIMEOUT (15s)
	WriteTimeout         time.Duration // HTTP_WRITE_TIMEOUT (30s)
	ShutdownTimeout      time.Duration // SHUTDOWN_TIMEOUT: how long in-flight requests may take to finish (25s)
	DrainDelay           time.Duration // SHUTDOWN_DRAIN_DELAY: readyz answers 503 this long before the listener closes (2s)
	LogLevel             string        // LOG_LEVEL: debug | info | warn | error (info)
	FlagsPollInterval    time.Duration // FLAGS_POLL_INTERVAL: how often each replica checks the flag configuration's version (5s)
	JobsEnabled          bool          // JOBS_ENABLED: run the background jobs in this process (true)
	BillingGrace         time.Duration // BILLING_GRACE_PERIOD: how long an ended period still takes late usage (24h)
	EventsRetention      time.Duration // EVENTS_RETENTION: how long published events stay in the event log (960h, at least 960h)

	// A tenant's lifecycle (docs/lifecycle.md).
	TenantDeletionGrace time.Duration // TENANT_DELETION_GRACE: how long a deleted tenant can be restored before its purge (720h)
	AuditRetention      time.Duration // AUDIT_RETENTION: how long audit log entries are kept (9600h: 400 days)
	ExportTmpDir        string        // EXPORT_TMP_DIR: where an export spools its files while it builds the archive (the system's temp dir)
	// Mail: invitations, password resets, email verification (docs/teams.md).
	SMTPURL                        string   // SMTP_URL: smtp://[user:pass@]host[:port][?tls=required] or smtps://... ("": mail is written to the log, links included outside production)
	MailFrom                       string   // MAIL_FROM: the From of every mail (saasbase <no-reply@localhost>)
	AppBaseURL                     string   // APP_BASE_URL: the web app that mailed links open (http://localhost:3000)
	EmailVerificationRequiredPlans []string // EMAIL_VERIFICATION_REQUIRED_PLANS: plans whose users get no tokens before verifying their email ("")
	// Webhook delivery (docs/events.md, "Fairness").
	WebhookConcurrency         int // WEBHOOK_CONCURRENCY: deliveries in flight on a replica (16)
	WebhookEndpointConcurrency int // WEBHOOK_ENDPOINT_CONCURRENCY: deliveries in flight to one endpoint, over every replica; 1 sends in order (1)
	WebhookTenantConcurrency   int // WEBHOOK_TENANT_CONCURRENCY: deliveries in flight for one tenant, over every replica (4)
	WebhookMaxEndpoints        int // WEBHOOK_MAX_ENDPOINTS: a tenant's webhook endpoints at most (20)
}

// Production reports whether APP_ENV is production.
func (c Config) Production() bool { return c.Env == "production" }

// Load reads the configuration through getenv (os.Getenv in main, a map in tests).
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		Env:                  r.oneOf("APP_ENV", "development", "development", "production"),
		HTTPAddr:             r.str("HTTP_ADDR", ":8080"),
		MetricsAddr:          r.str("METRICS_ADDR", ""),
		DebugAddr:            r.str("DEBUG_ADDR", ""),
		AppDatabaseURL:       getenv("APP_DATABASE_URL"),
		DatabaseMaxConns:     int32(r.integer("DATABASE_MAX_CONNS", 20, 1, 10000)),
		StatementTimeout:     r.duration("DATABASE_STATEMENT_TIMEOUT", 5*time.Second),
		RedisURL:             r.str("REDIS_URL", "redis://127.0.0.1:6379/0"),
		RedisKeyPrefix:       r.str("REDIS_KEY_PREFIX", "saasbase:"),
		JWTPreviousKeys:      getenv("JWT_PREVIOUS_PUBLIC_KEYS"),
		JWTIssuer:            r.str("JWT_ISSUER", "saasbase"),
		JWTAudience:          r.str("JWT_AUDIENCE", "saasbase-api"),
		JWTMaxTokenTTL:       r.duration("JWT_MAX_TOKEN_TTL", 24*time.Hour),
		AccessTokenTTL:       r.duration("ACCESS_TOKEN_TTL", 15*time.Minute),
		RefreshTokenTTL:      r.duration("REFRESH_TOKEN_TTL", 720*time.Hour),
		StripeSecretKey:      getenv("STRIPE_SECRET_KEY"),
		StripeWebhookSecret:  getenv("STRIPE_WEBHOOK_SECRET"),
		StripeAPIURL:         getenv("STRIPE_API_URL"),
		KafkaBrokers:         r.list("KAFKA_BROKERS"),
		KafkaTopic:           r.str("KAFKA_TOPIC", "saasbase.events"),
		KafkaTopicPartitions: r.integer("KAFKA_TOPIC_PARTITIONS", 12, 1, 10000),
		KafkaGroupPrefix:     r.str("KAFKA_GROUP_PREFIX", "saasbase."),
		CORSAllowedOrigins:   r.list("CORS_ALLOWED_ORIGINS"),
		AuthRatePerMinute:    r.integer("AUTH_RATE_LIMIT_PER_MINUTE", 20, 1, 1_000_000),
		PasswordConcurrency:  r.integer("PASSWORD_HASH_CONCURRENCY", runtime.GOMAXPROCS(0), 1, 1024),
		RateLimitEnabled:     r.boolean("RATE_LIMIT_ENABLED", true),
		WebhooksAllowPrivate: r.boolean("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", false),
		WebhookTimeout:       r.duration("WEBHOOK_TIMEOUT", 15*time.Second),
		ReadTimeout:          r.duration("HTTP_READ_TIMEOUT", 15*time.Second),
		WriteTimeout:         r.duration("HTTP_WRITE_TIMEOUT", 30*time.Second),
		ShutdownTimeout:      r.duration("SHUTDOWN_TIMEOUT", 25*time.Second),
		DrainDelay:           r.duration("SHUTDOWN_DRAIN_DELAY", 2*time.Second),
		LogLevel:             r.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		FlagsPollInterval:    r.duration("FLAGS_POLL_INTERVAL", 5*time.Second),
		JobsEnabled:          r.boolean("JOBS_ENABLED", true),
		BillingGrace:         r.duration("BILLING_GRACE_PERIOD", 24*time.Hour),
		EventsRetention:      r.duration("EVENTS_RETENTION", 40*24*time.Hour),

		TenantDeletionGrace: r.duration("TENANT_DELETION_GRACE", 30*24*time.Hour),
		AuditRetention:      r.duration("AUDIT_RETENTION", 400*24*time.Hour),
		ExportTmpDir:        r.str("EXPORT_TMP_DIR", os.TempDir()),

		WebhookConcurrency:         r.integer("WEBHOOK_CONCURRENCY", 16, 1, 1000),
		WebhookEndpointConcurrency: r.integer("WEBHOOK_ENDPOINT_CONCURRENCY", 1, 1, 100),
		WebhookTenantConcurrency:   r.integer("WEBHOOK_TENANT_CONCURRENCY", 4, 1, 1000),
		WebhookMaxEndpoints:        r.integer("WEBHOOK_MAX_ENDPOINTS", 20, 1, 1000),
	}
	if c.TenantDeletionGrace < 0 {
		r.fail("TENANT_DELETION_GRACE", "must not be negative")
	}
	if c.AuditRetention < 24*time.Hour {
		r.fail("AUDIT_RETENTION", "must be at least 24h")
	}
	prod := c.Production()
	r.mail(&c)
	if prod && c.MetricsAddr == "" {
		c.MetricsAddr = ":9090" // never on the public listener in production
	}

	c.DatabaseURL = getenv("DATABASE_URL")
	if c.DatabaseURL == "" {
		if prod {
			r.fail("DATABASE_URL", "is required in production")
		}
		c.DatabaseURL = "postgres://postgres@127.0.0.1:5432/saasbase?sslmode=disable"
	}

	key := getenv("JWT_SIGNING_KEY")
	switch {
	case key == "" && prod, key == DevJWTSigningKey && prod:
		r.fail("JWT_SIGNING_KEY", "must be set to a secret of your own in production (base64 of 32 random bytes: openssl rand -base64 32)")
	case key == "":
		key = DevJWTSigningKey
	}
	if seed, err := base64.StdEncoding.DecodeString(key); key != "" && (err != nil || len(seed) != 32) {
		r.fail("JWT_SIGNING_KEY", "must be the base64 of exactly 32 bytes")
	} else {
		c.JWTSigningKey = seed
	}
	if c.JWTMaxTokenTTL <= 0 {
		r.fail("JWT_MAX_TOKEN_TTL", "must be more than 0")
	}
	switch {
	case c.AccessTokenTTL <= 0 || c.AccessTokenTTL > 15*time.Minute:
		r.fail("ACCESS_TOKEN_TTL", "must be more than 0 and at most 15m")
	case c.AccessTokenTTL > c.JWTMaxTokenTTL && c.JWTMaxTokenTTL > 0:
		// The verifier would refuse every token the service issues.
		r.fail("ACCESS_TOKEN_TTL", fmt.Sprintf("must be at most JWT_MAX_TOKEN_TTL (%s)", c.JWTMaxTokenTTL))
	}
	if prod && c.StripeSecretKey != "" && c.StripeWebhookSecret == "" {
		r.fail("STRIPE_WEBHOOK_SECRET", "is required in production when STRIPE_SECRET_KEY is set")
	}
	c.WebhookSecretKey = r.webhookSecretKey(prod)
	if prod && c.WebhooksAllowPrivate {
		r.fail("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "must not be true in production")
	}
	// An attempt must end well inside the deliverer's 2-minute claim, or another replica
	// would send the same delivery while this one still waits.
	if c.WebhookTimeout <= 0 || c.WebhookTimeout > time.Minute {
		r.fail("WEBHOOK_TIMEOUT", "must be more than 0 and at most 1m")
	}
	// GET /v1/events promises a tenant its events of the last 30 days, and a billing period's
	// quota-threshold events (up to 38 days: a month and a merged sliver) are how the service
	// remembers what it announced in it: see events.MinRetention.
	if c.EventsRetention < 40*24*time.Hour {
		r.fail("EVENTS_RETENTION", "must be at least 960h (40 days)")
	}
	if p, err := httpx.ParseCIDRs(getenv("TRUSTED_PROXIES")); err != nil {
		r.fail("TRUSTED_PROXIES", err.Error())
	} else {
		c.TrustedProxies = p
	}
	return c, errors.Join(r.errs...)
}

// mail reads the mail block: SMTP_URL's form (the mailer parses it in full), MAIL_FROM and
// APP_BASE_URL.
func (r *reader) mail(c *Config) {
	c.SMTPURL = r.getenv("SMTP_URL")
	c.MailFrom = r.str("MAIL_FROM", "saasbase <no-reply@localhost>")
	c.AppBaseURL = r.str("APP_BASE_URL", "http://localhost:3000")
	c.EmailVerificationRequiredPlans = r.list("EMAIL_VERIFICATION_REQUIRED_PLANS")
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			r.fail("SMTP_URL", "must be smtp://[user:pass@]host[:port] or smtps://..., e.g. smtp://127.0.0.1:1025")
		}
	}
	if a, err := mail.ParseAddress(c.MailFrom); err != nil || !strings.Contains(a.Address, "@") {
		r.fail("MAIL_FROM", "must be an address such as no-reply@example.com or \"Acme <no-reply@example.com>\"")
	}
	if u, err := url.Parse(c.AppBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("APP_BASE_URL", "must be an http or https URL, e.g. https://app.example.com")
	}
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(name, msg string) {
	r.errs = append(r.errs, fmt.Errorf("%s %s", name, msg))
}

func (r *reader) str(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := r.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, fmt.Sprintf("must be one of %s, not %q", strings.Join(allowed, ", "), v))
	return def
}

func (r *reader) integer(name string, def, min, max int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, fmt.Sprintf("must be an integer from %d to %d, not %q", min, max, v))
		return def
	}
	return n
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(name, fmt.Sprintf("must be a duration such as 5s or 15m, not %q", v))
		return def
	}
	return d
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, fmt.Sprintf("must be true or false, not %q", v))
		return def
	}
	return b
}

func (r *reader) list(name string) []string {
	var out []string
	for _, f := range strings.Split(r.getenv(name), ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// devWebhookSecretKey is the development key sealing webhook secrets: derived from the public
// development JWT seed, so it is public too, and production refuses it.
func devWebhookSecretKey() []byte {
	sum := sha256.Sum256([]byte("saasbase webhook secret key, development only\x00" + DevJWTSigningKey))
	return sum[:]
}

func (r *reader) webhookSecretKey(prod bool) []byte {
	v := r.getenv("WEBHOOK_SECRET_KEY")
	if v == "" {
		if prod {
			r.fail("WEBHOOK_SECRET_KEY", "must be set in production (base64 of 32 random bytes: openssl rand -base64 32)")
		}
		return devWebhookSecretKey()
	}
	key, err := base64.StdEncoding.DecodeString(v)
	switch {
	case err != nil || len(key) != 32:
		r.fail("WEBHOOK_SECRET_KEY", "must be the base64 of exactly 32 bytes")
	case prod && bytes.Equal(key, devWebhookSecretKey()):
		r.fail("WEBHOOK_SECRET_KEY", "must be a secret of your own in production, not the development key")
	}
	return key
}

// PublicKeys names the secrets that hold their public development values (JWT_SIGNING_KEY,
// WEBHOOK_SECRET_KEY): with them anyone can mint tokens the service accepts or open the
// webhook secrets it stores. Load refuses them in production; in development serve warns.
func (c Config) PublicKeys() []string {
	var names []string
	if seed, _ := base64.StdEncoding.DecodeString(DevJWTSigningKey); bytes.Equal(c.JWTSigningKey, seed) {
		names = append(names, "JWT_SIGNING_KEY")
	}
	if bytes.Equal(c.WebhookSecretKey, devWebhookSecretKey()) {
		names = append(names, "WEBHOOK_SECRET_KEY")
	}
	return names
}
