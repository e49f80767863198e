package test

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const productionValues = "ci/production-values.yaml"

// gatewayEnv is every variable the gateway reads (SPEC.md, Operations).
var gatewayEnv = []string{
	"SYNCGATE_ADDR", "SYNCGATE_METRICS_ADDR", "SYNCGATE_REDIS_URL",
	"SYNCGATE_JWT_SECRET", "SYNCGATE_JWKS_URL", "SYNCGATE_PUBLISH_KEYS",
	"SYNCGATE_ALLOWED_ORIGINS", "SYNCGATE_HISTORY_SIZE", "SYNCGATE_HISTORY_TTL",
	"SYNCGATE_SHUTDOWN_GRACE", "SYNCGATE_LOG_FORMAT",
	// Beyond the spec's table, read by cmd/gateway/config.go.
	"SYNCGATE_LOG_LEVEL", "SYNCGATE_MAX_CONNECTIONS",
}

func TestLint(t *testing.T) {
	t.Parallel()
	for name, files := range map[string][]string{"default": nil, "production": {productionValues}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"lint", ".", "--strict", "--kube-version", kubeVersion}
			for _, f := range files {
				args = append(args, "--values", f)
			}
			if out, err := runHelm(2*time.Minute, args...); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

func TestDefaultValues(t *testing.T) {
	t.Parallel()
	m := render(t, nil)
	assertKinds(t, m, "ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount")
	assertPodContract(t, m)

	d := m.Deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (no Redis, so one pod)", d.Spec.Replicas)
	}
	env := containerEnv(t, d)
	if _, ok := env["SYNCGATE_REDIS_URL"]; ok {
		t.Errorf("SYNCGATE_REDIS_URL is set without redis values")
	}
	// The chart owns the Secret and generated what was not given.
	if got := len(m.Secret.Data["jwt-secret"]); got < 32 {
		t.Errorf("generated jwt-secret has %d bytes, want at least 32", got)
	}
	if len(m.Secret.Data["publish-keys"]) < 32 {
		t.Errorf("generated publish-keys %q is too short", m.Secret.Data["publish-keys"])
	}
	assertSecretRef(t, env, "SYNCGATE_JWT_SECRET", m.Secret.Name, "jwt-secret", false)
	assertSecretRef(t, env, "SYNCGATE_PUBLISH_KEYS", m.Secret.Name, "publish-keys", false)

	cm := m.ConfigMap.Data
	for k, want := range map[string]string{
		"SYNCGATE_LOG_FORMAT":     "json",
		"SYNCGATE_SHUTDOWN_GRACE": "25s",
		"SYNCGATE_HISTORY_SIZE":   "1000",
		"SYNCGATE_HISTORY_TTL":    "24h",
	} {
		if cm[k] != want {
			t.Errorf("ConfigMap %s = %q, want %q", k, cm[k], want)
		}
	}
	if got := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 5+25+10 {
		t.Errorf("terminationGracePeriodSeconds = %d, want preStop 5 + drain 25 + 10", got)
	}
	if m.PDB.Spec.MaxUnavailable == nil || m.PDB.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable = %v, want 1 (a lone pod can still be evicted)", m.PDB.Spec.MaxUnavailable)
	}
	if tag := strings.SplitN(d.Spec.Template.Spec.Containers[0].Image, ":", 2)[1]; tag != chartAppVersion(t) {
		t.Errorf("image tag %q, want the chart's appVersion %q", tag, chartAppVersion(t))
	}
}

