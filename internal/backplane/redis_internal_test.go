package backplane

import "testing"

// FuzzDecodeLive: any channel payload decodes or fails cleanly, and a
// decoded event carries the offset it was sent with.
func FuzzDecodeLive(f *testing.F) {
	f.Add("1795318765429396:1795318765432-0\n{\"type\":\"insert\",\"project\":\"p\",\"collection\":\"c\"}")
	f.Add("x\n{}")
	f.Add("1:2-3\nnull")
	f.Add("")
	f.Fuzz(func(t *testing.T, payload string) {
		off, ev, err := decodeLive(payload)
		if err != nil {
			return
		}
		if ev == nil || ev.Offset != off.String() {
			t.Fatalf("decoded %+v with offset %v", ev, off)
		}
	})
}

// TestFillBufferByteBound: live events held back during a fill are bounded
// in bytes, per stream and node-wide; past the bound the buffer is dropped
// and the stream marked for another fill (which resets subscribers when
// history no longer has the events) instead of growing.
func TestFillBufferByteBound(t *testing.T) {
	defer func(a, b int) { maxFillBufferBytes, maxFillBufferNodeBytes = a, b }(maxFillBufferBytes, maxFillBufferNodeBytes)
	maxFillBufferBytes, maxFillBufferNodeBytes = 1000, 1500
	b := &Redis{}
	s1, s2 := &chanState{filling: true}, &chanState{filling: true}
	for i := range 9 {
		b.deliverLocked(s1, liveEvent{off: Offset{Epoch: "e", Hi: uint64(i)}, size: 100}, nil)
	}
	if len(s1.buf) != 9 || s1.bufBytes != 900 || s1.overflow || b.fillBytes != 900 {
		t.Fatalf("under the bound: %d events, %d bytes, overflow %v", len(s1.buf), s1.bufBytes, s1.overflow)
	}
	b.deliverLocked(s1, liveEvent{off: Offset{Epoch: "e", Hi: 9}, size: 200}, nil)
	if len(s1.buf) != 0 || !s1.overflow || b.fillBytes != 0 {
		t.Fatalf("per-stream bound: %d events kept, overflow %v, node bytes %d", len(s1.buf), s1.overflow, b.fillBytes)
	}
	s1.overflow = false
	for i := range 8 {
		b.deliverLocked(s1, liveEvent{off: Offset{Epoch: "e", Hi: uint64(i)}, size: 100}, nil)
		b.deliverLocked(s2, liveEvent{off: Offset{Epoch: "e", Hi: uint64(i)}, size: 100}, nil)
	}
	if !s2.overflow || len(s2.buf) != 0 || s1.overflow || b.fillBytes != s1.bufBytes || b.fillBytes > 1500 {
		t.Fatalf("node-wide bound: s1 %d bytes, s2 overflow %v, node %d bytes", s1.bufBytes, s2.overflow, b.fillBytes)
	}
}
