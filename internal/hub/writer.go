package hub

import (
	"context"
	"errors"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/wsconn"
)

// maxFrameEvents bounds how many bytes of events go into one frame, so one
// busy subscription cannot build an unbounded frame; a single larger event
// still gets its own frame.
const maxFrameBytes = 256 << 10

// writeLoop owns every write to the socket. It wakes when the queue or the
// close state changes, takes the whole queue at once and writes it, then
// closes the socket when a close was requested. A client that reads
// nothing for WriteTimeout, or answers no ping in that time, is closed with
// 4008; the close frame always fits in the send buffer (wsconn.Socket).
// It runs under the hub's recover boundary (serve).
func (c *conn) writeLoop() {
	ping := time.NewTicker(c.h.cfg.PingInterval)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-c.wake:
		case <-ping.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.WriteTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err == nil {
				continue
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("ping failed", "err", err)
			c.stalled("no pong within " + c.h.cfg.WriteTimeout.String())
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = c.spare[:0], 0
		code, flush := c.closeCode, c.closeFlush
		c.mu.Unlock()

		if code == 0 || flush {
			err = c.writeBatch(batch)
		}
		clear(batch) // let the GC have the messages
		c.spare = batch[:0]
		if code == 0 && err == nil {
			c.mu.Lock()
			more := c.pullReplayLocked()
			c.mu.Unlock()
			if more {
				c.signal()
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, wsconn.ErrAborted), errors.Is(err, wsconn.ErrStalled):
			if errors.Is(err, wsconn.ErrStalled) {
				c.stalled("read nothing for " + c.h.cfg.WriteTimeout.String())
			}
			c.mu.Lock()
			code = c.closeCode
			c.mu.Unlock()
		default:
			c.log.Debug("write failed", "err", err)
			c.sock.Cut()
			return
		}
		if code != 0 {
			c.mu.Lock()
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			c.sock.Close(websocket.StatusCode(code), reason)
			return
		}
	}
}

// writeBatch writes queued items in order: control frames as they are, and
// between two control frames one `events` frame per subscription holding its
// events in queue order.
func (c *conn) writeBatch(batch []item) error {
	for i := 0; i < len(batch); {
		if batch[i].sub == nil {
			if err := c.write(batch[i].frame); err != nil {
				return err
			}
			i++
			continue
		}
		j := i
		for j < len(batch) && batch[j].sub != nil {
			j++
		}
		for k := i; k < j; k++ {
			if batch[k].msg == nil {
				continue // already written with an earlier item of its subscription
			}
			if err := c.writeEvents(batch[k:j], batch[k].sub); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// writeEvents writes every unwritten item of sub in seg as one or more
// events frames, marking them written.
func (c *conn) writeEvents(seg []item, sub *subscription) error {
	published := c.stamp[:0]
	b := append(c.buf[:0], sub.header...)
	n := 0
	flush := func() error {
		b = append(b, "]}"...)
		err := c.write(b)
		c.delivered(n, published)
		b, n, published = append(b[:0], sub.header...), 0, published[:0]
		return err
	}
	for k := range seg {
		it := &seg[k]
		if it.sub != sub || it.msg == nil {
			continue
		}
		if n > 0 && len(b)+len(it.msg.data) > maxFrameBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, it.msg.data...)
		if !it.msg.ts.IsZero() && c.h.m != nil {
			published = append(published, it.msg.ts)
		}
		n++
		it.msg = nil
	}
	err := flush()
	c.buf, c.stamp = b[:0], published[:0]
	return err
}

func (c *conn) delivered(n int, published []time.Time) {
	m := c.h.m
	if m == nil || n == 0 {
		return
	}
	m.EventsDelivered.Add(float64(n))
	m.BatchSize.Observe(float64(n))
	now := time.Now()
	for _, ts := range published {
		m.ObserveLatency(ts, now)
	}
}

// write writes one frame; only the writer calls it.
func (c *conn) write(frame []byte) error {
	return c.sock.Write(frame, c.abort)
}
