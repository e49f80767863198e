package deploy

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ignorePattern is one .dockerignore line.
type ignorePattern struct {
	re     *regexp.Regexp
	negate bool // "!pattern": include again
}

// dockerignore holds the patterns of a .dockerignore file, in order.
type dockerignore []ignorePattern

// parseDockerignore reads .dockerignore with Docker's rules as far as our file
// uses them: comments, "!" exceptions, "*", "?" and "**"; the last matching
// pattern decides, and a pattern that matches a directory matches everything
// under it. Character classes are refused rather than half-supported.
func parseDockerignore(tb testing.TB, r io.Reader) dockerignore {
	tb.Helper()
	var out dockerignore
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			p.negate, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/")
		if strings.ContainsAny(line, `[]\`) {
			tb.Fatalf(".dockerignore: %q: character classes and escapes are not supported by this test", line)
		}
		p.re = regexp.MustCompile("^" + globToRegexp(line) + "(/.*)?$")
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func globToRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// excluded reports whether the slash-separated path relative to the context
// root stays out of the build context.
func (d dockerignore) excluded(rel string) bool {
	ex := false
	for _, p := range d {
		if p.re.MatchString(rel) {
			ex = !p.negate
		}
	}
	return ex
}

func (d dockerignore) hasExceptions() bool {
	for _, p := range d {
		if p.negate {
			return true
		}
	}
	return false
}

// copyBuildContext copies the files of src that .dockerignore lets into the
// build context to dst, the way `docker build` would send them.
func copyBuildContext(tb testing.TB, src, dst string) {
	tb.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		tb.Fatal(err)
	}
	ignore := parseDockerignore(tb, f)
	f.Close()
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// An exception could re-include something inside an excluded
			// directory; only without exceptions is it safe to skip it whole.
			if ignore.excluded(rel) && !ignore.hasExceptions() {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if ignore.excluded(rel) || !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		tb.Fatalf("copy build context: %v", err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestDockerignoreMatching(t *testing.T) {
	ignore := parseDockerignore(t, strings.NewReader(`
# comment
.git
charts
**/*.test
docs/*.md
!docs/keep.md
`))
	for _, tc := range []struct {
		path string
		want bool
	}{
		{".git", true},
		{".git/config", true},
		{".gitignore", false},
		{"charts/syncgate/values.yaml", true},
		{"cmd/charts/x.go", false}, // patterns are anchored at the context root
		{"hub.test", true},
		{"internal/hub/hub.test", true},
		{"internal/hub/hub.go", false},
		{"docs/operations.md", true},
		{"docs/keep.md", false},
		{"docs/img/a.md", false}, // "*" does not cross "/"
		{"go.mod", false},
	} {
		if got := ignore.excluded(tc.path); got != tc.want {
			t.Errorf("excluded(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestDockerignoreKeepsTheBuildInputs checks the real .dockerignore against
// the files the build needs and the ones it must not ship.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ignore := parseDockerignore(t, f)
	for _, keep := range []string{"go.mod", "go.sum", buildScript, "cmd/gateway/main.go", "internal/hub/hub.go", "event.go"} {
		if ignore.excluded(keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
	for _, drop := range []string{".git/HEAD", "charts/syncgate/values.yaml", "charts/syncgate/test/go.mod", "bin/gateway", "clients/js/package.json", "web/node_modules/x/index.js"} {
		if !ignore.excluded(drop) {
			t.Errorf(".dockerignore lets %s into the build context", drop)
		}
	}
}
