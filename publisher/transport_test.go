package publisher_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/publisher"
)

// fakeTransport answers each Send with the next of its errors (nil:
// success) and counts the attempts.
type fakeTransport struct {
	errs   []error
	sends  int
	closed bool
}

func (f *fakeTransport) Send(ctx context.Context, batch []publisher.Encoded) ([]string, error) {
	f.sends++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return nil, err
		}
	}
	offs := make([]string, len(batch))
	for i := range offs {
		offs[i] = "o"
	}
	return offs, nil
}

func (f *fakeTransport) Close() error { f.closed = true; return nil }

// TestTransportRetries: the Publisher, not each Transport, retries, and
// only what certainly was not applied.
func TestTransportRetries(t *testing.T) {
	down := publisher.NewError(publisher.CodeUnavailable, "down", publisher.ErrUnavailable)
	uncertain := publisher.NewError(publisher.CodeUnavailable, "lost", errors.Join(publisher.ErrUnavailable, publisher.ErrUncertain))
	refused := publisher.NewError(publisher.CodeBadRequest, "no", nil)
	for _, c := range []struct {
		name      string
		errs      []error
		sends     int
		wantError error
	}{
		{"success", nil, 1, nil},
		{"unavailable then success", []error{down, down, nil}, 3, nil},
		{"unavailable, retries spent", []error{down, down, down, down}, 3, publisher.ErrUnavailable},
		{"uncertain is not retried", []error{uncertain}, 1, publisher.ErrUncertain},
		{"refused is not retried", []error{refused}, 1, refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			ft := &fakeTransport{errs: c.errs}
			p, err := publisher.NewWithTransport(ft, publisher.Retry{MaxRetries: 2, Base: time.Millisecond, Max: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Publish(context.Background(), seqEvent("p", "c", 0, 0))
			if c.wantError == nil && err != nil || c.wantError != nil && !errors.Is(err, c.wantError) {
				t.Errorf("err %v, want %v", err, c.wantError)
			}
			if ft.sends != c.sends {
				t.Errorf("%d sends, want %d", ft.sends, c.sends)
			}
			_ = p.Close()
			if !ft.closed {
				t.Error("Close did not close the Transport")
			}
		})
	}
	if _, err := publisher.NewWithTransport(&fakeTransport{}, publisher.Retry{Base: -time.Second}); err == nil || !strings.Contains(err.Error(), "Retry.Base=-1s") {
		t.Errorf("negative Base: %v", err)
	}
}

// TestStandaloneDependencies: HTTP publishing links the standard library
// and the event type only: no go-redis, no Prometheus, nothing internal.
func TestStandaloneDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/syncgate/syncgate/publisher").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/syncgate/syncgate" && dep != "github.com/syncgate/syncgate/publisher" {
			t.Errorf("publisher depends on %s", dep)
		}
	}
}

// TestBatcherConfigValidate: a negative or too large value is refused,
// naming the field and the value, instead of becoming the default; a
// Batcher made with one fails its Enqueue and Publish with that error.
func TestBatcherConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  publisher.BatcherConfig
		want string
	}{
		{publisher.BatcherConfig{}, ""},
		{publisher.BatcherConfig{Window: -time.Millisecond}, "BatcherConfig.Window=-1ms"},
		{publisher.BatcherConfig{RequestTimeout: -time.Second}, "BatcherConfig.RequestTimeout=-1s"},
		{publisher.BatcherConfig{MaxBatch: -1}, "BatcherConfig.MaxBatch=-1"},
		{publisher.BatcherConfig{MaxBatch: 5000}, "BatcherConfig.MaxBatch=5000: at most 1000"},
		{publisher.BatcherConfig{QueueEvents: -2}, "BatcherConfig.QueueEvents=-2"},
		{publisher.BatcherConfig{QueueBytes: -3}, "BatcherConfig.QueueBytes=-3"},
	} {
		err := c.cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v refused: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
			continue
		}
		p, _ := publisher.NewWithTransport(&fakeTransport{}, publisher.Retry{})
		b := p.NewBatcher(c.cfg)
		if err := b.Enqueue(context.Background(), seqEvent("p", "c", 0, 0)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Enqueue with %+v: %v", c.cfg, err)
		}
		if _, err := b.Publish(context.Background(), seqEvent("p", "c", 0, 0)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Publish with %+v: %v", c.cfg, err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = p.Close()
	}
}
