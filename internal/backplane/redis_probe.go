package backplane

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// probeLoop publishes a probe on each connection's private channel and
// expects it back; a probe that does not return in time marks a stalled
// connection, which is rebuilt and its streams filled from history.
func (b *Redis) probeLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.ProbeInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.probe()
	}
}

func (b *Redis) probe() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.ProbeTimeout)
	defer cancel()
	pingErr := b.cmd.Ping(ctx).Err()
	if pingErr == nil {
		b.ensureLibrary(ctx)
	}
	now := time.Now()
	type send struct {
		g     *psGroup
		token string
	}
	var sends []send
	var stalled []*psGroup
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if pingErr != nil {
		b.cmdErr = classify("ping", pingErr)
	} else {
		b.cmdErr = nil
	}
	for _, g := range b.groups {
		if g.rebuilding {
			continue
		}
		if g.probeToken != "" {
			if now.Sub(g.probeSent) > b.cfg.ProbeTimeout {
				g.probeToken = ""
				g.stalled = true
				stalled = append(stalled, g)
			}
			continue
		}
		if now.Sub(g.probeSent) < b.cfg.ProbeInterval {
			continue
		}
		g.probeSeq++
		g.probeToken = b.cfg.NodeID + "-" + strconv.FormatUint(g.probeSeq, 10)
		g.probeSent = now
		sends = append(sends, send{g, g.probeToken})
	}
	b.mu.Unlock()
	for _, g := range stalled {
		if b.m != nil {
			b.m.BackplaneStalls.Inc()
		}
		b.log.Warn("redis pub/sub stalled: probe did not come back; rebuilding the connection",
			"group", g.key, "timeout", b.cfg.ProbeTimeout.String())
		b.wg.Add(1)
		go b.rebuild(g)
	}
	for _, s := range sends {
		err := b.cmd.SPublish(ctx, s.g.probeCh, s.token).Err()
		b.mu.Lock()
		if err != nil {
			s.g.unreachable = classify("probe", err)
			if s.g.probeToken == s.token {
				s.g.probeToken = "" // never sent: not a stall
			}
		} else {
			s.g.unreachable = nil
		}
		b.mu.Unlock()
	}
	b.updateUp()
}

// rebuild replaces g's pub/sub connection with a new one subscribed to
// every active channel; the confirmations start a fill of each.
func (b *Redis) rebuild(g *psGroup) {
	defer b.wg.Done()
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	if b.closed || b.groups[g.key] != g {
		b.mu.Unlock()
		return
	}
	g.rebuilding = true
	b.mu.Unlock()

	ps := b.sub.SSubscribe(b.ctx, g.probeCh)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ps.Close()
		return
	}
	old := g.ps
	g.ps = ps
	g.gen++
	gen := g.gen
	g.probeConfirms = 0
	g.probeToken = ""
	g.probeSent = time.Time{}
	g.rebuilding = false
	chans := make([]string, 0, len(g.channels))
	for ch := range g.channels {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	b.startLoop(g, ps, gen)
	_ = old.Close()
	if len(chans) > 0 {
		if err := ps.SSubscribe(b.ctx, chans...); err != nil {
			b.log.Warn("resubscribing after a stall failed; the connection retries", "err", err)
		}
	}
	if b.m != nil {
		b.m.BackplaneReconnects.Inc()
	}
}

// Ready implements Checker: Redis answers commands, and every pub/sub
// connection carried its last probe.
func (b *Redis) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readyLocked()
}

func (b *Redis) readyLocked() error {
	if b.closed {
		return fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if b.cmdErr != nil {
		return b.cmdErr
	}
	for _, g := range b.groups {
		if g.unreachable != nil {
			return g.unreachable
		}
		if g.stalled {
			return fmt.Errorf("%w: pub/sub stalled (probe did not return); reconnecting", ErrUnavailable)
		}
	}
	return nil
}

func (b *Redis) updateUp() {
	b.mu.Lock()
	up := b.readyLocked() == nil
	changed := up != b.up
	b.up = up
	b.mu.Unlock()
	if b.m != nil {
		if up {
			b.m.BackplaneUp.Set(1)
		} else {
			b.m.BackplaneUp.Set(0)
		}
	}
	if changed {
		if up {
			b.log.Info("redis backplane up")
		} else {
			b.log.Warn("redis backplane down", "err", b.Ready())
		}
	}
}
