// Package syncgate holds the public types of the syncgate real-time gateway:
// the change Event that backends publish and clients receive, and the
// validation rules for its names. Programs that publish to syncgate import
// this package (and the publisher client) without pulling in the gateway.
//
// The types here are plain values; they are safe to share between goroutines
// once built and not mutated.
package syncgate
