package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// DefaultSchedule is the pause after each failed attempt: Standard Webhooks' reference
// schedule, 8 attempts over about 27 hours.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}
}

// Deliverer sends pending deliveries. Its workers take deliveries as they free up: a claim
// across tenants (a lease: a claim not recorded in time lapses, and another replica sends it
// again with the same webhook-id) takes each endpoint's oldest due deliveries up to its cap
// of deliveries in flight, and each tenant's up to its share, counting every replica's, so a
// slow or failing receiver holds up only its own tenant. Each attempt is recorded in the
// tenant's transaction.
type Deliverer struct {
	DB      *postgres.DB
	Clock   clock.Clock
	Secrets *secretbox.Box
	Client  *http.Client // NewClient: refuses private addresses, follows no redirect
	Outbox  *events.Outbox
	Metrics *Metrics
	Logger  *slog.Logger
	Tracing *tracing.Tracing // nil: off

	Schedule     []time.Duration // pauses after each failed attempt (DefaultSchedule)
	DisableAfter time.Duration   // an endpoint failing this long without a success is disabled (5 days)
	Concurrency  int             // deliveries in flight on this replica (16)
	PerEndpoint  int             // deliveries in flight to one endpoint, over every replica (1: one at a time, in order)
	PerTenant    int             // deliveries in flight for one tenant, over every replica (4)
	Interval     time.Duration   // how often to look for due deliveries while workers are free (200ms)
	Lease        time.Duration   // how long a claim holds (2m: longer than an attempt may take)
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}

func (d *Deliverer) concurrency() int {
	if d.Concurrency <= 0 {
		return 16
	}
	return d.Concurrency
}

// Run delivers until ctx ends: whenever a worker is free it claims due deliveries for the
// free workers, at once when one finishes, otherwise every Interval. When ctx ends it waits
// for the attempts under way.
func (d *Deliverer) Run(ctx context.Context) {
	interval := d.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	slots := d.concurrency()
	finished := make(chan struct{}, slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	inFlight := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := interval
		if free := slots - inFlight; free > 0 && ctx.Err() == nil {
			claims, err := d.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				d.logger().ErrorContext(ctx, "webhook deliveries: claim failed", slog.String("error", err.Error()))
				wait = max(interval, time.Second) // the database is away: do not log five times a second
			}
			for _, c := range claims {
				inFlight++
				wg.Go(func() {
					d.deliverLogged(ctx, c)
					finished <- struct{}{}
				})
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-finished:
			inFlight--
		case <-timer.C:
		}
		for drained := false; !drained; { // every worker that is free by now
			select {
			case <-finished:
				inFlight--
			default:
				drained = true
			}
		}
	}
}

// RunOnce claims the due deliveries (up to Concurrency), sends them, waits for them, and
// answers how many it sent.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	claims, err := d.claim(ctx, d.concurrency())
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() { d.deliverLogged(ctx, c) })
	}
	wg.Wait()
	return len(claims), nil
}

// claim takes up to n due deliveries.
func (d *Deliverer) claim(ctx context.Context, n int) ([]claim, error) {
	lease := d.Lease
	if lease <= 0 {
		lease = 2 * time.Minute
	}
	perEndpoint, perTenant := d.PerEndpoint, d.PerTenant
	if perEndpoint <= 0 {
		perEndpoint = 1
	}
	if perTenant <= 0 {
		perTenant = 4
	}
	rows, _ := d.DB.Pool.Query(ctx, "SELECT tenant_id, delivery_id FROM app.claim_webhook_deliveries($1, $2, $3, $4, $5)",
		d.Clock.Now(), lease, n, perEndpoint, perTenant)
	claims, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (c claim, err error) {
		err = r.Scan(&c.tenant, &c.delivery)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook_deliveries.claim: %w", err)
	}
	return claims, nil
}

