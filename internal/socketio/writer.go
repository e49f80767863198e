package socketio

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/syncgate/syncgate/internal/wsconn"
)

// writeLoop owns every write to the socket: Engine.IO pings, queued frames
// and events, and the close. It takes the whole queue at once; each
// Socket.IO packet is one WebSocket message (Engine.IO v4 does not batch
// packets on WebSocket). A client that reads nothing for WriteTimeout, or
// answers no ping within PingTimeout, is closed with 4008; the close frame
// always fits in the send buffer (wsconn.Socket). It runs under the
// server's recover boundary (serve).
func (c *conn) writeLoop() {
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	pong := time.NewTimer(time.Hour)
	pong.Stop()
	defer pong.Stop()
	var pinged int64
	awaiting := false // a ping is unanswered and the pong timer runs
	for {
		var err error
		select {
		case <-c.wake:
		case <-ping.C:
			if awaiting {
				continue
			}
			pinged, awaiting = time.Now().UnixNano(), true
			if err = c.write([]byte{eioPing}); err == nil {
				pong.Reset(c.s.cfg.PingTimeout)
				continue
			}
		case <-pong.C:
			awaiting = false
			if c.lastPong.Load() >= pinged {
				continue
			}
			c.log.Debug("closing connection: no pong within the ping timeout")
			c.stalled("no pong within " + c.s.cfg.PingTimeout.String())
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = c.spare[:0], 0
		code, flush := c.closeCode, c.closeFlush
		c.mu.Unlock()

		if err == nil && (code == 0 || flush) {
			for i := range batch {
				if err = c.writeItem(&batch[i]); err != nil {
					break
				}
			}
		}
		clear(batch)
		c.spare = batch[:0]
		if code == 0 && err == nil {
			// The next chunk of history replay, now that the client has
			// taken this batch.
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
				c.stalled("read nothing for " + c.s.cfg.WriteTimeout.String())
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

// writeItem applies the item's recovery-state change and writes its frame,
// appending the state as the last argument where the frame wants it.
func (c *conn) writeItem(it *item) error {
	switch it.op {
	case opSet:
		c.setWritten(it.key, it)
	case opRemove:
		if _, ok := c.written[it.key]; ok {
			delete(c.written, it.key)
			c.keys = slices.DeleteFunc(c.keys, func(k subKey) bool { return k == it.key })
		}
	}
	switch {
	case it.msg != nil:
		c.setWritten(it.sub.key, nil)
		c.written[it.sub.key] = it.msg.off
		b := append(c.buf[:0], it.msg.data[kindIndex(it.sub.key.kind)]...)
		b = c.appendState(b)
		c.buf = b[:0]
		err := c.write(b)
		if m := c.s.m; m != nil && err == nil {
			m.EventsDelivered.Inc()
			m.ObserveLatency(it.msg.ts, time.Now())
		}
		return err
	case it.frame != nil && it.withState:
		b := append(c.buf[:0], it.frame...)
		b = c.appendState(b)
		c.buf = b[:0]
		return c.write(b)
	case it.frame != nil:
		return c.write(it.frame)
	}
	return nil
}

// setWritten records key in the state (with the item's offset when given),
// keeping keys sorted.
func (c *conn) setWritten(key subKey, it *item) {
	if _, ok := c.written[key]; !ok {
		i, _ := slices.BinarySearchFunc(c.keys, key, compareKeys)
		c.keys = slices.Insert(c.keys, i, key)
	}
	if it != nil {
		c.written[key] = it.off
	}
}

func compareKeys(a, b subKey) int {
	if c := strings.Compare(a.stream.Project, b.stream.Project); c != 0 {
		return c
	}
	if c := strings.Compare(a.stream.Collection, b.stream.Collection); c != 0 {
		return c
	}
	return int(a.kind) - int(b.kind)
}

// appendState closes an event array with the recovery state as its last
// argument: `,"sg1|…"]`.
func (c *conn) appendState(b []byte) []byte {
	b = append(b, ',', '"')
	b = appendState(b, c.keys, c.written)
	return append(b, '"', ']')
}

// write writes one frame; only the writer calls it.
func (c *conn) write(frame []byte) error {
	return c.sock.Write(frame, c.abort)
}
