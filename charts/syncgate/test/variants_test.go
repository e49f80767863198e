package test

import (
	"testing"
)

// TestChecksumsRollPodsOnConfigChange: a configuration change changes the pod
// template (so Kubernetes rolls the pods); a change that does not reach the
// pods leaves it alone.
func TestChecksumsRollPodsOnConfigChange(t *testing.T) {
	t.Parallel()
	const secret = "auth.jwtSecret=0123456789abcdef0123456789abcdef"
	annotations := func(set ...string) map[string]string {
		return render(t, nil, append([]string{secret}, set...)...).Deployment.Spec.Template.Annotations
	}
	base := annotations()
	for _, tc := range []struct {
		set     string
		changes string // the annotation that must change, "" for none
	}{
		{"gateway.historySize=50", "checksum/config"},
		{"gateway.allowedOrigins={app.example.com}", "checksum/config"},
		{"auth.publishKeys={0123456789abcdef}", "checksum/secret"},
		{"redis.url=redis://redis:6379/0", "checksum/secret"},
		{"redis.url=rediss+cluster://a:6379\\,b:6379", "checksum/secret"},
		{"podDisruptionBudget.maxUnavailable=2", ""},
	} {
		got := annotations(tc.set)
		for _, a := range []string{"checksum/config", "checksum/secret"} {
			if changed := got[a] != base[a]; changed != (a == tc.changes) {
				t.Errorf("--set %s: %s changed = %v", tc.set, a, changed)
			}
		}
	}
}

// TestJWKSOnly: with only a JWKS URL the chart makes no HS256 secret.
func TestJWKSOnly(t *testing.T) {
	t.Parallel()
	m := render(t, nil, "auth.jwksUrl=https://id.example.com/.well-known/jwks.json")
	if got := m.ConfigMap.Data["SYNCGATE_JWKS_URL"]; got != "https://id.example.com/.well-known/jwks.json" {
		t.Errorf("SYNCGATE_JWKS_URL = %q", got)
	}
	if _, ok := m.Secret.Data["jwt-secret"]; ok {
		t.Errorf("an HS256 secret was generated although only JWKS is configured")
	}
	if _, ok := containerEnv(t, m.Deployment)["SYNCGATE_JWT_SECRET"]; ok {
		t.Errorf("SYNCGATE_JWT_SECRET set although only JWKS is configured")
	}
	assertPodContract(t, m)
}

// TestInlineSecretsAndRedis: values given inline land in the chart's Secret.
func TestInlineSecretsAndRedis(t *testing.T) {
	t.Parallel()
	m := render(t, nil,
		"auth.jwtSecret=0123456789abcdef0123456789abcdef",
		"auth.publishKeys={key-one-0123456789,key-two-0123456789}",
		"redis.url=rediss://:pw@redis.example.com:6380/0",
		"replicaCount=3",
	)
	for key, want := range map[string]string{
		"jwt-secret":   "0123456789abcdef0123456789abcdef",
		"publish-keys": "key-one-0123456789,key-two-0123456789",
		"redis-url":    "rediss://:pw@redis.example.com:6380/0",
	} {
		if got := string(m.Secret.Data[key]); got != want {
			t.Errorf("Secret %s = %q, want %q", key, got, want)
		}
	}
	assertSecretRef(t, containerEnv(t, m.Deployment), "SYNCGATE_REDIS_URL", m.Secret.Name, "redis-url", false)
	if *m.Deployment.Spec.Replicas != 3 {
		t.Errorf("replicas = %d", *m.Deployment.Spec.Replicas)
	}
	assertPodContract(t, m)
}

// TestMetricsOnClientPort: metrics.port=0 serves /metrics on http, and the
// ServiceMonitor follows.
func TestMetricsOnClientPort(t *testing.T) {
	t.Parallel()
	m := render(t, nil, "metrics.port=0", "metrics.serviceMonitor.enabled=true")
	if got, ok := m.ConfigMap.Data["SYNCGATE_METRICS_ADDR"]; !ok || got != "" {
		t.Errorf("SYNCGATE_METRICS_ADDR = %q (set %v), want empty", got, ok)
	}
	if servicePort(m.Service, "metrics") != nil {
		t.Errorf("Service still has a metrics port")
	}
	if ep := m.ServiceMonitor.Spec.Endpoints; len(ep) != 1 || ep[0].Port != "http" {
		t.Errorf("ServiceMonitor endpoints %+v, want port http", ep)
	}
	assertPodContract(t, m)
}

// TestPreStopDisabled: preStopSleepSeconds=0 drops the hook, and the computed
// grace still covers the drain.
func TestPreStopDisabled(t *testing.T) {
	t.Parallel()
	m := render(t, nil, "preStopSleepSeconds=0")
	pod := m.Deployment.Spec.Template.Spec
	if pod.Containers[0].Lifecycle != nil {
		t.Errorf("lifecycle %+v, want none", pod.Containers[0].Lifecycle)
	}
	if got := *pod.TerminationGracePeriodSeconds; got != 25+10 {
		t.Errorf("terminationGracePeriodSeconds = %d, want 35", got)
	}
}

// TestExistingSecretWithJWKS: with JWKS configured, the JWT secret key may be
// missing from an existing Secret.
func TestExistingSecretWithJWKS(t *testing.T) {
	t.Parallel()
	m := render(t, nil, "auth.existingSecret=auth", "auth.jwksUrl=https://id.example.com/jwks.json")
	if m.Secret != nil {
		t.Errorf("a chart Secret was rendered with everything in an existing one")
	}
	env := containerEnv(t, m.Deployment)
	assertSecretRef(t, env, "SYNCGATE_JWT_SECRET", "auth", "jwt-secret", true)
	assertSecretRef(t, env, "SYNCGATE_PUBLISH_KEYS", "auth", "publish-keys", false)
	assertPodContract(t, m)
}
