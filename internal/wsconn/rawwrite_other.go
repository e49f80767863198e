//go:build !unix

package wsconn

import (
	"net"
	"syscall"
)

// writeNoWait is not available here: every flush is a write bounded by a
// deadline.
func writeNoWait(syscall.RawConn, net.Conn, []byte) (int, bool, error) { return 0, false, nil }

// rawConnOf reports no raw socket on this platform.
func rawConnOf(net.Conn) syscall.RawConn { return nil }
