// Package webhook delivers a tenant's events to the HTTPS endpoints the tenant registers,
// following the Standard Webhooks convention (https://www.standardwebhooks.com): each request
// carries webhook-id (the event id, the same on every retry, so receivers can deduplicate),
// webhook-timestamp and webhook-signature (v1, HMAC-SHA256 with the endpoint's secret).
//
// The fan-out is an events.Consumer (Endpoints.Consumer): it records one delivery per
// matching endpoint in the event's tenant transaction, once per event. The Deliverer sends
// them, retrying for about a day, and disables an endpoint that keeps failing. See
// docs/events.md.
package webhook

import (
	"time"

	"github.com/google/uuid"
)

// Endpoint statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Endpoint is a tenant's webhook endpoint.
type Endpoint struct {
	ID             uuid.UUID  `json:"id"`
	URL            string     `json:"url"`
	EventTypes     []string   `json:"event_types"`
	Status         string     `json:"status"`
	DisabledReason *string    `json:"disabled_reason"` // after an automatic disable: "failing", or "gone" (the receiver answered 410)
	FailingSince   *time.Time `json:"failing_since"`   // start of the current run of failed attempts
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// Secret is the signing secret, "whsec_" + base64 of the HMAC key: in the creation answer
	// only, and never stored in the clear.
	Secret string `json:"secret,omitempty"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed" // every attempt of its schedule failed
)

// Delivery is one event on its way to one endpoint, with its attempts.
type Delivery struct {
	ID            uuid.UUID  `json:"id"`
	EndpointID    uuid.UUID  `json:"endpoint_id"`
	EventID       uuid.UUID  `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	NextAttemptAt *time.Time `json:"next_attempt_at"` // null unless pending
	Attempts      []Attempt  `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Attempt is one request sent for a delivery.
type Attempt struct {
	Attempt     int       `json:"attempt"`
	AttemptedAt time.Time `json:"attempted_at"`
	DurationMS  int       `json:"duration_ms"`
	StatusCode  *int      `json:"status_code"` // null when no answer came
	Error       *string   `json:"error"`       // null on success
}