func TestProductionValues(t *testing.T) {
	t.Parallel()
	m := render(t, []string{productionValues})
	// auth and Redis come from Secrets the operator manages: no chart Secret.
	assertKinds(t, m, "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor")
	assertPodContract(t, m)

	d := m.Deployment
	if d.Spec.Replicas != nil {
		t.Errorf("replicas = %d with an HPA; the HPA must own the count", *d.Spec.Replicas)
	}
	env := containerEnv(t, d)
	// Required: without it (and without a JWKS URL) each pod would make up
	// its own secret in development mode.
	assertSecretRef(t, env, "SYNCGATE_JWT_SECRET", "syncgate-auth", "jwt-secret", false)
	assertSecretRef(t, env, "SYNCGATE_PUBLISH_KEYS", "syncgate-auth", "publish-keys", false)
	assertSecretRef(t, env, "SYNCGATE_REDIS_URL", "syncgate-redis", "url", false)
	if _, ok := env["GOMEMLIMIT"]; !ok {
		t.Errorf("gateway.extraEnv GOMEMLIMIT missing")
	}
	if got := m.ConfigMap.Data["SYNCGATE_MAX_CONNECTIONS"]; got != "50000" {
		t.Errorf("SYNCGATE_MAX_CONNECTIONS = %q, want 50000", got)
	}
	if got := m.ConfigMap.Data["SYNCGATE_ALLOWED_ORIGINS"]; got != "app.example.com,*.example.com" {
		t.Errorf("SYNCGATE_ALLOWED_ORIGINS = %q", got)
	}
	if got := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 75 {
		t.Errorf("terminationGracePeriodSeconds = %d, want the 75 set", got)
	}
	img := d.Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(img, "registry.example.com/platform/syncgate:1.4.2@sha256:") {
		t.Errorf("image %q, want the repository, tag and digest set", img)
	}

	// Ingress: long timeouts, routed to the Service's http port.
	ing := m.Ingress
	for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		if s, err := strconv.Atoi(ing.Annotations[a]); err != nil || s < 3600 {
			t.Errorf("Ingress %s = %q, want at least 3600 s so idle WebSockets stay open", a, ing.Annotations[a])
		}
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName = %v", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "realtime-example-com-tls" {
		t.Errorf("Ingress TLS = %+v", ing.Spec.TLS)
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != m.Service.Name || servicePort(m.Service, b.Port.Name) == nil || b.Port.Name != "http" {
				t.Errorf("Ingress path %s routes to %+v, want Service %s port http", p.Path, b, m.Service.Name)
			}
		}
	}

	// HPA: scales this Deployment on CPU and on connections per pod, slowly down.
	h := m.HPA
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
		t.Errorf("HPA targets %+v, want Deployment %s", h.Spec.ScaleTargetRef, d.Name)
	}
	if *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 20 {
		t.Errorf("HPA replicas %d..%d, want 3..20", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	var metricNames []string
	for _, mt := range h.Spec.Metrics {
		switch {
		case mt.Resource != nil:
			metricNames = append(metricNames, string(mt.Resource.Name))
		case mt.Pods != nil:
			metricNames = append(metricNames, mt.Pods.Metric.Name)
			if mt.Pods.Target.AverageValue == nil || mt.Pods.Target.AverageValue.Value() != 20000 {
				t.Errorf("connections target = %v, want 20000", mt.Pods.Target.AverageValue)
			}
		}
	}
	if !slices.Equal(metricNames, []string{"cpu", "syncgate_connections"}) {
		t.Errorf("HPA metrics %v", metricNames)
	}
	if h.Spec.Behavior == nil || h.Spec.Behavior.ScaleDown == nil || *h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds < 300 {
		t.Errorf("HPA scale-down behavior %+v: want a long stabilization window, scale-down closes connections", h.Spec.Behavior)
	}

	if m.PDB.Spec.MinAvailable == nil || *m.PDB.Spec.MinAvailable != intstr.FromInt32(2) || m.PDB.Spec.MaxUnavailable != nil {
		t.Errorf("PDB = %+v, want minAvailable 2 only", m.PDB.Spec)
	}

	// ServiceMonitor: selects this Service, scrapes its metrics port.
	sm := m.ServiceMonitor
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v, want the release label Prometheus selects by", sm.Labels)
	}
	if !selects(sm.Spec.Selector.MatchLabels, m.Service.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match Service labels %v", sm.Spec.Selector.MatchLabels, m.Service.Labels)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaces %v", sm.Spec.NamespaceSelector.MatchNames)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" ||
		servicePort(m.Service, "metrics") == nil {
		t.Errorf("ServiceMonitor endpoints %+v, want port metrics (on the Service), path /metrics", sm.Spec.Endpoints)
	}
	if iv := sm.Spec.Endpoints[0].Interval; iv != "15s" {
		t.Errorf("ServiceMonitor interval %v", iv)
	}
}

