package backplane_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
)

// BenchmarkMemoryPublishFull publishes one event at a time to a stream
// whose history (1,000 events) is full, so every publish trims one: the
// trim must not copy the whole history each time (ns/op flat in the
// history size).
func BenchmarkMemoryPublishFull(b *testing.B) {
	m := backplane.NewMemory(backplane.MemoryConfig{HistorySize: 1000})
	ctx := context.Background()
	ev := []syncgate.Event{{Type: "document:updated", Project: "p", Collection: "c", DocumentID: "d1",
		Document: json.RawMessage(`{"title":"Launch","done":false}`)}}
	for range 1000 {
		if _, err := m.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := m.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
