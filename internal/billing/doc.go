// Package billing is the parent of the billing modules; it holds no code of its own. Each
// room is a package with its handlers, service, store, jobs and tests, and the imports
// between them go one way:
//
//	invoicing → metering → plans
//	invoicing → payments
//
// plans is the catalog of plans (prices, rate limits, quotas). metering holds meters, usage
// ingestion and queries, quotas and entitlements, and the api_requests counter. invoicing
// holds billing periods, invoices and the period closer, the collection of finalized
// invoices, and usage reported to Stripe. payments holds payments and refunds on Stripe,
// Stripe's webhooks, the completer of interrupted payments, and the tenants' Stripe
// customers. pricing is pure maths (charges, invoice lines, rounding, billing periods), and
// stripetest has Stripe doubles for tests (stripe-mock, a counting fake).
package billing
