package ws

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/transport/transporttest"
)

type grantAll struct{}

func (grantAll) Verify(context.Context, string) (*auth.Claims, error) {
	return &auth.Claims{Subject: "u", ExpiresAt: time.Now().Add(time.Hour), Projects: []string{"p"}}, nil
}

// TestAdapterFrames drives the native adapter over the engine: a subscribe
// answered `subscribed`, events framed as `events` frames of at most
// maxFrameBytes (a larger event alone), and a gap as `subscribed` with
// recovered:false.
func TestAdapterFrames(t *testing.T) {
	bp := backplane.NewMemory(backplane.MemoryConfig{})
	defer bp.Close()
	h, err := hub.New(hub.Config{Verifier: grantAll{}}, bp)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sess, err := h.Register(context.Background(), hub.SessionConfig{Transport: hub.TransportWS})
	if err != nil {
		t.Fatal(err)
	}
	rec := &transporttest.Recorder{}
	out := &transport{sock: rec, ping: func(context.Context) error { return nil }, abort: sess.Abort(),
		ctx: sess.Context(), pingEvery: time.Hour, timeout: time.Second}
	sess.Attach(out)
	defer sess.Finish()
	defer sess.Close(hub.CloseNormal, "", false)
	claims, _ := h.Verify(context.Background(), "t")
	sess.Authenticate(claims)
	c := &conn{h: h, sess: sess, out: out}
	c.subscribe(request{Op: opSubscribe, ID: json.RawMessage(`"s1"`), Project: "p", Collection: "c"})

	big := `{"pad":"` + strings.Repeat("x", 150<<10) + `"}`
	var evs []syncgate.Event
	for _, doc := range []string{`{"n":0}`, big, big, `{"n":3}`} {
		evs = append(evs, syncgate.Event{Type: "insert", Project: "p", Collection: "c", Document: json.RawMessage(doc)})
	}
	offs, err := bp.Publish(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	type frame struct {
		Op        string           `json:"op"`
		ID        string           `json:"id"`
		Offset    string           `json:"offset"`
		Recovered bool             `json:"recovered"`
		Events    []syncgate.Event `json:"events"`
	}
	var got []string
	msgs := rec.Await(t, "4 events", func(msgs []string, _ int) bool {
		got = got[:0]
		for _, m := range msgs {
			var f frame
			_ = json.Unmarshal([]byte(m), &f)
			for _, e := range f.Events {
				got = append(got, e.Offset)
			}
		}
		return len(got) == 4
	})
	var first frame
	if err := json.Unmarshal([]byte(msgs[0]), &first); err != nil || first.Op != "subscribed" || first.ID != "s1" || !first.Recovered {
		t.Fatalf("first message %.200s", msgs[0])
	}
	for i, o := range offs {
		if got[i] != o {
			t.Fatalf("event %d has offset %s, want %s", i, got[i], o)
		}
	}
	for _, m := range msgs[1:] {
		var f frame
		if err := json.Unmarshal([]byte(m), &f); err != nil || f.Op != "events" {
			t.Fatalf("message %.100s", m)
		}
		if len(m) > maxFrameBytes && len(f.Events) > 1 {
			t.Fatalf("a %d-byte frame holds %d events: over maxFrameBytes", len(m), len(f.Events))
		}
	}
	if len(msgs) < 3 {
		t.Fatalf("%d messages: the large events were not split into frames", len(msgs))
	}

	head, _ := backplane.ParseOffset(offs[3])
	head.Hi += 10
	h.Reset(backplane.Stream{Project: "p", Collection: "c"}, head)
	msgs = rec.Await(t, "the gap", func(msgs []string, _ int) bool { return strings.Contains(msgs[len(msgs)-1], `"recovered":false`) })
	var gap frame
	if err := json.Unmarshal([]byte(msgs[len(msgs)-1]), &gap); err != nil || gap.Op != "subscribed" || gap.Offset != head.String() || gap.ID != "s1" {
		t.Fatalf("gap frame %s", msgs[len(msgs)-1])
	}
}