func (d *Deliverer) deliverLogged(ctx context.Context, c claim) {
	if err := d.deliver(ctx, c); err != nil && ctx.Err() == nil {
		d.logger().ErrorContext(ctx, "webhook delivery not recorded; it will be sent again",
			slog.String("tenant_id", c.tenant.String()), slog.String("delivery_id", c.delivery.String()),
			slog.String("error", err.Error()))
	}
}

type claim struct {
	tenant, delivery uuid.UUID
}

// message is what one attempt sends.
type message struct {
	tenant   uuid.UUID
	eventID  uuid.UUID
	endpoint uuid.UUID
	url      string
	body     []byte
	keys     [][]byte // the current secret's, then the previous one's while it still signs
	// traceparent is the trace the delivery was made in ("" untraced): the attempt continues
	// it, and sends the receiver its own traceparent in it.
	traceparent string
}

// result is how one attempt went.
type result struct {
	at       time.Time
	duration time.Duration
	status   int    // 0 without an answer
	outcome  string // outcome* constants
	err      string // "" on success
	// retryAfter is the receiver's Retry-After on a 429 or 503 (0 without one): how long
	// it asks us to wait.
	retryAfter time.Duration
}

// deliver makes one attempt of a claimed delivery and records it. Once begun, an attempt
// runs to its end even while the service stops (the client's timeout bounds it), so that
// what the receiver saw is recorded.
func (d *Deliverer) deliver(ctx context.Context, c claim) error {
	ctx = context.WithoutCancel(ctx)
	m, ok, err := d.load(ctx, c)
	if err != nil {
		return fmt.Errorf("webhook_deliveries.load %s: %w", c.delivery, err)
	}
	if !ok {
		// Nothing to send after all: the endpoint's slot is free again at once, not when
		// the lease lapses.
		err := d.DB.InTenantTx(ctx, c.tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE webhook_deliveries SET claimed_until = NULL WHERE id = $1", c.delivery)
			return err
		})
		if err != nil {
			return fmt.Errorf("webhook_deliveries.release %s: %w", c.delivery, err)
		}
		return nil
	}
	ctx, end := d.trace(ctx, m)
	r := d.send(ctx, m)
	err = d.record(ctx, c, m, r)
	end(r, err)
	if err != nil {
		return fmt.Errorf("webhook_deliveries.record %s: %w", c.delivery, err)
	}
	return nil
}

// load reads what the attempt sends; ok is false if the delivery is no longer pending or its
// endpoint was disabled or deleted since the claim.
func (d *Deliverer) load(ctx context.Context, c claim) (m message, ok bool, err error) {
	var sealed, previous []byte
	b := &pgx.Batch{}
	// The previous secret is read only while it still signs; the clock is ours, not the
	// database's, like every other time here.
	b.Queue(`
		SELECT d.event_id, e.id, e.url, d.body, e.secret_sealed,
		       CASE WHEN e.previous_secret_expires_at > $2 THEN e.previous_secret_sealed END,
		       coalesce(d.traceparent, '')
		  FROM webhook_deliveries d JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
		 WHERE d.id = $1 AND d.status = 'pending' AND e.status = 'enabled'`, c.delivery, d.Clock.Now()).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&m.eventID, &m.endpoint, &m.url, &m.body, &sealed, &previous, &m.traceparent)
			if postgres.IsNoRows(err) {
				return nil
			}
			ok = err == nil
			return err
		})
	if err := d.DB.InTenantRead(ctx, c.tenant, b); err != nil || !ok {
		return m, false, err
	}
	m.tenant = c.tenant
	for _, s := range [][]byte{sealed, previous} {
		if s == nil {
			continue
		}
		key, err := d.Secrets.Open(s, aad(c.tenant, m.endpoint))
		if err != nil {
			return m, false, err
		}
		m.keys = append(m.keys, key)
	}
	return m, true, nil
}

