package wstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/hub"
)

// SignClaims signs arbitrary claims with Secret (HS256), for tokens the
// gateway's own minting cannot make: exp in milliseconds, as a string, ….
func SignClaims(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(Secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// PanicToken makes a PanicVerifier panic.
const PanicToken = "wstest-panic-token"

// PanicVerifier verifies tokens signed with Secret and panics on
// PanicToken: the tests' way into the recover boundary of a connection's
// goroutines (the upgrade, the first auth message, a refresh, a CONNECT).
type PanicVerifier struct{ v *auth.Verifier }

var _ hub.TokenVerifier = (*PanicVerifier)(nil)

// NewPanicVerifier returns a PanicVerifier.
func NewPanicVerifier(t testing.TB) *PanicVerifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(Secret)})
	if err != nil {
		t.Fatal(err)
	}
	return &PanicVerifier{v: v}
}

// Verify implements hub.TokenVerifier.
func (p *PanicVerifier) Verify(ctx context.Context, token string) (*auth.Claims, error) {
	if token == PanicToken {
		panic("wstest: the verifier panics on request")
	}
	return p.v.Verify(ctx, token)
}

// LogBuffer collects log output from any goroutine.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns the logged lines that contain s.
func (b *LogBuffer) Lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// Metric sums the samples of the metric name whose labels include every
// name=value pair given (e.g. "code", "4008"); a histogram's sample is its
// count of observations.
func (n *Node) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := n.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue samples
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// Flow publishes one event of size bytes every period to project/collection
// until stop closes, over HTTP to the node at url (from a goroutine of
// its own, so no testing.T is used). The returned function waits for it
// and reports the publishes that failed.
func Flow(url, project, collection string, size int, period time.Duration, stop <-chan struct{}) func() error {
	var wg sync.WaitGroup
	var errs []error
	wg.Add(1)
	go func() {
		defer wg.Done()
		pad := json.RawMessage(`"` + strings.Repeat("x", size) + `"`)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev := Doc(project, collection, i)
			ev.OldDocument = pad
			body, _ := json.Marshal(ev)
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/publish", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs = append(errs, fmt.Errorf("publish %d: HTTP %d", i, resp.StatusCode))
			}
		}
	}()
	return func() error { wg.Wait(); return errors.Join(errs...) }
}

// FuzzToken signs the claims of a fuzz input: the JSON object claims as
// written (numbers kept as they are: 1e300, 1.5, …), or, when it is not
// one, {"sub": claims}.
func FuzzToken(t testing.TB, claims string) string {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(claims))
	dec.UseNumber()
	if dec.Decode(&m) != nil || m == nil {
		m = map[string]any{"sub": claims}
	}
	return SignClaims(t, m)
}

// SendLines sends each line of frames as a message, at most max of them: a
// line starting with 0x00 as a binary message (without that byte), the
// others as text. It reports whether every write succeeded (the server
// may close the connection at any point).
func SendLines(ctx context.Context, ws *websocket.Conn, frames string, max int) bool {
	for i, line := range strings.Split(frames, "\n") {
		if i == max {
			break
		}
		typ, b := websocket.MessageText, []byte(line)
		if len(b) > 0 && b[0] == 0 {
			typ, b = websocket.MessageBinary, b[1:]
		}
		if ws.Write(ctx, typ, b) != nil {
			return false
		}
	}
	return true
}

// ReadUntil reads ws until a message for which done reports true or the
// connection ends, failing t when neither happens within ctx.
func ReadUntil(t testing.TB, ctx context.Context, ws *websocket.Conn, done func(data []byte) bool) {
	t.Helper()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("neither the awaited message nor a close came")
			}
			return
		}
		if done(data) {
			return
		}
	}
}

// AwaitReleased waits until open reports no connection and n holds no
// subscription, then fails t if a connection goroutine panicked.
func (n *Node) AwaitReleased(t testing.TB, open func() int) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for open() != 0 || n.Metric(t, "syncgate_subscriptions") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d connections and %v subscriptions still held", Wait, open(), n.Metric(t, "syncgate_subscriptions"))
		}
		time.Sleep(time.Millisecond)
	}
	if p := n.Metric(t, "syncgate_panics_total"); p != 0 {
		t.Fatalf("a connection goroutine panicked (%v)", p)
	}
}
