package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	// helmCmd is the Helm the chart is tested with, pinned; `go run` builds
	// it from the Go module proxy once and then reuses the cached binary.
	helmCmd = "helm.sh/helm/v3/cmd/helm@v3.21.4"
	// kubeVersion is the cluster version Helm renders for: the oldest the
	// chart supports (Chart.yaml kubeVersion) plus one.
	kubeVersion = "1.31.0"
	release     = "rt"
	namespace   = "realtime"
)

// helmEnv keeps Helm's cache, config and data out of the user's home.
var helmEnv []string

func TestMain(m *testing.M) {
	home, err := os.MkdirTemp("", "syncgate-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmEnv = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	// Build Helm once, before the tests run in parallel, so they share the
	// cached binary instead of each compiling it.
	if out, err := runHelm(10*time.Minute, "version", "--short"); err != nil {
		fmt.Fprintf(os.Stderr, "go run %s version: %v\n%s", helmCmd, err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

// chartDir is the chart under test, the parent of this module.
const chartDir = ".."

func runHelm(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", helmCmd}, args...)...)
	cmd.Dir = chartDir
	cmd.Env = helmEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// helmTemplate renders the chart with the given values files (relative to
// the chart) and --set flags.
func helmTemplate(files []string, set ...string) (string, error) {
	args := []string{"template", release, ".", "--namespace", namespace, "--kube-version", kubeVersion}
	for _, f := range files {
		args = append(args, "--values", f)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return runHelm(2*time.Minute, args...)
}

// manifests is one rendering of the chart, decoded. A kind the chart does not
// render is nil.
type manifests struct {
	raw            map[string]string // kind -> its YAML document
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	Secret         *corev1.Secret
	ServiceAccount *corev1.ServiceAccount
	Ingress        *networkingv1.Ingress
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	PDB            *policyv1.PodDisruptionBudget
	ServiceMonitor *monitoringv1.ServiceMonitor
}

// target returns where a document of the given apiVersion and kind decodes
// to, or nil for a kind the tests do not know (which fails the test: every
// new template must be decoded and checked).
func (m *manifests) target(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		m.Deployment = &appsv1.Deployment{}
		return m.Deployment
	case "v1/Service":
		m.Service = &corev1.Service{}
		return m.Service
	case "v1/ConfigMap":
		m.ConfigMap = &corev1.ConfigMap{}
		return m.ConfigMap
	case "v1/Secret":
		m.Secret = &corev1.Secret{}
		return m.Secret
	case "v1/ServiceAccount":
		m.ServiceAccount = &corev1.ServiceAccount{}
		return m.ServiceAccount
	case "networking.k8s.io/v1/Ingress":
		m.Ingress = &networkingv1.Ingress{}
		return m.Ingress
	case "autoscaling/v2/HorizontalPodAutoscaler":
		m.HPA = &autoscalingv2.HorizontalPodAutoscaler{}
		return m.HPA
	case "policy/v1/PodDisruptionBudget":
		m.PDB = &policyv1.PodDisruptionBudget{}
		return m.PDB
	case "monitoring.coreos.com/v1/ServiceMonitor":
		m.ServiceMonitor = &monitoringv1.ServiceMonitor{}
		return m.ServiceMonitor
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocuments splits a multi-document YAML stream, dropping documents that
// hold only comments or whitespace.
func splitDocuments(stream string) []string {
	var docs []string
	for _, d := range docSeparator.Split(stream, -1) {
		for line := range strings.Lines(d) {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, d)
				break
			}
		}
	}
	return docs
}

// decodeStrict decodes one YAML document into a typed object the way the API
// server does with strict field validation: duplicate keys, unknown fields
// and fields in the wrong case are errors.
func decodeStrict(doc string, into any) error {
	j, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeAll decodes every document of a rendering strictly, each exactly once
// by kind.
func decodeAll(tb testing.TB, stream string) *manifests {
	tb.Helper()
	m := &manifests{raw: map[string]string{}}
	for _, doc := range splitDocuments(stream) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			tb.Fatalf("a rendered document is not YAML: %v\n%s", err, doc)
		}
		if _, dup := m.raw[tm.Kind]; dup {
			tb.Fatalf("the chart renders two %s objects; the tests expect one", tm.Kind)
		}
		into := m.target(tm.APIVersion, tm.Kind)
		if into == nil {
			tb.Fatalf("the chart renders %s %s, which the tests do not decode: add it to manifests.target\n%s", tm.APIVersion, tm.Kind, doc)
		}
		if err := decodeStrict(doc, into); err != nil {
			tb.Fatalf("%s does not decode strictly into its API type: %v\n%s", tm.Kind, err, doc)
		}
		m.raw[tm.Kind] = doc
	}
	return m
}

// render renders and decodes the chart, failing the test on any error.
func render(tb testing.TB, files []string, set ...string) *manifests {
	tb.Helper()
	out, err := helmTemplate(files, set...)
	if err != nil {
		tb.Fatalf("helm template %v %v: %v\n%s", files, set, err, out)
	}
	return decodeAll(tb, out)
}