// send makes one attempt. The answer's body is read (a little of it) only so that the
// connection can be reused.
func (d *Deliverer) send(ctx context.Context, m message) result {
	r := result{at: d.Clock.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, bytes.NewReader(m.body))
	if err != nil {
		r.outcome, r.err = outcomeNetwork, "bad endpoint URL"
		return r
	}
	id := m.eventID.String()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "saasbase-webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(r.at.Unix(), 10))
	// Standard Webhooks: one signature per secret, space-separated; a receiver accepts the
	// message if any of them verifies with the secret it holds.
	sigs := make([]string, len(m.keys))
	for i, key := range m.keys {
		sigs[i] = Sign(key, id, r.at, m.body)
	}
	req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	if d.Tracing != nil {
		d.Tracing.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header)) // traceparent
	}

	started := time.Now()
	res, err := d.Client.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
	}
	r.duration = time.Since(started)
	var netErr net.Error
	_, unresolved := errors.AsType[*net.DNSError](err)
	switch {
	case errors.Is(err, ErrForbiddenAddress) || unresolved:
		// One text for both, and no resolver detail: otherwise a tenant could register
		// internal names and read off which exist. The operator's log has the cause.
		r.outcome, r.err = outcomeRefused, noPublicAddress
		if unresolved {
			r.outcome = outcomeNetwork
		}
		d.logger().WarnContext(ctx, "webhook endpoint has no public address", slog.String("tenant_id", m.tenant.String()),
			slog.String("endpoint_id", m.endpoint.String()), slog.String("outcome", r.outcome), slog.String("error", errorText(err)))
	case errors.As(err, &netErr) && netErr.Timeout():
		r.outcome, r.err = outcomeTimeout, "timeout: no answer in time"
	case err != nil:
		r.outcome, r.err = outcomeNetwork, "network error: "+errorText(err)
	case res.StatusCode >= 200 && res.StatusCode < 300:
		r.status, r.outcome = res.StatusCode, outcomeSuccess
	default:
		r.status, r.outcome = res.StatusCode, outcomeHTTPError
		r.err = fmt.Sprintf("answered %d; only 2xx counts as delivered (redirects are not followed)", res.StatusCode)
		if res.StatusCode == http.StatusGone {
			r.err = "answered 410 Gone: the receiver no longer wants deliveries; the endpoint is disabled"
		}
		if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
			r.retryAfter = retryAfter(res.Header.Get("Retry-After"), d.Clock.Now())
		}
	}
	d.Metrics.attempt(r.outcome, r.duration)
	return r
}

// MaxRetryAfter bounds how long a receiver's Retry-After may put off the next attempt: a
// receiver cannot park a delivery for days, past the rest of its schedule.
const MaxRetryAfter = time.Hour

// retryAfter reads a Retry-After value, delay-seconds or an HTTP-date (RFC 9110 10.2.3), as
// a wait from now; 0 if it is absent, malformed or already past.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// noPublicAddress is the attempt's error, as its tenant sees it, when the endpoint's host
// does not resolve or resolves only to addresses a webhook must not reach.
const noPublicAddress = "refused: the endpoint's host does not resolve to a public address"

