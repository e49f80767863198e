package wsconn

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// maxHeld is how many bytes a batch holds before it goes to the kernel
// even though the writer has not flushed yet.
const maxHeld = 64 << 10

// heldPool recycles the buffers batches are gathered in: an idle
// connection holds none.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// batchConn is the socket as the frames reach it, a whole frame at a time.
// While the connection's writer is in a batch (hold), every frame written
// is gathered in a pooled buffer and Flush hands it to the kernel in one
// write(2): one system call per connection per batch, however many
// frames. Outside a batch (a pong from the reader goroutine, a ping, the
// close frame) a frame goes to the socket at once, with a write deadline.
// mu is held over the socket write too, so frames reach the kernel whole
// and in order. After the close frame (shut) no frame is written.
type batchConn struct {
	net.Conn
	stall time.Duration // write deadline

	mu     sync.Mutex
	hold   bool
	closed bool    // the close frame was written: nothing is written any more
	held   *[]byte // nil while nothing is held
	raw    syscall.RawConn
	rawOf  net.Conn // the Conn raw belongs to (tests swap Conn)
}

// writeFrame writes one frame, hdr then payload (either may be empty).
func (c *batchConn) writeFrame(hdr, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	if !c.hold {
		return c.writeNowLocked(hdr, payload)
	}
	if c.held == nil {
		c.held = heldPool.Get().(*[]byte)
	}
	*c.held = append(append(*c.held, hdr...), payload...)
	if len(*c.held) >= maxHeld {
		return c.flushLocked()
	}
	return nil
}

// writeNowLocked writes hdr and payload to the socket as one buffer: what
// the kernel takes at once without a deadline, a rest that must wait with a
// deadline of stall. c.mu held.
func (c *batchConn) writeNowLocked(hdr, payload []byte) error {
	b := hdr
	if len(payload) > 0 {
		b = append(append(make([]byte, 0, len(hdr)+len(payload)), hdr...), payload...)
	}
	// What the kernel takes at once goes without a deadline (writeNoWait);
	// only a rest that must wait for room is bounded by the stall limit.
	if c.rawOf != c.Conn {
		c.raw, c.rawOf = rawConnOf(c.Conn), c.Conn
	}
	if c.raw != nil {
		n, done, err := writeNoWait(c.raw, c.Conn, b)
		if done {
			return err
		}
		b = b[n:]
	}
	err := c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	if err == nil {
		_, err = c.Conn.Write(b)
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	return err
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

// shut writes what is held, then the close frame, and nothing after it.
func (c *batchConn) shut(closeFrame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.hold, c.closed = false, true
	if err := c.flushLocked(); err != nil {
		return err
	}
	return c.writeNowLocked(closeFrame, nil)
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
		err = c.writeNowLocked(b, nil)
	}
	if cap(b) <= 2*maxHeld {
		*c.held = b[:0]
		heldPool.Put(c.held)
	}
	c.held = nil
	return err
}
