package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// buildScript is the one build command, run by the Dockerfile and by
// TestStaticBinaryInEmptyRoot.
const buildScript = "scripts/build-static.sh"

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper-cased keyword: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is one FROM ... section of a Dockerfile.
type stage struct {
	from  string // the FROM arguments, e.g. "scratch" or "--platform=$X golang:1 AS build"
	instr []instruction
}

// dockerfile is a parsed Dockerfile: global ARGs before the first FROM, then
// the stages in order.
type dockerfile struct {
	globalArgs map[string]string
	stages     []stage
}

// parseDockerfile reads the subset of Dockerfile syntax our Dockerfile uses:
// comments, parser directives, backslash continuations and one instruction per
// logical line. It is not a general parser (no heredocs, no escape directive).
func parseDockerfile(tb testing.TB, path string) dockerfile {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	df := dockerfile{globalArgs: map[string]string{}}
	var (
		buf   strings.Builder
		start int
		n     int
	)
	flush := func() {
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			return
		}
		kw, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(kw), args: strings.TrimSpace(args), line: start}
		switch {
		case in.cmd == "FROM":
			df.stages = append(df.stages, stage{from: in.args})
		case len(df.stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			df.globalArgs[k] = v
		case len(df.stages) == 0:
			tb.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
		default:
			s := &df.stages[len(df.stages)-1]
			s.instr = append(s.instr, in)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && buf.Len() == 0) {
			continue // comments (and directives) may sit inside a continuation too
		}
		if buf.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			buf.WriteString(cont)
			buf.WriteByte(' ')
			continue
		}
		buf.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	flush()
	if len(df.stages) == 0 {
		tb.Fatalf("%s: no FROM", path)
	}
	return df
}

// buildStep is what the Dockerfile's build RUN says: the output directory and
// the commands it builds.
type buildStep struct {
	stage    string // name of the stage that runs it
	outDir   string
	commands []string
}

// findBuildStep returns the single RUN that calls the build script and fails
// the test if the Dockerfile builds Go any other way.
func findBuildStep(tb testing.TB, df dockerfile) buildStep {
	tb.Helper()
	var steps []buildStep
	for _, s := range df.stages {
		for _, in := range s.instr {
			if strings.Contains(in.args, "go build") || strings.Contains(in.args, "go install") {
				tb.Errorf("Dockerfile:%d: %s runs the Go build itself; call %s so the static-binary test builds the same way", in.line, in.cmd, buildScript)
			}
			_, after, ok := strings.Cut(in.args, buildScript)
			if !ok {
				continue
			}
			if in.cmd != "RUN" {
				tb.Errorf("Dockerfile:%d: %s mentions %s; only a RUN should", in.line, in.cmd, buildScript)
				continue
			}
			fields := strings.Fields(after)
			if len(fields) < 2 {
				tb.Fatalf("Dockerfile:%d: %s needs an output directory and the commands to build, got %q", in.line, buildScript, after)
			}
			steps = append(steps, buildStep{stage: stageName(s), outDir: fields[0], commands: fields[1:]})
		}
	}
	if len(steps) != 1 {
		tb.Fatalf("Dockerfile: want exactly one RUN of %s, found %d", buildScript, len(steps))
	}
	return steps[0]
}

func stageName(s stage) string {
	f := strings.Fields(s.from)
	if len(f) >= 2 && strings.EqualFold(f[len(f)-2], "AS") {
		return f[len(f)-1]
	}
	return ""
}

// stageImage is the image a stage starts from, without flags or AS name.
func stageImage(s stage) string {
	for _, f := range strings.Fields(s.from) {
		if !strings.HasPrefix(f, "--") {
			return f
		}
	}
	return ""
}

// envOf returns the ENV settings of a stage, in the KEY=VALUE form (the only
// one our Dockerfile uses; values without spaces or quotes).
func envOf(tb testing.TB, s stage) map[string]string {
	tb.Helper()
	env := map[string]string{}
	for _, in := range s.instr {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.ContainsAny(v, `"'$`) {
				tb.Fatalf("Dockerfile:%d: ENV %q: write KEY=VALUE with a plain value", in.line, kv)
			}
			env[k] = v
		}
	}
	return env
}

