// Package sse serves GET /v1/sse: syncgate's subscriptions as Server-Sent
// Events, for clients that only read (curl -N, the browser's EventSource,
// proxies that pass HTTP but not WebSocket).
//
// A request names its subscriptions in the query (sub=<project>/<collection>,
// repeatable, each optionally @<offset>) and its token in Authorization or
// ?token=. What is wrong with it is answered before any stream starts, with
// the JSON error body of /v1/publish: 400 for the query (bad names, a bad
// offset, a bad Last-Event-ID), 401 for the token (503 when the
// authentication backend failed), 403 for a subscription the token does
// not grant. The checks run in that order, so a malformed request never
// costs a token verification.
//
// The stream is text/event-stream: an `event: subscribed` message per
// subscription, then `event: events` messages, both with the data of the
// WebSocket frame of the same name. Every subscribed and events message
// carries an id, the stream's cursor (cursor.go): the position of every
// subscription, so the browser's own reconnect with Last-Event-ID resumes
// all of them, on any node. A Last-Event-ID wins over the lastEventId
// query parameter, which wins over the @offsets.
//
// The package holds what is SSE's own: the request (request.go), the
// cursor (cursor.go), the event-stream encoding (stream.go) and the
// engine's hub.Transport (transport.go). The session — subscriptions,
// replay and its seam, the queue bound and slow-consumer close, drain,
// token expiry, the node's connection limit — is internal/hub's, the same
// for every transport.
//
// Concurrency: the handler's goroutine opens the subscriptions and then
// waits for the session or the client to end; the session's writer alone
// writes the response, one message per subscribed frame or batch of a
// subscription's events, with a write deadline per batch and one flush per
// batch. An idle stream costs its handler goroutine and net/http's
// background read, both blocked; the session's writer runs only while
// there is something to write (a keep-alive is due, events are queued).
package sse
