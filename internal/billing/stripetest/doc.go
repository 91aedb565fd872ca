// Package stripetest provides two Stripe doubles for tests.
//
// StartMock runs the real stripe-mock binary: it checks that requests have the shape
// Stripe's OpenAPI spec wants, but it is stateless (see StartMock for what that means).
// Use it to test that our requests are well formed.
//
// Fake is an in-process, stateful fake that behaves like Stripe where our billing
// code's correctness depends on it: idempotency keys, card declines, the refund cap,
// search by metadata and the identifier check on meter events. It counts what it sees,
// and it can fail on command. Use it for exactly-once, retry and decline tests.
//
// Both want a stripe-go client pointed at their URL, with retries off so that a test
// sees each failure:
//
//	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
//		URL:               stripe.String(url),
//		MaxNetworkRetries: stripe.Int64(0),
//		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
//	})
//	sc := client.New("sk_test_123", &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
//
// Neither stripe.NewBackends (it always targets api.stripe.com) nor client.New with nil
// backends (it uses the global ones) points the client at a test server.
package stripetest
