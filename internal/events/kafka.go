package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kotel"

	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// KafkaConfig configures the Kafka transport.
type KafkaConfig struct {
	Brokers     []string         // KAFKA_BROKERS
	Topic       string           // KAFKA_TOPIC
	Partitions  int32            // partitions of the topic, if this transport creates it (12)
	GroupPrefix string           // consumer group names are GroupPrefix + the consumer's name ("saasbase.")
	Logger      *slog.Logger     // nil: slog.Default()
	Tracing     *tracing.Tracing // nil: off
}

// Kafka publishes events to one topic, keyed by tenant id so that a tenant's events share a
// partition and keep their order, and runs each consumer as a Kafka consumer group.
//
// The producer is idempotent (franz-go's default, with acks from all in-sync replicas), so a
// retried produce request neither duplicates nor reorders records. Duplicates from the relay
// itself (published, then not marked) are recognised by the consumers' inbox.
type Kafka struct {
	cfg      KafkaConfig
	producer *kgo.Client

	mu          sync.Mutex
	topicExists bool
}

// Record headers, so that a consumer can route a record without decoding its value.
const (
	HeaderTenantID  = "tenant-id" // absent on platform events
	HeaderEventID   = "event-id"
	HeaderEventType = "event-type"
)

// NewKafka builds the transport. It does not reach the brokers yet: the topic is created, if
// missing, on the first publish, so that the service starts while Kafka is down (the outbox
// keeps the events meanwhile).
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("events: Kafka needs brokers and a topic")
	}
	if cfg.Partitions < 1 {
		cfg.Partitions = 12
	}
	if cfg.GroupPrefix == "" {
		cfg.GroupPrefix = "saasbase."
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	producer, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("saasbase-relay"),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, kafkaHooks(cfg.Tracing, kotel.ClientID("saasbase-relay"))...)...)
	if err != nil {
		return nil, fmt.Errorf("events: kafka producer: %w", err)
	}
	return &Kafka{cfg: cfg, producer: producer}, nil
}

// Close releases the producer.
func (k *Kafka) Close() { k.producer.Close() }

// Publish produces evs and waits until the brokers have them all.
func (k *Kafka) Publish(ctx context.Context, evs []Event) error {
	if err := k.ensureTopic(ctx); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		r, err := record(e)
		if err != nil {
			return err
		}
		recs[i] = r
	}
	return k.producer.ProduceSync(ctx, recs...).FirstErr()
}

func record(e Event) (*kgo.Record, error) {
	value, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: encode event %s: %w", e.ID, err)
	}
	tenant := e.Tenant().String()
	headers := []kgo.RecordHeader{
		{Key: HeaderEventID, Value: []byte(e.ID.String())},
		{Key: HeaderEventType, Value: []byte(e.Type)},
	}
	if e.TenantID != nil {
		headers = append(headers, kgo.RecordHeader{Key: HeaderTenantID, Value: []byte(tenant)})
	}
	// The record's context is the event's trace, which the tracing hooks continue and put in
	// its headers; never the relay's, whose span they would otherwise end.
	return &kgo.Record{Key: []byte(tenant), Value: value, Headers: headers, Timestamp: e.OccurredAt,
		Context: tracing.WithTraceParent(context.Background(), e.TraceParent)}, nil
}

// ensureTopic creates the topic once, with the configured partitions and the brokers'
// default replication factor; an existing topic is left as it is.
func (k *Kafka) ensureTopic(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.topicExists {
		return nil
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = k.cfg.Topic
	t.NumPartitions = k.cfg.Partitions
	t.ReplicationFactor = -1
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, k.producer)
	if err != nil {
		return fmt.Errorf("events: create topic %s: %w", k.cfg.Topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("events: create topic %s: %w", k.cfg.Topic, err)
		}
	}
	k.topicExists = true
	return nil
}

// Consume runs the consumer group GroupPrefix+group. Partitions are processed side by side,
// each record in order; offsets are committed only for records whose event deliver settled,
// and rebalances wait until a polled batch is done, so a partition never changes hands in the
// middle of one. A new group starts from the oldest retained record: nothing published before
// its first run is missed.
func (k *Kafka) Consume(ctx context.Context, group string, deliver Deliver) error {
	log := k.cfg.Logger.With(slog.String("consumer", group))
	// A group that subscribes to a topic not created yet would only notice it at its next
	// metadata refresh, so the topic comes first.
	for pause := time.Second; ; pause = min(pause*2, 30*time.Second) {
		err := k.ensureTopic(ctx)
		if err == nil {
			break
		}
		log.WarnContext(ctx, "kafka topic not reachable yet; waiting", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.cfg.Brokers...),
		kgo.ClientID("saasbase-" + group),
		kgo.ConsumerGroup(k.cfg.GroupPrefix + group),
		kgo.ConsumeTopics(k.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	}, kafkaHooks(k.cfg.Tracing, kotel.ClientID("saasbase-"+group), kotel.ConsumerGroup(k.cfg.GroupPrefix+group))...)...)
	if err != nil {
		return fmt.Errorf("events: kafka consumer %s: %w", group, err)
	}
	defer cl.CloseAllowingRebalance()
	for {
		// A bounded poll keeps a batch short, so a rebalance waiting for it is not held long.
		fetches := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			log.WarnContext(ctx, "kafka fetch failed", slog.String("topic", topic),
				slog.Int("partition", int(partition)), slog.String("error", err.Error()))
		})
		done := consumeFetches(ctx, fetches, deliver, log)
		if len(done) > 0 {
			// Commit what was settled even while stopping; what was not comes again.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := cl.CommitRecords(cctx, done...); err != nil {
				log.WarnContext(ctx, "kafka commit failed; the records will be delivered again", slog.String("error", err.Error()))
			}
			cancel()
		}
		cl.AllowRebalance()
	}
}

// consumeFetches delivers each partition's records as one batch, partitions side by side,
// and answers the last record of each partition whose batch was settled.
func consumeFetches(ctx context.Context, fetches kgo.Fetches, deliver Deliver, log *slog.Logger) []*kgo.Record {
	var (
		mu   sync.Mutex
		done []*kgo.Record
		wg   sync.WaitGroup
	)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		wg.Go(func() {
			evs := make([]Event, 0, len(p.Records))
			for _, r := range p.Records {
				var e Event
				if err := json.Unmarshal(r.Value, &e); err != nil || e.ID == uuid.Nil {
					// Not an event of ours and never will be: skip it rather than stop the partition.
					log.ErrorContext(ctx, "kafka record is not an event; skipped",
						slog.Int("partition", int(r.Partition)), slog.Int64("offset", r.Offset))
					continue
				}
				if r.Context != nil {
					e.TraceParent = tracing.TraceParent(r.Context) // from its headers, by the tracing hooks
				}
				evs = append(evs, e)
			}
			if deliver(ctx, evs) != nil {
				return // stopping: nothing of this partition's batch is committed, all of it comes again
			}
			mu.Lock()
			done = append(done, p.Records[len(p.Records)-1])
			mu.Unlock()
		})
	})
	wg.Wait()
	return done
}
