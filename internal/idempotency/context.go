package idempotency

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// Key is the claimed key of a phased request, for its handler.
type Key struct {
	store *Store
	rec   *Record
}

type keyCtx struct{}

func withKey(ctx context.Context, k *Key) context.Context { return context.WithValue(ctx, keyCtx{}, k) }

// FromContext returns the phased request's key, if the route has one.
func FromContext(ctx context.Context) (*Key, bool) {
	k, ok := ctx.Value(keyCtx{}).(*Key)
	return k, ok
}

// ID is stable across every retry under the key: derive the keys sent to other systems from
// it, so they deduplicate our retries too.
func (k *Key) ID() string { return k.rec.ID.String() }

// Path is the request path the key was used on.
func (k *Key) Path() string { return k.rec.Path }

// CreatedAt is when the key was first used: past Stripe's 24 hours, a key derived from it
// no longer deduplicates there.
func (k *Key) CreatedAt() time.Time { return k.rec.CreatedAt }

// RecoveryPoint is the last point the request reached, Started if none.
func (k *Key) RecoveryPoint() string { return k.rec.RecoveryPoint }

// RecoveryData decodes the data stored with the recovery point into v.
func (k *Key) RecoveryData(v any) error {
	if len(k.rec.RecoveryData) == 0 {
		return nil
	}
	return json.Unmarshal(k.rec.RecoveryData, v)
}

// Advance records reaching point, with data, in the same transaction as fn's work.
func (k *Key) Advance(ctx context.Context, point string, data any, fn func(pgx.Tx) error) error {
	return k.store.Advance(ctx, k.rec, point, data, fn)
}

type storedKey struct{}

// NoticeStored returns ctx in which the atomic mode notes that it stored the request's
// answer in the unit of work, and a function that tells whether it did. A unit's owner
// (the audit recorder) must then commit even a 4xx answer, or the stored answer is lost.
func NoticeStored(ctx context.Context) (context.Context, func() bool) {
	stored := new(bool)
	return context.WithValue(ctx, storedKey{}, stored), func() bool { return *stored }
}

func markStored(ctx context.Context) {
	if p, ok := ctx.Value(storedKey{}).(*bool); ok {
		*p = true
	}
}
