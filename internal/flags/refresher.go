package flags

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Source is where snapshots come from: the Store.
type Source interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
	Version(ctx context.Context) (int64, error)
}

// DefaultPoll is how often a Refresher asks the database for the configuration version
// when Poll is not set.
const DefaultPoll = 5 * time.Second

const (
	// loadTimeout bounds one load or version check, so that a database that stopped
	// answering, rather than refusing, cannot stall the refresher.
	loadTimeout = 5 * time.Second
	// publishTimeout bounds the announcement of a change: an operator's answer waits for it.
	publishTimeout = time.Second
)

// Channel answers the Redis channel of flag changes under the deployment's key prefix
// (REDIS_KEY_PREFIX).
func Channel(prefix string) string { return prefix + "flags:changed" }

// Refresher keeps a Client's snapshot current. After a change commits, the replica that made
// it loads the new version at once and publishes the version on a Redis channel; every
// replica listens and loads it. A version poll of the database covers messages lost while
// Redis or a connection was down. When Redis or PostgreSQL is unreachable, the last snapshot
// keeps serving: a failed load never replaces it.
type Refresher struct {
	Client  *Client
	Source  Source
	Redis   goredis.UniversalClient // nil: the poll alone
	Channel string                  // see Channel
	Poll    time.Duration           // 0: DefaultPoll
	Logger  *slog.Logger

	loadMu sync.Mutex // one load at a time, so snapshots are installed in load order
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Start loads the first snapshot, then keeps it current in the background until Stop or the
// end of ctx. If the first load fails, Start says so but the refresher runs regardless and
// keeps trying, so the service starts (serving flag defaults) while PostgreSQL is away.
func (r *Refresher) Start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	err := r.Refresh(ctx)
	r.done.Add(1)
	go r.poll(ctx)
	if r.Redis != nil {
		r.done.Add(1)
		go r.listen(ctx)
	}
	return err
}

// Stop ends the background work and waits for it. The snapshot stays as it was.
func (r *Refresher) Stop() {
	if r.cancel != nil {
		r.cancel()
		r.done.Wait()
	}
}

// Refresh loads and installs the current snapshot now.
func (r *Refresher) Refresh(ctx context.Context) error { return r.refresh(ctx, nil) }

// Propagate makes a committed change visible: it announces it to the other replicas and
// applies it here, so the replica that made a change serves it from the moment it answers.
// Failures are logged, not returned: the change is committed, and polls will carry it.
func (r *Refresher) Propagate(ctx context.Context, c Change) {
	ctx = context.WithoutCancel(ctx)
	if r.Redis != nil {
		msg, err := json.Marshal(c)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, publishTimeout)
			err = r.Redis.Publish(pctx, r.Channel, msg).Err()
			cancel()
		}
		if err != nil {
			r.log().WarnContext(ctx, "flags: publishing a change failed; other replicas will see it at their next poll",
				slog.Int64("version", c.Version), slog.String("error", err.Error()))
		}
	}
	if err := r.apply(ctx, c); err != nil {
		r.log().WarnContext(ctx, "flags: loading a committed change failed; the next poll will retry",
			slog.Int64("version", c.Version), slog.String("error", err.Error()))
	}
}

// apply brings the snapshot to c's version: by applying c to it when it is at the version
// before, which costs the change and not the whole configuration, or else (a message was
// missed, or c does not apply) by loading the whole snapshot.
func (r *Refresher) apply(ctx context.Context, c Change) error {
	r.loadMu.Lock()
	current := r.Client.Current()
	if current.Version() >= c.Version {
		r.loadMu.Unlock()
		return nil
	}
	if next, err := current.apply(c); err == nil {
		r.Client.set(next)
		r.loadMu.Unlock()
		return nil
	} else if current.Version() == c.Version-1 && !c.bare() {
		r.log().WarnContext(ctx, "flags: a change did not apply to the snapshot; loading it whole",
			slog.Int64("version", c.Version), slog.String("error", err.Error()))
	}
	r.loadMu.Unlock()
	return r.refresh(ctx, func(current int64) bool { return current < c.Version })
}

// refresh loads a snapshot if stale (nil: always) says the current version calls for one.
// The question is asked under the load lock, so of several triggers for one version only the
// first loads.
func (r *Refresher) refresh(ctx context.Context, stale func(current int64) bool) error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if stale != nil && !stale(r.Client.Current().Version()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	s, err := r.Source.Snapshot(ctx)
	if s == nil {
		return err
	}
	if err != nil {
		r.log().ErrorContext(ctx, "flags: snapshot loaded without some flags", slog.String("error", err.Error()))
	}
	r.Client.set(s)
	return nil
}

// check asks the database for its version and loads the snapshot if it differs from ours.
// It differs when we missed a message, or (lower) when the database was restored.
func (r *Refresher) check(ctx context.Context) {
	vctx, cancel := context.WithTimeout(ctx, loadTimeout)
	v, err := r.Source.Version(vctx)
	cancel()
	if err == nil {
		err = r.refresh(ctx, func(current int64) bool { return current != v })
	}
	if err != nil && ctx.Err() == nil {
		r.log().WarnContext(ctx, "flags: refresh failed; serving the last snapshot",
			slog.Int64("version", r.Client.Current().Version()), slog.String("error", err.Error()))
	}
}

func (r *Refresher) poll(ctx context.Context) {
	defer r.done.Done()
	interval := r.Poll
	if interval <= 0 {
		interval = DefaultPoll
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check(ctx)
		}
	}
}

// listen loads each version announced on the channel. go-redis reconnects and resubscribes
// by itself; each (re)subscription is a moment after which messages may have been lost, so
// it triggers a version check rather than waiting for the poll.
func (r *Refresher) listen(ctx context.Context) {
	defer r.done.Done()
	sub := r.Redis.Subscribe(ctx, r.Channel)
	defer sub.Close()
	messages := sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-messages:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *goredis.Subscription:
				if m.Kind == "subscribe" {
					r.check(ctx)
				}
			case *goredis.Message:
				// A change, or (from a replica of an earlier release) a bare version.
				var c Change
				err := json.Unmarshal([]byte(m.Payload), &c)
				if err != nil || c.Version == 0 {
					c = Change{}
					c.Version, err = strconv.ParseInt(m.Payload, 10, 64)
				}
				if err != nil {
					r.log().WarnContext(ctx, "flags: ignoring a malformed change message", slog.Int("bytes", len(m.Payload)))
					continue
				}
				if err := r.apply(ctx, c); err != nil && ctx.Err() == nil {
					r.log().WarnContext(ctx, "flags: loading an announced change failed; the next poll will retry",
						slog.Int64("version", c.Version), slog.String("error", err.Error()))
				}
			}
		}
	}
}

func (r *Refresher) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}
