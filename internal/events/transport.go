package events

import "context"

// A Transport carries published events from the relay to consumer groups. Each group sees
// every event at least once, and a tenant's events in the order they were published.
type Transport interface {
	// Publish hands evs over for good: once it returns nil, every consumer group will see
	// each event even if this process dies, so the relay may mark them published.
	Publish(ctx context.Context, evs []Event) error
	// Consume hands the events of the consumer group named group to deliver, in batches,
	// until ctx ends; then it returns nil. A batch holds a tenant's events in the order they
	// were published, and the batches of one tenant come one after the other. An event counts
	// as consumed (its Kafka offset is committed) only once deliver returned nil for its batch.
	Consume(ctx context.Context, group string, deliver Deliver) error
}

// Deliver settles a batch of events for a consumer group, each tenant's in order: each event
// is applied, recognised as a duplicate, or parked for a retry, durably, before it returns
// nil. It returns an error only when ctx ends.
type Deliver func(ctx context.Context, evs []Event) error
