//go:build unix

package wsconn

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// writeNoWait writes b to the socket with write(2) calls that never wait
// for room: it returns how many bytes the kernel took, and done when that
// is all of them or an error ended the write. Not done (the send buffer is
// full) means the caller writes the rest with a deadline. It needs no
// deadline of its own, so a flush the kernel takes at once — the usual
// case: a batch is a few KiB, and where Socket.Write can see the send
// buffer it starts no frame that would not fit — saves the two
// SetWriteDeadline calls of a bounded write.
func writeNoWait(rc syscall.RawConn, c net.Conn, b []byte) (n int, done bool, err error) {
	w := rawWriters.Get().(*rawWriter)
	w.b, w.n, w.done, w.err = b, 0, true, nil
	cerr := rc.Write(w.f)
	n, done, werr := w.n, w.done, w.err
	w.b = nil
	rawWriters.Put(w)
	switch {
	case cerr != nil:
		return n, true, &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: cerr}
	case werr != nil:
		return n, true, &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	return n, done, nil
}

// rawWriter is one writeNoWait's state; its f, made once, is what
// RawConn.Write calls, so a flush allocates no closure.
type rawWriter struct {
	b    []byte
	n    int
	done bool
	err  error
	f    func(fd uintptr) bool
}

var rawWriters = sync.Pool{New: func() any {
	w := &rawWriter{}
	w.f = w.write
	return w
}}

func (w *rawWriter) write(fd uintptr) bool {
	for w.n < len(w.b) {
		m, e := syscall.Write(int(fd), w.b[w.n:])
		if m > 0 {
			w.n += m
		}
		switch {
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			w.done = false
			return true
		case e != nil:
			w.err = e
			return true
		case m == 0:
			w.err = syscall.EIO // no progress without an error: not a socket that works
			return true
		}
	}
	return true // never let RawConn wait: a wait needs the deadline
}

// rawConnOf is c's raw socket for writeNoWait, or nil.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
