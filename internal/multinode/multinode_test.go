package multinode

import (
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestCrossNodeFiltering: an event published on one node reaches the
// subscribers of its collection and of `*` on every node, and nobody else;
// audience-limited events reach only their users and roles.
func TestCrossNodeFiltering(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 3, nil)
	tok := func(user string, roles ...string) string {
		return wstest.Token(t, user, time.Hour, []string{"p1", "p2"}, nil, roles)
	}
	type sub struct {
		c          *wstest.Client
		project    string
		collection string
	}
	var subs []sub
	for i, n := range nodes {
		for _, s := range []struct{ p, c string }{{"p1", "todos"}, {"p1", "*"}, {"p1", "notes"}, {"p2", "todos"}} {
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok("u" + string(rune('a'+i)))})
			c.Subscribe("1", s.p, s.c, "")
			subs = append(subs, sub{c, s.p, s.c})
		}
	}
	// Publish on node 0: p1/todos, p1/notes, p2/todos; then a marker on
	// every stream so each subscriber can tell it has seen everything.
	events := []syncgate.Event{
		seqEvent("p1", "todos", 0, 1, nil), seqEvent("p1", "notes", 0, 2, nil), seqEvent("p2", "todos", 0, 3, nil),
	}
	offs := nodes[0].Publish(t, events...)
	nodes[1].Publish(t, seqEvent("p1", "todos", 0, 100, nil), seqEvent("p1", "notes", 0, 100, nil), seqEvent("p2", "todos", 0, 100, nil))
	for _, s := range subs {
		var got []int
		n := 2
		if s.collection == "*" {
			n = 4
		}
		for _, ev := range s.c.Events(n) {
			if ev.Project != s.project || (s.collection != "*" && ev.Collection != s.collection) {
				t.Fatalf("subscriber %s/%s got an event of %s/%s", s.project, s.collection, ev.Project, ev.Collection)
			}
			got = append(got, docOf(t, ev).Seq)
		}
		want := map[string][]int{"p1/todos": {1, 100}, "p1/notes": {2, 100}, "p1/*": {1, 2, 100, 100}, "p2/todos": {3, 100}}[s.project+"/"+s.collection]
		if len(got) != len(want) {
			t.Fatalf("%s/%s got %v, want %v", s.project, s.collection, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s/%s got %v, want %v", s.project, s.collection, got, want)
			}
		}
	}
	_ = offs

	// Audience: alice (user) and bob (role admin) on different nodes get the
	// limited event; carol does not, on any node.
	alice := wstest.Dial(t, nodes[0].WSURL(), wstest.DialOptions{Token: tok("alice")})
	bob := wstest.Dial(t, nodes[1].WSURL(), wstest.DialOptions{Token: tok("bob", "admin")})
	carol := wstest.Dial(t, nodes[2].WSURL(), wstest.DialOptions{Token: tok("carol", "viewer")})
	for _, c := range []*wstest.Client{alice, bob, carol} {
		c.Subscribe("a", "p1", "secret", "")
	}
	nodes[2].Publish(t, seqEvent("p1", "secret", 0, 1, &syncgate.Audience{Users: []string{"alice"}, Roles: []string{"admin"}}),
		seqEvent("p1", "secret", 0, 2, nil))
	for name, c := range map[string]*wstest.Client{"alice": alice, "bob": bob} {
		evs := c.Events(2)
		if docOf(t, evs[0]).Seq != 1 || docOf(t, evs[1]).Seq != 2 {
			t.Fatalf("%s got %v", name, evs)
		}
	}
	if evs := carol.Events(1); docOf(t, evs[0]).Seq != 2 {
		t.Fatalf("carol got the audience-limited event: %+v", evs[0])
	}
}

// TestOrderExactlyOnce: 3 publishers × 2,000 events through 3 nodes; every
// subscriber on every node sees each event once, in offset order, and each
// publisher's events in the order it published them.
func TestOrderExactlyOnce(t *testing.T) {
	const pubs, perPub, batch = 3, 2000, 20
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), 3, func(c *backplane.RedisConfig) { c.HistorySize = 10000 })
	tok := wstest.Token(t, "u", time.Hour, []string{"p1"}, nil, nil)
	var clients []*wstest.Client
	var names []string
	for i, n := range nodes {
		for _, coll := range []string{"c", "*"} {
			c := wstest.Dial(t, n.WSURL(), wstest.DialOptions{Token: tok})
			c.Subscribe("1", "p1", coll, "")
			clients = append(clients, c)
			names = append(names, "node"+string(rune('0'+i))+"/"+coll)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for s := 0; s < perPub; s += batch {
				evs := make([]syncgate.Event, batch)
				for j := range evs {
					evs[j] = seqEvent("p1", "c", p, s+j, nil)
				}
				if _, _, err := publish(nodes[p].URL, evs); err != nil {
					errs <- err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range clients {
		evs := c.Events(pubs * perPub)
		checkOrdered(t, names[i], evs)
		next := make([]int, pubs)
		for _, ev := range evs {
			d := docOf(t, ev)
			if d.Seq != next[d.Pub] {
				t.Fatalf("%s: publisher %d: got seq %d, want %d", names[i], d.Pub, d.Seq, next[d.Pub])
			}
			next[d.Pub]++
		}
	}
}
