//go:build !linux

package wsconn

import "net"

// newRoom cannot tell the send buffer's room on this platform: Socket.Write
// falls back to deadline-bounded writes.
func newRoom(net.Conn) roomer { return nil }
