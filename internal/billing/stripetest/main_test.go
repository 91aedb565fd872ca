package stripetest

import (
	"os"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopMock()
	os.Exit(code)
}

// newClient is a stripe-go client for url, built the way the service builds its own:
// the API backend pointed at url, no retries, so each test sees every failure. The
// logger is silenced because stripe-go logs every error answer at its default level.
func newClient(url, key string) *client.API {
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(url),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return client.New(key, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
}
