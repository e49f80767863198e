package wsconn

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"time"
)

// smallReadBuffer hands coder/websocket a 512-byte read buffer on hijack
// instead of net/http's 4 KiB one, which every connection would keep for
// its whole life: client frames are small, and a larger one is read
// straight from the socket past the buffer. Bytes net/http had already
// buffered are replayed first. It also keeps the raw socket, for write
// deadlines and the send-buffer room (Socket.Write), and hands
// coder/websocket a 16-byte write buffer over a batchConn instead of
// net/http's 4 KiB one.
type smallReadBuffer struct {
	http.ResponseWriter
	nc  net.Conn
	out *batchConn
}

func (w *smallReadBuffer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallReadBuffer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.nc = nc
	w.out = &batchConn{Conn: nc, stall: 10 * time.Second}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		nc = &prefixConn{Conn: nc, pending: bytes.Clone(b)}
	}
	// net/http's 4 KiB write buffer (empty: the 101 response was flushed)
	// is dropped for a header-sized one over the batching writer.
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(nc, 512), bufio.NewWriterSize(w.out, frameBufSize)), nil
}

// prefixConn reads pending before the connection itself.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
