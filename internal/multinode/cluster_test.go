package multinode

import (
	"fmt"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/internal/wstest"
)

// TestClusterNodes: two gateways on a real three-master Redis Cluster.
// Clients on one node receive what is published on the other, for projects
// whose slots live on different masters, and resume on the other node.
func TestClusterNodes(t *testing.T) {
	cl := redistest.StartCluster(t)
	nodes := startNodes(t, cl.URL(), 2, nil)
	projects := []string{"alpha", "bravo", "charlie", "delta"}
	tok := wstest.Token(t, "u", time.Hour, projects, nil, nil)
	clients := map[string]*wstest.Client{}
	for _, p := range projects {
		c := wstest.Dial(t, nodes[0].WSURL(), wstest.DialOptions{Token: tok})
		c.Subscribe("1", p, "*", "")
		clients[p] = c
	}
	for i := 0; i < 20; i++ {
		p := projects[i%len(projects)]
		nodes[1].Publish(t, seqEvent(p, fmt.Sprintf("c%d", i%3), 0, i, nil))
	}
	for pi, p := range projects {
		evs := readEvents(t, clients[p], 5)
		if len(evs) != 5 {
			t.Fatalf("%s: %d events", p, len(evs))
		}
		checkOrdered(t, p, evs)
		for j, ev := range evs {
			if ev.Project != p || docOf(t, ev).Seq != pi+4*j {
				t.Fatalf("%s: event %d is %s seq %d", p, j, ev.Project, docOf(t, ev).Seq)
			}
		}
		// Resume on the other node from the second event.
		c := wstest.Dial(t, nodes[1].WSURL(), wstest.DialOptions{Token: tok})
		if f := c.Subscribe("2", p, "*", evs[1].Offset); !f.Recovered {
			t.Fatalf("%s: resume on the cluster not recovered", p)
		}
		if got := readEvents(t, c, 3); len(got) != 3 || got[2].Offset != evs[4].Offset {
			t.Fatalf("%s: resumed %+v", p, got)
		}
	}
}
