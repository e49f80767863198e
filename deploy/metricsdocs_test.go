package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/internal/metrics"
)

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	// A metric name in a query, and the label selector right after it, if any.
	metricRef = regexp.MustCompile(`\b(syncgate_[a-z0-9_]+)(\{[^}]*\})?`)
	labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// exportedMetrics lists the syncgate_* metrics the gateway registers, with
// their label names, from the collectors themselves (a CounterVec with no
// values yet would not show up in a scrape).
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	m := reflect.ValueOf(*metrics.New())
	for i := range m.NumField() {
		c, ok := m.Field(i).Interface().(prometheus.Collector)
		if !ok || m.Type().Field(i).Name == "Registry" {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			s := d.String()
			name := descName.FindStringSubmatch(s)
			if name == nil {
				t.Fatalf("cannot read the metric name from %s", s)
			}
			var labels []string
			if l := descLabels.FindStringSubmatch(s); l != nil {
				for f := range strings.SplitSeq(l[1], ",") {
					if f = strings.TrimSpace(f); f != "" {
						labels = append(labels, f)
					}
				}
			}
			out[name[1]] = labels
		}
	}
	if len(out) == 0 {
		t.Fatal("no syncgate metrics found")
	}
	return out
}

// TestOperationsDocsUseRealMetrics keeps the PromQL in docs/operations.md and
// the chart (HPA) in step with the metrics the gateway exports: every name
// must exist (a histogram's _bucket/_sum/_count included) and every label a
// selector filters on must be one of the metric's labels.
func TestOperationsDocsUseRealMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	root := repoRoot(t)
	files := []string{"docs/operations.md", "charts/syncgate/templates/hpa.yaml"}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricRef.FindAllStringSubmatch(string(b), -1) {
			name := m[1]
			labels, ok := exported[name]
			if !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, cut := strings.CutSuffix(name, suffix); cut {
						if labels, ok = exported[base]; ok {
							name = base
							if suffix == "_bucket" {
								labels = append(slices.Clone(labels), "le")
							}
							break
						}
					}
				}
			}
			if !ok {
				t.Errorf("%s refers to %s, which the gateway does not export", f, m[1])
				continue
			}
			seen[name] = true
			for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(labels, l[1]) {
					t.Errorf("%s filters %s on label %q; its labels are %v", f, m[1], l[1], labels)
				}
			}
		}
	}
	// The five signals need at least these.
	for _, want := range []string{
		"syncgate_connections", "syncgate_delivery_latency_seconds", "syncgate_events_published_total",
		"syncgate_events_delivered_total", "syncgate_events_dropped_total", "syncgate_slow_consumer_disconnects_total",
		"syncgate_backplane_up", "syncgate_auth_failures_total",
	} {
		if !seen[want] {
			t.Errorf("docs/operations.md has no query on %s", want)
		}
	}
}
