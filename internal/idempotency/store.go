package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Request identifies a request under a key: the key's scope and the request's fingerprint.
type Request struct {
	TenantID  uuid.UUID
	Principal uuid.UUID
	Key       string
	Method    string
	Path      string
	BodyHash  [sha256.Size]byte
}

// Record is a key's row.
type Record struct {
	Request
	ID            uuid.UUID  // stable across retries: derive keys for other systems from it
	LockedAt      *time.Time // when the holder took or last renewed the lock: its fencing token
	RecoveryPoint string
	RecoveryData  json.RawMessage
	CreatedAt     time.Time
	Response      *Response
}

// Response is a stored answer.
type Response struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header"`
	Body   []byte            `json:"-"`
}

// Started is the recovery point of a key whose request has done nothing yet.
const Started = "started"

// Store keeps keys in PostgreSQL.
type Store struct {
	DB          *postgres.DB
	Clock       clock.Clock
	TTL         time.Duration // how long a key is kept (at least 24 h)
	LockTimeout time.Duration // a lock older than this is abandoned and may be taken over
}

// ErrLockLost answers a request whose lock on its key went stale and was taken over by a
// retry: what it did since is not recorded, and the retry's outcome stands.
var ErrLockLost = errs.E(errs.Conflict, "idempotency_key_in_use",
	"another request under this Idempotency-Key took it over while this one was running; retry to get its answer")

// lockTime is now as PostgreSQL stores it, to the microsecond, so that the holder's copy of
// locked_at matches the row's exactly: the lock's time is the fencing token every later
// write of the holder must present.
func lockTime(c clock.Clock) time.Time { return c.Now().Truncate(time.Microsecond) }

// fenced answers ErrLockLost when a holder's write found its lock gone.
func fenced(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return ErrLockLost
	}
	return err
}

// outcome is what claiming a key found.
type outcome uint8

const (
	claimed  outcome = iota + 1 // the caller runs the request
	replay                      // an answer is stored: send it
	inFlight                    // another request holds the key
	mismatch                    // the key was used for another request
)

// claimSQL inserts the key unless a concurrent request holds it. The transaction-scoped
// advisory lock marks "a request is deciding about this key right now": without it, a second
// INSERT would wait on the first's uncommitted row instead of answering 409 at once.
const claimSQL = `
WITH l AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended($1::uuid::text || '/' || $2::uuid::text || '/' || $3::text, 0)) AS locked
), ins AS (
    INSERT INTO idempotency_keys (tenant_id, principal_id, key, id, method, path, body_sha256, locked_at, created_at, expires_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9 FROM l WHERE l.locked
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT l.locked, EXISTS (SELECT FROM ins) FROM l`

// queueLookup queues the atomic mode's claim of req into b: the same advisory lock, then a
// read of the key's row if there is one, as two statements, so the read's snapshot is taken
// after the lock is held and sees a first request that committed meanwhile. A new key's row
// is inserted only at the end, with its answer, in the transaction that holds the lock, so it
// is written once and never seen unanswered.
func queueLookup(b *pgx.Batch, req Request, locked, exists *bool) {
	b.Queue("SELECT pg_try_advisory_xact_lock(hashtextextended($1::uuid::text || '/' || $2::uuid::text || '/' || $3::text, 0))",
		req.TenantID, req.Principal, req.Key).
		QueryRow(func(row pgx.Row) error { return row.Scan(locked) })
	b.Queue("SELECT EXISTS (SELECT FROM idempotency_keys WHERE principal_id = $1 AND key = $2)", req.Principal, req.Key).
		QueryRow(func(row pgx.Row) error { return row.Scan(exists) })
}

// insertCompleted stores a new key with its answer, in the claiming transaction.
func (s *Store) insertCompleted(ctx context.Context, tx pgx.Tx, req Request, now time.Time, res Response) error {
	header, err := json.Marshal(res.Header)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO idempotency_keys (tenant_id, principal_id, key, id, method, path, body_sha256,
		                              response_status, response_headers, response_body, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		req.TenantID, req.Principal, req.Key, uuid.Must(uuid.NewV7()), req.Method, req.Path, req.BodyHash[:],
		res.Status, header, res.Body, now, now.Add(s.TTL))
	return err
}

// queueClaim queues the claim of req into b, reporting into locked and inserted.
func (s *Store) queueClaim(b *pgx.Batch, req Request, id uuid.UUID, now time.Time, locked, inserted *bool) {
	b.Queue(claimSQL, req.TenantID, req.Principal, req.Key, id, req.Method, req.Path, req.BodyHash[:], now, now.Add(s.TTL)).
		QueryRow(func(row pgx.Row) error { return row.Scan(locked, inserted) })
}