// assertPodContract checks what every rendering promises about the pods.
func assertPodContract(t *testing.T, m *manifests) {
	t.Helper()
	d := m.Deployment
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Probes: readiness on /readyz, liveness on /healthz, both on the client port.
	for name, probe := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("probe for %s missing", name)
			continue
		}
		if probe.HTTPGet.Path != name || probe.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("probe %+v, want GET %s on port http", probe.HTTPGet, name)
		}
	}
	if containerPort(c, "http") != 8080 {
		t.Errorf("container port http = %d, want 8080", containerPort(c, "http"))
	}

	// Configuration: from the ConfigMap, every variable one the gateway reads.
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != m.ConfigMap.Name {
		t.Errorf("envFrom %+v, want the ConfigMap %s", c.EnvFrom, m.ConfigMap.Name)
	}
	names := slices.Collect(maps.Keys(m.ConfigMap.Data))
	for _, e := range c.Env {
		names = append(names, e.Name)
		if strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "KEYS") || strings.Contains(e.Name, "REDIS_URL") {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s is not taken from a Secret", e.Name)
			}
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "SYNCGATE_") && !slices.Contains(gatewayEnv, n) {
			t.Errorf("%s is not a variable the gateway reads", n)
		}
	}
	if got := m.ConfigMap.Data["SYNCGATE_ADDR"]; got != "0.0.0.0:8080" {
		t.Errorf("SYNCGATE_ADDR = %q, want 0.0.0.0:8080 (the http container port, on all interfaces)", got)
	}
	if mp := containerPort(c, "metrics"); mp != 0 {
		if got, want := m.ConfigMap.Data["SYNCGATE_METRICS_ADDR"], "0.0.0.0:"+strconv.Itoa(int(mp)); got != want {
			t.Errorf("SYNCGATE_METRICS_ADDR = %q, want %q to match the metrics container port", got, want)
		}
	}

	// Drain: preStop sleep, then SIGTERM starts a drain of
	// SYNCGATE_SHUTDOWN_GRACE; the kubelet's deadline covers both.
	grace, err := time.ParseDuration(m.ConfigMap.Data["SYNCGATE_SHUTDOWN_GRACE"])
	if err != nil {
		t.Fatalf("SYNCGATE_SHUTDOWN_GRACE: %v", err)
	}
	var preStop int64
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("no preStop sleep: the pod would refuse connections before load balancers stop sending them")
	} else {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
		if preStop < 1 {
			t.Errorf("preStop sleep %d s", preStop)
		}
	}
	tgps := pod.TerminationGracePeriodSeconds
	if tgps == nil || time.Duration(*tgps)*time.Second <= time.Duration(preStop)*time.Second+grace {
		t.Errorf("terminationGracePeriodSeconds %v, want more than preStop %ds + drain %s", tgps, preStop, grace)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v: want maxUnavailable 0, drained clients need a pod to go to", d.Spec.Strategy.RollingUpdate)
	}

	// Security: non-root, read-only root, no capabilities, no API token.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and uid 65532 (the image's user)", psc)
	}
	if psc != nil && (psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Errorf("pod seccompProfile %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container readOnlyRootFilesystem not true")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container allowPrivilegeEscalation not false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container capabilities %+v, want drop ALL, add none", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken not false")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Roll on configuration change.
	for _, a := range []string{"checksum/config", "checksum/secret"} {
		if len(d.Spec.Template.Annotations[a]) != 64 {
			t.Errorf("pod annotation %s = %q, want a sha256", a, d.Spec.Template.Annotations[a])
		}
	}

	// Wiring: selectors match the pods; Service ports exist on the container.
	podLabels := d.Spec.Template.Labels
	if !selects(d.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	if !selects(m.Service.Spec.Selector, podLabels) || len(m.Service.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not match pods %v", m.Service.Spec.Selector, podLabels)
	}
	if m.PDB != nil && !selects(m.PDB.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PDB selector %v does not match pods %v", m.PDB.Spec.Selector.MatchLabels, podLabels)
	}
	for _, p := range m.Service.Spec.Ports {
		if containerPort(c, p.TargetPort.StrVal) == 0 {
			t.Errorf("Service port %s targets %q, which the container does not expose", p.Name, p.TargetPort.String())
		}
	}
	if m.ServiceAccount != nil && pod.ServiceAccountName != m.ServiceAccount.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", pod.ServiceAccountName, m.ServiceAccount.Name)
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, podLabels) {
			t.Errorf("topology spread %s selects %v, not these pods", tsc.TopologyKey, tsc.LabelSelector)
		}
	}
}

// assertSecretRef checks that env var name comes from key of Secret secret.
func assertSecretRef(t *testing.T, env map[string]corev1.EnvVar, name, secret, key string, optional bool) {
	t.Helper()
	e, ok := env[name]
	if !ok {
		t.Errorf("%s not set", name)
		return
	}
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s is not from a Secret: %+v", name, e)
		return
	}
	ref := e.ValueFrom.SecretKeyRef
	gotOptional := ref.Optional != nil && *ref.Optional
	if ref.Name != secret || ref.Key != key || gotOptional != optional {
		t.Errorf("%s from secret %s key %s (optional %v), want %s key %s (optional %v)", name, ref.Name, ref.Key, gotOptional, secret, key, optional)
	}
}

func assertKinds(t *testing.T, m *manifests, want ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(m.raw))
	if !slices.Equal(got, want) {
		t.Errorf("rendered kinds %v, want %v", got, want)
	}
}

func containerEnv(t *testing.T, d *appsv1.Deployment) map[string]corev1.EnvVar {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		env[e.Name] = e
	}
	return env
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func servicePort(s *corev1.Service, name string) *corev1.ServicePort {
	for i, p := range s.Spec.Ports {
		if p.Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

// selects reports whether a non-empty label selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	b := readFile(t, chartDir+"/Chart.yaml")
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	return chart.AppVersion
}
