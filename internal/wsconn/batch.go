package wsconn

import (
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// frameBufSize is the size of the bufio.Writer coder/websocket writes
	// frames through: enough for a frame header, since every byte behind it
	// goes to a batchConn, which keeps no buffer of its own while idle.
	frameBufSize = 16
	// maxHeld is how many bytes a batch holds before it goes to the kernel
	// even though the writer has not flushed yet.
	maxHeld = 64 << 10
)

// heldPool recycles the buffers batches are gathered in: an idle
// connection holds none.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// batchConn is the socket as coder/websocket's writes reach it. While the
// connection's writer is in a batch (hold), every byte written is gathered
// in a pooled buffer and Flush hands it to the kernel in one write(2):
// one system call per connection per batch, however many frames. Outside a
// batch (a pong from the reader goroutine, the close handshake) bytes go to
// the socket at once. mu is held over the socket write too, so bytes reach
// the kernel in the order coder/websocket wrote them.
type batchConn struct {
	net.Conn
	stall time.Duration // write deadline of a flush

	mu     sync.Mutex
	hold   bool
	closed bool    // the close handshake began: nothing is held any more
	held   *[]byte // nil while nothing is held
	raw    syscall.RawConn
	rawOf  net.Conn // the Conn raw belongs to (tests swap Conn)
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hold {
		return c.Conn.Write(p)
	}
	if c.held == nil {
		c.held = heldPool.Get().(*[]byte)
	}
	*c.held = append(*c.held, p...)
	if len(*c.held) >= maxHeld {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// begin starts holding writes until end.
func (c *batchConn) begin() {
	c.mu.Lock()
	c.hold = !c.closed
	c.mu.Unlock()
}

// flush writes what is held, keeping the batch open.
func (c *batchConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// end writes what is held and ends the batch.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	return c.flushLocked()
}

// shut writes what is held and holds nothing from now on: the close frame
// that follows goes to the kernel at once, behind what was written.
func (c *batchConn) shut() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold, c.closed = false, true
	return c.flushLocked()
}

// flushLocked writes the held bytes and returns the buffer to the pool:
// what the kernel takes at once goes without a deadline (writeNoWait), and
// a rest that must wait for room with a deadline of stall. c.mu held.
func (c *batchConn) flushLocked() error {
	if c.held == nil {
		return nil
	}
	b := *c.held
	var err error
	if len(b) > 0 {
		if c.rawOf != c.Conn {
			c.raw, c.rawOf = rawConnOf(c.Conn), c.Conn
		}
		rest := b
		if c.raw != nil {
			var n int
			var done bool
			n, done, err = writeNoWait(c.raw, c.Conn, b)
			if rest = b[n:]; done {
				rest = nil
			}
		}
		if len(rest) > 0 {
			if err = c.Conn.SetWriteDeadline(time.Now().Add(c.stall)); err == nil {
				_, err = c.Conn.Write(rest)
				_ = c.Conn.SetWriteDeadline(time.Time{})
			}
		}
	}
	if cap(b) <= 2*maxHeld {
		*c.held = b[:0]
		heldPool.Put(c.held)
	}
	c.held = nil
	return err
}