// resolve decides about a key that exists, in tx: replay its answer, refuse a mismatch or a
// fresh lock, or take over a stale or released lock.
func (s *Store) resolve(ctx context.Context, tx pgx.Tx, req Request, now time.Time) (outcome, Record, error) {
	rec := Record{Request: req}
	var (
		bodyHash []byte
		status   *int
		header   []byte
		body     []byte
	)
	err := tx.QueryRow(ctx, `
		SELECT id, method, path, body_sha256, locked_at, recovery_point, recovery_data, created_at,
		       response_status, response_headers, response_body
		  FROM idempotency_keys
		 WHERE principal_id = $1 AND key = $2
		   FOR UPDATE`, req.Principal, req.Key).
		Scan(&rec.ID, &rec.Method, &rec.Path, &bodyHash, &rec.LockedAt, &rec.RecoveryPoint, &rec.RecoveryData, &rec.CreatedAt,
			&status, &header, &body)
	if err != nil {
		return 0, rec, err
	}
	if rec.Method != req.Method || rec.Path != req.Path || string(bodyHash) != string(req.BodyHash[:]) {
		return mismatch, rec, nil
	}
	if status != nil {
		rec.Response = &Response{Status: *status, Body: body}
		if err := json.Unmarshal(header, &rec.Response.Header); err != nil {
			return 0, rec, err
		}
		return replay, rec, nil
	}
	if rec.LockedAt != nil && now.Sub(*rec.LockedAt) < s.LockTimeout {
		return inFlight, rec, nil
	}
	// Released after a failure, or abandoned by a crashed request: this request takes over
	// and resumes from the recovery point.
	if _, err := tx.Exec(ctx, "UPDATE idempotency_keys SET locked_at = $3 WHERE principal_id = $1 AND key = $2",
		req.Principal, req.Key, now); err != nil {
		return 0, rec, err
	}
	rec.LockedAt = &now
	return claimed, rec, nil
}

// claimIn claims req inside tx (the transaction has begun; the claim statement is its first).
func (s *Store) claimIn(ctx context.Context, tx pgx.Tx, req Request, id uuid.UUID, now time.Time, locked, inserted bool) (outcome, Record, error) {
	switch {
	case !locked:
		return inFlight, Record{Request: req}, nil
	case inserted:
		return claimed, Record{Request: req, ID: id, LockedAt: &now, RecoveryPoint: Started, CreatedAt: now}, nil
	}
	return s.resolve(ctx, tx, req, now)
}

// Claim claims req in a transaction of its own, which commits: the phased mode.
func (s *Store) Claim(ctx context.Context, req Request) (outcome, Record, error) {
	var (
		out              outcome
		rec              Record
		locked, inserted bool
	)
	now := lockTime(s.Clock)
	id := uuid.Must(uuid.NewV7())
	b := &pgx.Batch{}
	s.queueClaim(b, req, id, now, &locked, &inserted)
	err := s.DB.InTenantTxBatch(ctx, req.TenantID, b, func(tx pgx.Tx) (err error) {
		out, rec, err = s.claimIn(ctx, tx, req, id, now, locked, inserted)
		return err
	})
	if err != nil {
		// The key is the client's own string: the principal names it well enough.
		return 0, Record{}, fmt.Errorf("idempotency.claim tenant %s principal %s: %w", req.TenantID, req.Principal, err)
	}
	return out, rec, nil
}

// complete stores the answer and releases the lock, if rec still holds it.
func complete(ctx context.Context, tx pgx.Tx, rec *Record, res Response) error {
	header, err := json.Marshal(res.Header)
	if err != nil {
		return err
	}
	return fenced(tx.Exec(ctx, `
		UPDATE idempotency_keys
		   SET response_status = $3, response_headers = $4, response_body = $5, locked_at = NULL
		 WHERE principal_id = $1 AND key = $2 AND locked_at = $6`,
		rec.Principal, rec.Key, res.Status, header, res.Body, rec.LockedAt))
}

// Complete stores the answer of a phased request.
func (s *Store) Complete(ctx context.Context, rec *Record, res Response) error {
	err := s.DB.InTenantTx(ctx, rec.TenantID, func(tx pgx.Tx) error { return complete(ctx, tx, rec, res) })
	if err != nil {
		return fmt.Errorf("idempotency.complete %s: %w", rec.ID, err)
	}
	return nil
}

