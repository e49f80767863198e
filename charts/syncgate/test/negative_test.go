package test

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStrictDecodeCatchesMisspelledFields proves the decoding is strict: the
// same document with one field misspelled or miscased fails strictly, while a
// plain (lenient) decode would have accepted it silently, as Kubernetes
// itself does unless asked for strict field validation.
func TestStrictDecodeCatchesMisspelledFields(t *testing.T) {
	t.Parallel()
	out, err := helmTemplate(nil)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var deployment string
	for _, doc := range splitDocuments(out) {
		if strings.Contains(doc, "\nkind: Deployment\n") {
			deployment = doc
		}
	}
	if deployment == "" {
		t.Fatal("no Deployment rendered")
	}
	if err := decodeStrict(deployment, &appsv1.Deployment{}); err != nil {
		t.Fatalf("the unmodified Deployment must decode: %v", err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"misspelled", "readinessProbe:", "readinesProbe:"},
		{"miscased", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"misplaced", "terminationGracePeriodSeconds:", "terminationGracePeriod:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Count(deployment, tc.from) != 1 {
				t.Fatalf("want exactly one %q in the Deployment", tc.from)
			}
			bad := strings.Replace(deployment, tc.from, tc.to, 1)
			err := decodeStrict(bad, &appsv1.Deployment{})
			if err == nil {
				t.Fatalf("strict decode accepted %q", strings.TrimSuffix(tc.to, ":"))
			}
			if !strings.Contains(err.Error(), strings.TrimSuffix(tc.to, ":")) {
				t.Errorf("error does not name the field: %v", err)
			}
			if err := yaml.Unmarshal([]byte(bad), &appsv1.Deployment{}); err != nil {
				t.Errorf("a lenient decode rejects it too (%v); the case proves nothing", err)
			}
		})
	}
}

// TestTypoInPassthroughValuesFails covers the values the chart hands to
// Kubernetes unchanged (toYaml): the schema cannot know their fields, the
// strict decode does.
func TestTypoInPassthroughValuesFails(t *testing.T) {
	t.Parallel()
	for _, set := range []string{
		"securityContext.readOnlyRootFileSystem=true",
		"podSecurityContext.runAsNonRot=true",
		"readinessProbe.periodSecond=3",
		"resources.request.cpu=1",
	} {
		t.Run(set, func(t *testing.T) {
			t.Parallel()
			out, err := helmTemplate(nil, set)
			if err != nil {
				if strings.Contains(out, "schema") {
					t.Logf("the values schema caught it: %s", strings.TrimSpace(out))
					return
				}
				t.Fatalf("helm template --set %s: %v\n%s", set, err, out)
			}
			failed := false
			for _, doc := range splitDocuments(out) {
				if !strings.Contains(doc, "\nkind: Deployment\n") {
					continue
				}
				failed = decodeStrict(doc, &appsv1.Deployment{}) != nil
			}
			if !failed {
				t.Errorf("--set %s rendered a Deployment that decodes strictly", set)
			}
		})
	}
}

// TestValuesThatMustNotRender lists settings the chart refuses, each with the
// words its error must contain so the operator knows what to fix.
func TestValuesThatMustNotRender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"misspelled top-level key", []string{"replicaCont=3"}, "replicaCont"},
		{"misspelled nested key", []string{"gateway.historySise=10"}, "historySise"},
		{"replicas without Redis", []string{"replicaCount=3"}, "needs redis.url or redis.existingSecret"},
		{"autoscaling without Redis", []string{"autoscaling.enabled=true"}, "needs redis.url or redis.existingSecret"},
		{"grace not above drain", []string{"terminationGracePeriodSeconds=30"}, "must exceed preStopSleepSeconds + gateway.shutdownGraceSeconds (30)"},
		{"grace not above a longer drain", []string{"gateway.shutdownGraceSeconds=60", "terminationGracePeriodSeconds=64"}, "(65)"},
		{"two Redis sources", []string{"redis.url=redis://r:6379", "redis.existingSecret=r"}, "not both"},
		{"existing secret and inline secret", []string{"auth.existingSecret=s", "auth.jwtSecret=0123456789abcdef0123456789abcdef"}, "auth.existingSecret is set"},
		{"short JWT secret", []string{"auth.jwtSecret=tooshort"}, "jwtSecret"},
		{"Redis URL scheme", []string{"redis.url=http://r:6379"}, "url"},
		{"Redis URL cluster typo", []string{"redis.url=redis+clustr://a:6379"}, "url"},
		{"metrics on the client port", []string{"metrics.port=8080"}, "port"},
		{"bad log format", []string{"gateway.logFormat=xml"}, "logFormat"},
		{"bad duration", []string{"gateway.historyTTL=1day"}, "historyTTL"},
		{"comma in publish key", []string{"auth.publishKeys={a-very-long-key-1,b}"}, "publishKeys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := helmTemplate(nil, tc.set...)
			if err == nil {
				t.Fatalf("--set %v rendered; want an error mentioning %q", tc.set, tc.want)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("--set %v failed without mentioning %q:\n%s", tc.set, tc.want, out)
			}
		})
	}
}