// errorText is the part of a client error worth showing a tenant: the cause, without our
// request's method and URL around it.
func errorText(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// record stores the attempt and what follows from it: the delivery succeeds, waits for its
// next attempt, or fails for good; the endpoint's run of failures ends, grows, or has lasted
// long enough to disable it.
func (d *Deliverer) record(ctx context.Context, c claim, m message, r result) error {
	var exhausted, disabled bool // for the metrics, once committed
	err := d.DB.InTenantTx(ctx, c.tenant, func(tx pgx.Tx) (err error) {
		var attempts, retryFrom int
		err = tx.QueryRow(ctx, "SELECT attempts, retry_from FROM webhook_deliveries WHERE id = $1 FOR UPDATE", c.delivery).
			Scan(&attempts, &retryFrom)
		if postgres.IsNoRows(err) {
			return nil // the endpoint was deleted meanwhile
		}
		if err != nil {
			return err
		}
		n := attempts + 1
		var status *int
		if r.status != 0 {
			status = &r.status
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, attempted_at, duration_ms, status_code, error)
			VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''))`,
			c.tenant, c.delivery, n, r.at, int(r.duration.Milliseconds()), status, r.err); err != nil {
			return err
		}
		now := d.Clock.Now()
		if r.outcome == outcomeSuccess {
			if _, err := tx.Exec(ctx, "UPDATE webhook_deliveries SET attempts = $2, status = 'succeeded', updated_at = $3, claimed_until = NULL WHERE id = $1",
				c.delivery, n, now); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", m.endpoint)
			return err
		}

		if r.status == http.StatusGone {
			// Standard Webhooks: 410 is the receiver saying it wants no more deliveries. This
			// one stops here, and the endpoint is disabled as a failing one is: the rest wait
			// for an admin to enable it again.
			if _, err := tx.Exec(ctx, "UPDATE webhook_deliveries SET attempts = $2, status = 'failed', updated_at = $3, claimed_until = NULL WHERE id = $1",
				c.delivery, n, now); err != nil {
				return err
			}
			exhausted = true
			disabled, err = d.disable(ctx, tx, c.tenant, m.endpoint, disabledGone, now)
			return err
		}

		schedule := d.Schedule
		if schedule == nil {
			schedule = DefaultSchedule()
		}
		st, next := DeliveryPending, now
		if k := n - retryFrom; k <= len(schedule) {
			// A receiver's Retry-After may put the attempt off, never bring it forward, and
			// at most by MaxRetryAfter.
			next = now.Add(max(schedule[k-1], min(r.retryAfter, MaxRetryAfter)))
		} else {
			st, exhausted = DeliveryFailed, true
		}
		if _, err := tx.Exec(ctx, "UPDATE webhook_deliveries SET attempts = $2, status = $3, next_attempt_at = $4, updated_at = $5, claimed_until = NULL WHERE id = $1",
			c.delivery, n, st, next, now); err != nil {
			return err
		}
		disabled, err = d.failing(ctx, tx, c.tenant, m.endpoint, r.at, now)
		return err
	})
	if err == nil && exhausted {
		d.Metrics.deliveryFailed()
	}
	if err == nil && disabled {
		d.Metrics.endpointDisabled()
	}
	return err
}

// failing extends the endpoint's run of failures and disables it once the run has lasted
// DisableAfter: a receiver that has been down that long is not coming back by itself, and
// its queue would only grow.
func (d *Deliverer) failing(ctx context.Context, tx pgx.Tx, tenant, endpoint uuid.UUID, at, now time.Time) (disabled bool, err error) {
	after := d.DisableAfter
	if after <= 0 {
		after = 5 * 24 * time.Hour
	}
	var since time.Time
	err = tx.QueryRow(ctx, `
		UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
		 WHERE id = $1 RETURNING failing_since`, endpoint, at).Scan(&since)
	if err != nil || now.Sub(since) < after {
		return false, err
	}
	return d.disable(ctx, tx, tenant, endpoint, disabledFailing, now)
}

// Reasons for an automatic disable (disabled_reason).
const (
	disabledFailing = "failing" // no success for DisableAfter
	disabledGone    = "gone"    // the receiver answered 410 Gone
)

// disable turns an enabled endpoint off for reason and says so in an event; disabled is
// false if it was off already.
func (d *Deliverer) disable(ctx context.Context, tx pgx.Tx, tenant, endpoint uuid.UUID, reason string, now time.Time) (disabled bool, err error) {
	e, err := scanEndpoint(tx.QueryRow(ctx, `
		UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $3, updated_at = $2
		 WHERE id = $1 AND status = 'enabled' RETURNING `+endpointColumns, endpoint, now, reason))
	switch {
	case errs.Is(err, errs.NotFound):
		return false, nil // disabled already
	case err != nil:
		return false, err
	}
	d.logger().WarnContext(ctx, "webhook endpoint disabled", slog.String("tenant_id", tenant.String()),
		slog.String("endpoint_id", endpoint.String()), slog.String("reason", reason))
	return true, d.Outbox.Append(ctx, tx, tenant, EventEndpointDisabled, e)
}