// Release lets a retry run again after an answer that is not stored (a 5xx, a 409, a 429). A
// key that has done nothing yet is deleted; one past a recovery point is only unlocked, so a
// retry resumes instead of repeating effects.
func (s *Store) Release(ctx context.Context, rec *Record) error {
	err := s.DB.InTenantTx(ctx, rec.TenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			DELETE FROM idempotency_keys
			 WHERE principal_id = $1 AND key = $2 AND locked_at = $3 AND recovery_point = 'started' AND response_status IS NULL`,
			rec.Principal, rec.Key, rec.LockedAt)
		if err != nil || tag.RowsAffected() > 0 {
			return err
		}
		return fenced(tx.Exec(ctx, `
			UPDATE idempotency_keys SET locked_at = NULL
			 WHERE principal_id = $1 AND key = $2 AND locked_at = $3 AND response_status IS NULL`,
			rec.Principal, rec.Key, rec.LockedAt))
	})
	if err != nil {
		return fmt.Errorf("idempotency.release %s: %w", rec.ID, err)
	}
	return nil
}

// Advance records that a phased request reached point, in the same transaction as fn's work
// on the way there, so the point is recorded exactly when that work is done. It renews the
// lock; a request whose lock was taken over meanwhile gets ErrLockLost, and fn's work is
// rolled back with it.
func (s *Store) Advance(ctx context.Context, rec *Record, point string, data any, fn func(pgx.Tx) error) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("idempotency.advance %s to %s: %w", rec.ID, point, err)
	}
	renewed := lockTime(s.Clock)
	err = s.DB.InTenantTx(ctx, rec.TenantID, func(tx pgx.Tx) error {
		if fn != nil {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return fenced(tx.Exec(ctx, `
			UPDATE idempotency_keys SET recovery_point = $3, recovery_data = $4, locked_at = $5
			 WHERE principal_id = $1 AND key = $2 AND locked_at = $6`,
			rec.Principal, rec.Key, point, raw, renewed, rec.LockedAt))
	})
	if err != nil {
		return fmt.Errorf("idempotency.advance %s to %s: %w", rec.ID, point, err)
	}
	rec.RecoveryPoint, rec.RecoveryData, rec.LockedAt = point, raw, &renewed
	return nil
}

// Reap deletes keys past their expiry, in batches, and answers how many it deleted. Several
// replicas may reap at once.
func (s *Store) Reap(ctx context.Context) (int, error) {
	n, err := s.DB.Reap(ctx, "app.reap_idempotency_keys", s.Clock.Now(), 0)
	if err != nil {
		return n, fmt.Errorf("idempotency.reap: %w", err)
	}
	return n, nil
}

// Abandoned lists keys on paths starting with prefix whose request stopped past a recovery
// point and whose lock is stale: work for a completer.
func (s *Store) Abandoned(ctx context.Context, prefix string, limit int) ([]Request, error) {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id, principal_id, key FROM app.abandoned_idempotency_keys($1, $2, $3)",
		prefix, s.Clock.Now().Add(-s.LockTimeout), limit)
	reqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Request, error) {
		var req Request
		err := r.Scan(&req.TenantID, &req.Principal, &req.Key)
		return req, err
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency.abandoned %q: %w", prefix, err)
	}
	return reqs, nil
}

// Resume takes over an abandoned key for a completer, as a retry of the request would. It
// answers nil if the key is held by a live request, or finished, meanwhile.
func (s *Store) Resume(ctx context.Context, req Request) (*Key, error) {
	var key *Key
	err := s.DB.InTenantTx(ctx, req.TenantID, func(tx pgx.Tx) error {
		var method, path string
		var hash []byte
		err := tx.QueryRow(ctx, "SELECT method, path, body_sha256 FROM idempotency_keys WHERE principal_id = $1 AND key = $2",
			req.Principal, req.Key).Scan(&method, &path, &hash)
		if err != nil {
			return err
		}
		req.Method, req.Path = method, path
		copy(req.BodyHash[:], hash)
		out, rec, err := s.resolve(ctx, tx, req, lockTime(s.Clock))
		if err == nil && out == claimed {
			key = &Key{store: s, rec: &rec}
		}
		return err
	})
	if postgres.IsNoRows(err) {
		return nil, nil // reaped meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency.resume tenant %s principal %s: %w", req.TenantID, req.Principal, err)
	}
	return key, nil
}

// Unlock releases a key without storing an answer: the completer's last step, after which a
// retry of the request answers from the finished work.
func (s *Store) Unlock(ctx context.Context, k *Key) error {
	err := s.DB.InTenantTx(ctx, k.rec.TenantID, func(tx pgx.Tx) error {
		return fenced(tx.Exec(ctx, "UPDATE idempotency_keys SET locked_at = NULL WHERE principal_id = $1 AND key = $2 AND locked_at = $3",
			k.rec.Principal, k.rec.Key, k.rec.LockedAt))
	})
	if err != nil {
		return fmt.Errorf("idempotency.unlock %s: %w", k.rec.ID, err)
	}
	return nil
}

// Internal claims a key for work the service does on its own behalf (collecting an invoice),
// with the guarantees a client's key has. It answers the key to run under; or the stored
// answer of a run that finished; or neither while another run holds the key.
func (s *Store) Internal(ctx context.Context, req Request) (*Key, *Response, error) {
	out, rec, err := s.Claim(ctx, req)
	switch {
	case err != nil:
		return nil, nil, err
	case out == claimed:
		return &Key{store: s, rec: &rec}, nil, nil
	case out == replay:
		return nil, rec.Response, nil
	case out == mismatch:
		return nil, nil, fmt.Errorf("idempotency: internal key %q reused for another request", req.Key)
	}
	return nil, nil, nil // in flight
}

// Finish stores an internal run's answer and releases its key.
func (s *Store) Finish(ctx context.Context, k *Key, res Response) error {
	return s.Complete(ctx, k.rec, res)
}

// Abandon releases an internal run's key without an answer, for a retry later.
func (s *Store) Abandon(ctx context.Context, k *Key) error {
	return s.Release(ctx, k.rec)
}
