package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Calls that queue behind busy lanes go out as one pipeline, EVALSHA first and, for a
// script Redis has not seen, EVAL; each caller gets its own answer.
func TestPipelinerBatchesAndLoadsTheScript(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	calls := 0
	var mu sync.Mutex
	client.AddHook(hook{pipeline: func(cmds []redis.Cmder) {
		mu.Lock()
		calls += len(cmds)
		mu.Unlock()
	}})
	// A script no Redis has seen: its first EVALSHA answers NOSCRIPT.
	nonce := make([]byte, 8)
	rand.Read(nonce)
	script := redis.NewScript("return {tonumber(ARGV[1]) * 2} -- " + hex.EncodeToString(nonce))

	// One lane, and no direct calls: everything queues and is pipelined.
	p := &pipeliner{client: client, deadlines: &deadlines{timeout: time.Second}, lanes: 1}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			vals, err := p.do(context.Background(), p.deadlines.get(), script, nil, []any{i})
			if err != nil || len(vals) != 1 || vals[0] != int64(2*i) {
				t.Errorf("call %d: %v, %v", i, vals, err)
			}
		})
	}
	wg.Wait()
	if calls < 50 || calls > 100 {
		t.Fatalf("%d commands in pipelines for 50 calls, want 50 plus the EVALs of the first batch", calls)
	}
	// The lane's goroutine lets go of it just after delivering the last answer.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		busy, queued := p.busy, len(p.queue)
		p.mu.Unlock()
		if busy == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanes busy %d, queue %d a second after every call returned", busy, queued)
		}
	}
}

type hook struct{ pipeline func([]redis.Cmder) }

func (hook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipeline(cmds)
		return next(ctx, cmds)
	}
}