var goDirective = regexp.MustCompile(`(?m)^(go|toolchain)\s+(?:go)?(\S+)\s*$`)

// wantGoVersion is the Go version the image must build with: go.mod's
// toolchain line when present, else its go line.
func wantGoVersion(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(tb), "go.mod"))
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range goDirective.FindAllStringSubmatch(string(b), -1) {
		got[m[1]] = m[2]
	}
	if v := got["toolchain"]; v != "" {
		return v
	}
	return got["go"]
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("repository root: %v", err)
	}
	return root
}

// TestDockerfile checks the promises the image makes: built by the shared
// script with the go.mod Go version, an empty non-root final stage holding
// exactly the built binaries, the gateway as entrypoint on 0.0.0.0:8080.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	df := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	step := findBuildStep(t, df)

	if got, want := df.globalArgs["GO_VERSION"], wantGoVersion(t); got != want {
		t.Errorf("Dockerfile ARG GO_VERSION=%s, go.mod wants %s", got, want)
	}
	for _, want := range []string{"gateway", "publisher"} {
		if !slices.Contains(step.commands, want) {
			t.Errorf("build step builds %v, want %s among them", step.commands, want)
		}
	}
	if step.stage == "" {
		t.Errorf("the build stage needs an AS name so the final stage can copy from it")
	}

	final := df.stages[len(df.stages)-1]
	if img := stageImage(final); img != "scratch" && !strings.HasPrefix(img, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want scratch (or distroless static)", img)
	}
	var (
		copied     []string
		user       string
		entrypoint string
		exposed    []string
	)
	for _, in := range final.instr {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) != 3 || f[0] != "--from="+step.stage {
				t.Errorf("Dockerfile:%d: COPY %s: the final stage copies single files from %q only", in.line, in.args, step.stage)
				continue
			}
			if dir, name := filepath.Split(f[1]); filepath.Clean(dir) == filepath.Clean(step.outDir) {
				copied = append(copied, name)
				if f[2] != "/"+name {
					t.Errorf("Dockerfile:%d: %s copied to %s, want /%s", in.line, f[1], f[2], name)
				}
			}
		case "RUN", "ADD":
			t.Errorf("Dockerfile:%d: %s in the final stage; it must stay an empty filesystem plus files copied in", in.line, in.cmd)
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		}
	}
	slices.Sort(copied)
	wantCopied := slices.Sorted(slices.Values(step.commands))
	if !slices.Equal(copied, wantCopied) {
		t.Errorf("final stage copies %v from %s, want the built commands %v", copied, step.outDir, wantCopied)
	}
	if user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (non-root, numeric so no passwd file is needed)", user)
	}
	if entrypoint != `["/gateway"]` {
		t.Errorf(`ENTRYPOINT %s, want ["/gateway"] (exec form: SIGTERM reaches the gateway, no shell exists)`, entrypoint)
	}
	for _, p := range []string{"8080", "9090"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v, want %s", exposed, p)
		}
	}
	env := envOf(t, final)
	if got := env["SYNCGATE_ADDR"]; got != "0.0.0.0:8080" {
		t.Errorf("ENV SYNCGATE_ADDR=%q, want 0.0.0.0:8080 (the default 127.0.0.1 is unreachable from outside a container)", got)
	}
	if got := env["SYNCGATE_METRICS_ADDR"]; got != "" && !strings.HasSuffix(got, ":9090") {
		t.Errorf("ENV SYNCGATE_METRICS_ADDR=%q, but EXPOSE says 9090", got)
	}
}

// TestBuildScriptIsPOSIX keeps the script runnable by /bin/sh in any builder
// image (no bash in Alpine or distroless builders).
func TestBuildScriptIsPOSIX(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), buildScript))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "#!/bin/sh\n") {
		t.Errorf("%s: want #!/bin/sh", buildScript)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s does not contain %s", buildScript, want)
		}
	}
	for _, bashism := range []string{"[[", "function ", "pipefail", "${BASH"} {
		if strings.Contains(s, bashism) {
			t.Errorf("%s uses %q, which /bin/sh need not support", buildScript, bashism)
		}
	}
}
