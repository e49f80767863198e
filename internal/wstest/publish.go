package wstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/syncgate/syncgate"
)

// PublishRaw posts body to the node's publish endpoint with key and returns
// the status and body.
func (n *Node) PublishRaw(t testing.TB, key string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL+"/v1/publish", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Publish publishes events as one batch and returns their offsets, failing
// the test unless the answer is 200.
func (n *Node) Publish(t testing.TB, events ...syncgate.Event) []string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	status, out := n.PublishRaw(t, Key, body)
	if status != http.StatusOK {
		t.Fatalf("publish: HTTP %d: %s", status, out)
	}
	var resp struct {
		Offsets []string `json:"offsets"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.Offsets) != len(events) {
		t.Fatalf("publish answer %s: %v", out, err)
	}
	return resp.Offsets
}

// Doc returns a document:updated event of project/collection carrying seq as
// its document, for ordering checks.
func Doc(project, collection string, seq int) syncgate.Event {
	return syncgate.Event{
		Type: syncgate.TypeDocumentUpdated, Project: project, Collection: collection,
		DocumentID: "d", Document: json.RawMessage(itoa(seq)),
	}
}

// Seq reads back the sequence number Doc stored.
func Seq(t testing.TB, ev syncgate.Event) int {
	t.Helper()
	var n int
	if err := json.Unmarshal(ev.Document, &n); err != nil {
		t.Fatalf("event document %s is not a sequence number", ev.Document)
	}
	return n
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
