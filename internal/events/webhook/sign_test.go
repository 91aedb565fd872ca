package webhook_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/events/webhook"
)

// The test vector of the Standard Webhooks reference libraries.
func TestSignStandardWebhooksVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, "1614265330")
	h.Set(webhook.HeaderSignature, "v1,bm90IHRoaXMgb25l "+want) // one of several signatures
	if err := webhook.Verify(secret, h, []byte(body), ts.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := webhook.Verify(secret, h, []byte(body), ts.Add(10*time.Minute), 5*time.Minute); err == nil {
		t.Error("Verify accepted a message older than the tolerance")
	}
	h.Set(webhook.HeaderSignature, want)
	h.Set(webhook.HeaderID, "msg_other")
	if err := webhook.Verify(secret, h, []byte(body), ts, 5*time.Minute); err == nil {
		t.Error("Verify accepted the signature of another message id")
	}
}
