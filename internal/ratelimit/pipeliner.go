package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// pipeliner sends the script calls of concurrent decisions to Redis together. Up to lanes
// round trips are out at once; a call that finds them all busy waits for the next free one,
// which carries the calls queued meanwhile, oldest first, as one pipeline. Each decision
// still costs one round trip, and a lone decision is sent at once; under load the pipelines
// deepen by themselves, and one write and one read serve a whole batch, where a call apiece
// would spend most of its time in system calls, on both sides. (Envoy's rate limit service
// pipelines its Redis calls for the same reason.)
//
// It also holds the hard timeout whatever the client's configuration: a queued caller waits
// for its answer or its deadline, whichever comes first, never for the network. A caller
// that finds a free lane sends its own call, on the caller's goroutine, only if the client
// stops at the context's deadline (direct); otherwise a goroutine sends it.
type pipeliner struct {
	client    redis.UniversalClient
	deadlines *deadlines
	direct    bool // the client honours context deadlines (ContextTimeoutEnabled)
	// lanes is how many round trips may be out at once: enough to keep every core busy
	// (4 per GOMAXPROCS), and the most connections a stalled Redis can hold.
	lanes int

	mu    sync.Mutex
	queue []*op
	busy  int // lanes in use
}

// op is one script call.
type op struct {
	script *redis.Script
	keys   []string
	args   []any

	vals      []int64
	err       error
	done      chan struct{} // closed once vals and err are set
	abandoned atomic.Bool   // its caller stopped waiting: not worth sending
}

// callContext is a direct call's context: the shared deadline, with the request's values,
// which the client's hooks (tracing) may look for.
type callContext struct {
	context.Context // the deadline
	values          context.Context
}

func (c callContext) Value(key any) any { return c.values.Value(key) }

var errTimeout = timeoutError{}

// timeoutError is a call that got no answer within the hard timeout.
type timeoutError struct{}

func (timeoutError) Error() string   { return "ratelimit: Redis did not answer in time" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// do runs one script call and waits for its answer until deadline at most.
func (p *pipeliner) do(ctx, deadline context.Context, s *redis.Script, keys []string, args []any) ([]int64, error) {
	p.mu.Lock()
	if p.busy < p.lanes && len(p.queue) == 0 && p.direct {
		p.busy++
		p.mu.Unlock()
		vals, err := s.Run(callContext{deadline, ctx}, p.client, keys, args...).Int64Slice()
		p.release()
		return vals, err
	}
	o := &op{script: s, keys: keys, args: args, done: make(chan struct{})}
	p.queue = append(p.queue, o)
	var batch []*op
	if p.busy < p.lanes {
		p.busy++
		batch = p.take()
	}
	p.mu.Unlock()
	if batch != nil {
		go p.flush(batch)
	}

	select {
	case <-o.done:
		return o.vals, o.err
	case <-deadline.Done():
		o.abandoned.Store(true)
		return nil, errTimeout
	case <-ctx.Done():
		o.abandoned.Store(true)
		return nil, ctx.Err()
	}
}

// release frees a direct call's lane, for the calls queued meanwhile if there are any.
func (p *pipeliner) release() {
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.busy--
		p.mu.Unlock()
		return
	}
	batch := p.take()
	p.mu.Unlock()
	go p.flush(batch)
}

// maxBatch caps a pipeline, so that a burst of calls is shared by the free lanes and the
// first answers come back while the last calls are still being sent.
const maxBatch = 32

// take takes the next batch off the queue, oldest first; p.mu is held.
func (p *pipeliner) take() []*op {
	k := min(len(p.queue), maxBatch)
	batch := p.queue[:k:k]
	if p.queue = p.queue[k:]; len(p.queue) == 0 {
		p.queue = nil
	}
	return batch
}

// flush sends batches on one lane until the queue is empty.
func (p *pipeliner) flush(batch []*op) {
	for {
		p.exec(batch)
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.busy--
			p.mu.Unlock()
			return
		}
		batch = p.take()
		p.mu.Unlock()
	}
}

// exec sends one batch as a pipeline of EVALSHA, and those Redis does not know (NOSCRIPT:
// restarted, or its script cache flushed) again as EVAL, which caches the script.
func (p *pipeliner) exec(batch []*op) {
	// The deadline frees this goroutine from a stalled Redis when the client honours
	// contexts; the callers have stopped waiting by then either way.
	ctx := p.deadlines.get()
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, o := range batch {
		if !o.abandoned.Load() {
			cmds[i] = o.script.EvalSha(ctx, pipe, o.keys, o.args...)
		}
	}
	if pipe.Len() > 0 {
		pipe.Exec(ctx) // each command carries its own error
	}
	var retry redis.Pipeliner
	for i, o := range batch {
		if cmds[i] != nil && redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
			if retry == nil {
				retry = p.client.Pipeline()
			}
			cmds[i] = o.script.Eval(ctx, retry, o.keys, o.args...)
		}
	}
	if retry != nil {
		retry.Exec(ctx)
	}

	for i, o := range batch {
		if cmds[i] == nil {
			o.err = errTimeout
		} else {
			o.vals, o.err = cmds[i].Int64Slice()
		}
		close(o.done)
	}
}
