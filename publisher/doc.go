// Package publisher publishes change events to syncgate from Go programs:
// the backend calls it right after saving to its database, and every client
// subscribed to the project and collection receives the event.
//
// One type, two transports:
//
//   - New posts to any gateway node's POST /v1/publish with a publish key,
//     over keep-alive connections, retrying only what certainly was not
//     applied (connection refused, 503), with capped exponential backoff and
//     jitter.
//   - Package publisher/redispub calls the Redis Function the gateway
//     installs, straight into the backplane, with no gateway hop. It returns
//     the same *Publisher (through NewWithTransport); it is a package of its
//     own so that this one depends on the standard library and the event
//     type only, and HTTP publishers do not link go-redis. Code that called
//     publisher.NewRedis(rdb, publisher.RedisConfig{…}) calls
//     redispub.New(rdb, redispub.Config{…}).
//
// Publish sends events and returns their offsets. The helpers build the
// well-known events: DocumentCreated, DocumentUpdated, DocumentDeleted and
// CollectionCleared for document stores, and Insert, Update, Delete and
// SchemaChanged for the database vocabulary. Every event is checked with the
// gateway's own rules (syncgate.Event.Validate and the 256 KiB size limit)
// before it is sent, so a bad event fails fast, with the gateway's message,
// and nothing of its call is published.
//
// Errors from the gateway are *Error values carrying its HTTP status and
// error code. ErrUnavailable marks outages (nothing was published);
// ErrUncertain marks a request that was sent but not answered, which is
// never retried because publishing is not idempotent: the caller decides
// whether a possible duplicate is better than a possible loss.
//
// NewBatcher adds an asynchronous mode that coalesces events enqueued
// within a few milliseconds into one request, with a bounded queue, and a
// Flush and Close that report every event not published.
//
// A Publisher and a Batcher are safe for concurrent use by many goroutines.
package publisher
