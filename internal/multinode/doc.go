// Package multinode holds the tests that run several syncgate gateway nodes
// against real redis-server processes: cross-node delivery, ordering and
// exactly-once under concurrent publishers, resume across nodes, Redis
// restarts and outages, rolling restarts of real gateway processes, and a
// throughput and latency measurement. It has no code of its own.
package multinode
