package hub

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// maxFrameEvents bounds how many bytes of events go into one frame, so one
// busy subscription cannot build an unbounded frame; a single larger event
// still gets its own frame.
const maxFrameBytes = 256 << 10

// writeLoop owns every write to the socket. It wakes when the queue or the
// close state changes, takes the whole queue at once and writes it, then
// closes the socket when a close was requested.
func (c *conn) writeLoop() {
	defer c.writer.Done()
	defer c.cancel()
	ping := time.NewTicker(c.h.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.WriteTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.log.Debug("ping failed", "err", err)
				c.ws.CloseNow()
				return
			}
			continue
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = c.spare[:0], 0
		code, reason, flush := c.closeCode, c.closeReason, c.closeFlush
		c.mu.Unlock()

		var err error
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
		if err != nil {
			c.log.Debug("write failed", "err", err)
			c.ws.CloseNow()
			return
		}
		if code != 0 {
			if m := c.h.m; m != nil {
				m.Disconnects.WithLabelValues(itoa(int(code))).Inc()
			}
			_ = c.ws.Close(websocket.StatusCode(code), reason)
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

// write bounds the write with a deadline on the socket rather than a
// context: with a context coder/websocket registers and removes a
// context.AfterFunc per write, which with WithTimeout cost about a tenth of
// the gateway's CPU in the fan-out profile (BENCHMARKS.md). Only the writer
// goroutine writes frames, so it owns the deadline, and clears it after
// the write so that pings, pongs and the close handshake, which coder/websocket
// bounds with their own contexts, never meet a stale one; a close
// (CloseNow) still interrupts a blocked write.
func (c *conn) write(frame []byte) error {
	if c.nc == nil { // not from ServeHTTP (tests)
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.WriteTimeout)
		defer cancel()
		return c.ws.Write(ctx, websocket.MessageText, frame)
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	err := c.ws.Write(context.Background(), websocket.MessageText, frame)
	_ = c.nc.SetWriteDeadline(time.Time{})
	return err
}
