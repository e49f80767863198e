package wsconn

import (
	"net"
	"syscall"
	"unsafe"
)

// tcpRoom reports the room in a TCP socket's send buffer: SO_SNDBUF, the
// kernel's current (possibly autotuned) bound on send-queue memory, and
// SIOCOUTQ (TIOCOUTQ), the bytes written but not yet acknowledged by the
// peer. A write that fits never blocks in the kernel.
type tcpRoom struct{ rc syscall.RawConn }

// newRoom looks through wrappers that expose the connection they wrap
// (NetConn, as crypto/tls and internal/edge's listener do) for the TCP
// socket.
func newRoom(nc net.Conn) roomer {
	for {
		w, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = w.NetConn()
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &tcpRoom{rc: rc}
	if _, _, ok := r.room(); !ok {
		return nil
	}
	return r
}

func (r *tcpRoom) room() (sndbuf, queued int, ok bool) {
	var serr error
	err := r.rc.Control(func(fd uintptr) {
		sndbuf, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		if serr != nil {
			return
		}
		var q int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q))); errno != 0 {
			serr = errno
		}
		queued = int(q)
	})
	return sndbuf, queued, err == nil && serr == nil
}
