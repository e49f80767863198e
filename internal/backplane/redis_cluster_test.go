package backplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
)

// TestRedisCluster runs publish, sharded delivery, history and resume on a
// real three-master cluster, with projects spread over the masters.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	a, ra := startRedisBP(t, cl.URL(), func(c *backplane.RedisConfig) { c.HistorySize = 50 })
	b, _ := startRedisBP(t, cl.URL(), func(c *backplane.RedisConfig) { c.HistorySize = 50 })
	ctx := context.Background()
	projects := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	for _, p := range projects {
		for _, c := range []string{"todos", syncgate.AllCollections} {
			if err := a.Subscribe(ctx, backplane.Stream{Project: p, Collection: c}); err != nil {
				t.Fatalf("subscribe %s/%s: %v", p, c, err)
			}
		}
	}
	// The projects' slots are served by more than one master.
	masters := map[string]bool{}
	for _, p := range projects {
		masters[ownerOf(t, cl, "sg:{"+p+"}:epoch")] = true
	}
	if len(masters) < 2 {
		t.Fatalf("test projects all hash to one master; pick others")
	}
	// A multi-project batch: one atomic call per project.
	var batch []syncgate.Event
	for i := 0; i < 30; i++ {
		batch = append(batch, ev(projects[i%len(projects)], "todos", i))
	}
	offs, err := b.Publish(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range projects {
		s := backplane.Stream{Project: p, Collection: "todos"}
		all := backplane.Stream{Project: p, Collection: syncgate.AllCollections}
		await(t, 10*time.Second, "5 events of "+p, func() bool { return len(ra.get(s)) == 5 && len(ra.get(all)) == 5 })
		got := ra.get(s)
		for j, e := range got {
			if e.Project != p || seqOf(t, e)%len(projects) != seqOf(t, got[0])%len(projects) || (j > 0 && seqOf(t, e) <= seqOf(t, got[j-1])) {
				t.Fatalf("%s events out of order or foreign: %+v", p, got)
			}
		}
		h, err := a.History(ctx, s, got[1].Offset, backplane.Page{})
		if err != nil || !h.Recovered || len(h.Events) != 3 || h.Events[2].Offset != got[4].Offset {
			t.Fatalf("history %s: %+v %v", p, h, err)
		}
	}
	if offs[0] != ra.get(backplane.Stream{Project: projects[0], Collection: "todos"})[0].Offset {
		t.Fatalf("offset mismatch")
	}
	// Unsubscribing the last stream of a project closes its connection;
	// subscribing again works.
	for _, c := range []string{"todos", syncgate.AllCollections} {
		if err := a.Unsubscribe(ctx, backplane.Stream{Project: "alpha", Collection: c}); err != nil {
			t.Fatal(err)
		}
	}
	s := backplane.Stream{Project: "alpha", Collection: "todos"}
	if err := a.Subscribe(ctx, s); err != nil {
		t.Fatal(err)
	}
	before := len(ra.get(s))
	if _, err := b.Publish(ctx, []syncgate.Event{ev("alpha", "todos", 1000)}); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "alpha after resubscribe", func() bool { return len(ra.get(s)) == before+1 })
	await(t, 10*time.Second, "ready", func() bool { return a.Ready() == nil })
}

// ownerOf returns the address of the master serving key: the others
// answer MOVED.
func ownerOf(t testing.TB, cl *redistest.Cluster, key string) string {
	t.Helper()
	for _, n := range cl.Nodes {
		if _, err := n.Do("GET", key); err == nil {
			return n.Addr()
		}
	}
	t.Fatalf("no node serves %s", key)
	return ""
}
