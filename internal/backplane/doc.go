// Package backplane joins gateway nodes: it stores each stream's history,
// assigns offsets, and delivers every published event to the nodes whose
// clients subscribed to its stream.
//
// A stream is a (project, collection) pair, or (project, "*") for the
// project-wide stream that every event of the project is also appended to.
// An event has one offset per stream it is in; both are strictly increasing.
//
// Two implementations sit behind the Backplane interface: Memory (one node,
// development and tests) and Redis (many nodes). Implementations deliver live
// events to a Receiver, one stream's events in offset order, never holding
// a backplane lock while calling it (redis.go writes down the lock order).
// All methods are safe for concurrent use.
package backplane
