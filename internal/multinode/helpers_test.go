package multinode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/wstest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startNodes starts n in-process gateways sharing the Redis at url.
func startNodes(t testing.TB, url string, n int, tune func(*backplane.RedisConfig)) []*wstest.Node {
	t.Helper()
	nodes := make([]*wstest.Node, n)
	for i := range nodes {
		cfg := backplane.RedisConfig{URL: url, Logger: quiet()}
		if tune != nil {
			tune(&cfg)
		}
		bp, err := backplane.NewRedis(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = wstest.StartNode(t, wstest.NodeConfig{Backplane: bp})
	}
	return nodes
}

// await polls cond until it holds or d passes.
func await(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// publish posts events to a node and returns the status and offsets; it
// does not fail the test, so goroutines can use it.
func publish(base string, events []syncgate.Event) (int, []string, error) {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, base+"/v1/publish", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+wstest.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, out)
	}
	var r struct {
		Offsets []string `json:"offsets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, r.Offsets, nil
}

// seqDoc is the document of test events: who published it and its number.
type seqDoc struct {
	Pub int `json:"pub"`
	Seq int `json:"seq"`
}

func seqEvent(project, collection string, pub, seq int, aud *syncgate.Audience) syncgate.Event {
	doc, _ := json.Marshal(seqDoc{pub, seq})
	return syncgate.Event{Type: syncgate.TypeDocumentUpdated, Project: project, Collection: collection,
		DocumentID: fmt.Sprintf("p%d-%d", pub, seq), Document: doc, Audience: aud}
}

func docOf(t testing.TB, ev syncgate.Event) seqDoc {
	t.Helper()
	var d seqDoc
	if err := json.Unmarshal(ev.Document, &d); err != nil {
		t.Fatalf("event document %s: %v", ev.Document, err)
	}
	return d
}

// checkOrdered fails unless offsets strictly increase.
func checkOrdered(t testing.TB, what string, evs []syncgate.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		a, err1 := backplane.ParseOffset(evs[i-1].Offset)
		b, err2 := backplane.ParseOffset(evs[i].Offset)
		if err1 != nil || err2 != nil || !a.Less(b) {
			t.Fatalf("%s: offsets not increasing at %d: %s then %s", what, i, evs[i-1].Offset, evs[i].Offset)
		}
	}
}
