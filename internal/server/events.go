package server

import (
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

// events builds the event pipeline and answers the webhook endpoints' service for the routes.
// Every consumer is added before the transport is built: the in-process transport must know
// every consumer group that has to see each event.
func (a *App) events(cfg config.Config, outbox *events.Outbox, secrets *secretbox.Box) (*webhook.Endpoints, error) {
	endpoints := &webhook.Endpoints{
		DB: a.DB, Outbox: outbox, Clock: a.Clock, Secrets: secrets,
		RequireHTTPS: cfg.Production(), AllowPrivate: cfg.WebhooksAllowPrivate, Max: cfg.WebhookMaxEndpoints,
	}
	metrics := events.NewMetrics(a.Registry)
	a.Consumers = &events.Consumers{DB: a.DB, Clock: a.Clock, Metrics: metrics, Logger: a.Logger, Tracing: a.Tracing}
	a.Consumers.Add(endpoints.Consumer())
	// Other modules' consumers go here, e.g. a.Consumers.Add(billing's customer sync).

	if len(cfg.KafkaBrokers) > 0 {
		k, err := events.NewKafka(events.KafkaConfig{
			Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic, Partitions: int32(cfg.KafkaTopicPartitions),
			GroupPrefix: cfg.KafkaGroupPrefix, Logger: a.Logger, Tracing: a.Tracing,
		})
		if err != nil {
			return nil, err
		}
		a.Transport, a.kafka = k, k
	} else {
		a.Transport = events.NewInProcess(0, a.Consumers.Names()...)
	}
	a.Relay = &events.Relay{DB: a.DB, Transport: a.Transport, Clock: a.Clock, Metrics: metrics, Logger: a.Logger, Tracing: a.Tracing}
	a.EventsReaper = &events.Reaper{DB: a.DB, Clock: a.Clock, Retention: cfg.EventsRetention}
	a.Deliverer = &webhook.Deliverer{
		DB: a.DB, Clock: a.Clock, Secrets: secrets, Outbox: outbox, Logger: a.Logger, Tracing: a.Tracing,
		Client:      webhook.NewClient(cfg.WebhooksAllowPrivate, cfg.WebhookTimeout),
		Metrics:     webhook.NewMetrics(a.Registry),
		Concurrency: cfg.WebhookConcurrency, PerEndpoint: cfg.WebhookEndpointConcurrency, PerTenant: cfg.WebhookTenantConcurrency,
	}
	return endpoints, nil
}
