package stripetest

import "github.com/saasbase/saasbase/internal/platform/config"

// WebhookSecret is the Stripe webhook signing secret that Configure gives the service.
const WebhookSecret = "whsec_test_secret"

// Configure points the service's payments at a Stripe double at url (StartMock's or a
// Fake's), with a test secret key and WebhookSecret: pass it to servertest.New.
func Configure(url string) func(*config.Config) {
	return func(c *config.Config) {
		c.StripeSecretKey, c.StripeAPIURL, c.StripeWebhookSecret = "sk_test_123", url, WebhookSecret
	}
}
