package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/syncgate/syncgate/publisher"
)

// config is the command line, resolved against the environment.
type config struct {
	URL, Key, RedisURL string

	// One event from flags (Type set) ...
	Project, Collection, Type, ID, Actor string
	Document, OldDocument                string // inline JSON or @file
	// ... or JSON lines from File ("-": standard input).
	File string

	Batch    int
	Linger   time.Duration
	Timeout  time.Duration
	Retries  int
	Progress time.Duration
	Offsets  bool
	Quiet    bool
}

const usageText = `Usage:
  publisher [connection] --project P --collection C --type T [--id ID] [--document JSON|@file] [--old-document JSON|@file] [--actor A]
  publisher [connection] [--file events.jsonl]      (JSON lines; default standard input)

Publishes change events to syncgate: one event built from flags, or one event
per line of a JSON-lines file or standard input, streamed and sent in batches
of up to --batch events (one request each, all or nothing). Lines may omit
"project" and "collection"; --project and --collection fill them in. Blank
lines are skipped. Every event is validated with the gateway's rules before
it is sent.

Connection (flags win over the environment):
  --url URL --key KEY   a gateway's HTTP endpoint and publish key
                        (env SYNCGATE_URL, SYNCGATE_PUBLISH_KEY, else the
                        first key of the gateway's SYNCGATE_PUBLISH_KEYS)
  --redis URL           straight into Redis with the gateway's function
                        (redis://, rediss://, redis+cluster://; env
                        SYNCGATE_REDIS_URL, used when no gateway URL is set)

Examples:
  publisher --url http://localhost:8080 --key "$KEY" \
    --project p1 --collection events --type document:updated \
    --id event-123 --document '{"title":"Launch"}' --actor user-42
  publisher --type document:created --project p1 --collection events --id e7 --document @e7.json
  publisher --file changes.jsonl --project p1
  pg_recvlogical ... | to-jsonl | publisher --redis redis://localhost:6379 --offsets

Output: with one event, its offset on standard output; with --offsets, one
offset per published event. Progress and the summary go to standard error.

Exit status:
  0    every event was published
  1    usage: bad flags, missing URL or key
  2    invalid input: bad JSON or an invalid event (the line number is given;
       events before that line were published, none after)
  3    refused by the gateway or Redis (e.g. 401 unknown key, 400, 413);
       the failing batch was not published
  4    unavailable: gateway or Redis unreachable or answering 503 after
       retries; the failing batch was not published, retrying is safe
  5    outcome unknown: a batch was sent but no answer came (connection lost,
       --timeout); it may or may not have been published
  130  interrupted; events before the reported count were published

Flags:
`

// errUsage is wrapped by command-line mistakes (exit status 1).
var errUsage = errors.New("usage")

// errHelp is returned for --help (exit status 0).
var errHelp = errors.New("help")

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.URL, "url", "", "gateway base URL, e.g. http://localhost:8080 (env SYNCGATE_URL)")
	fs.StringVar(&c.Key, "key", "", "publish key (env SYNCGATE_PUBLISH_KEY, else the first of SYNCGATE_PUBLISH_KEYS)")
	fs.StringVar(&c.RedisURL, "redis", "", "publish straight into Redis at this URL (env SYNCGATE_REDIS_URL)")
	fs.StringVar(&c.Project, "project", "", "project of the event (default for JSON lines)")
	fs.StringVar(&c.Collection, "collection", "", "collection of the event (default for JSON lines)")
	fs.StringVar(&c.Type, "type", "", "event type, e.g. document:updated; selects the one-event mode")
	fs.StringVar(&c.ID, "id", "", "document id")
	fs.StringVar(&c.Document, "document", "", "document: inline JSON, or @file (@- reads standard input)")
	fs.StringVar(&c.OldDocument, "old-document", "", "previous document: inline JSON or @file")
	fs.StringVar(&c.Actor, "actor", "", "user or service that made the change")
	fs.StringVar(&c.File, "file", "-", "JSON-lines file to publish; - is standard input")
	fs.IntVar(&c.Batch, "batch", 500, "most events per request (1-1000)")
	fs.DurationVar(&c.Linger, "linger", 50*time.Millisecond, "how long a partial batch waits for more input")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "limit for each request, retries included")
	fs.IntVar(&c.Retries, "retries", 4, "retries of requests that certainly were not applied (refused connection, 503)")
	fs.DurationVar(&c.Progress, "progress", 2*time.Second, "interval of the progress line on standard error (0: none)")
	fs.BoolVar(&c.Offsets, "offsets", false, "print each published event's offset on standard output")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress line and no summary")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q (events come from flags, --file or standard input)", errUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if c.URL != "" && c.RedisURL != "" {
		return nil, fmt.Errorf("%w: --url and --redis both set; choose one transport", errUsage)
	}
	if c.URL == "" && c.RedisURL == "" {
		c.URL = getenv("SYNCGATE_URL")
		if c.URL == "" {
			c.RedisURL = getenv("SYNCGATE_REDIS_URL")
		}
	}
	if c.URL != "" && c.Key == "" {
		c.Key = getenv("SYNCGATE_PUBLISH_KEY")
	}
	if c.URL != "" && c.Key == "" {
		// The gateway's own variable, so one environment serves both.
		c.Key = firstKey(getenv("SYNCGATE_PUBLISH_KEYS"))
	}
	switch {
	case c.URL == "" && c.RedisURL == "":
		return nil, fmt.Errorf("%w: no destination: set --url and --key (or SYNCGATE_URL and SYNCGATE_PUBLISH_KEY or SYNCGATE_PUBLISH_KEYS), or --redis", errUsage)
	case c.URL != "":
		if c.Key == "" {
			return nil, fmt.Errorf("%w: --key (or SYNCGATE_PUBLISH_KEY, or SYNCGATE_PUBLISH_KEYS) is required with a gateway URL", errUsage)
		}
		if err := (publisher.Config{URL: c.URL, Key: c.Key}).Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, strings.TrimPrefix(err.Error(), "publisher: Config.URL "))
		}
	}
	if c.Type == "" {
		for _, name := range []string{"id", "document", "old-document", "actor"} {
			if set[name] {
				return nil, fmt.Errorf("%w: --%s needs --type (the one-event mode); JSON lines carry their own fields", errUsage, name)
			}
		}
	} else if set["file"] {
		return nil, fmt.Errorf("%w: --type publishes one event from flags; --file publishes JSON lines; not both", errUsage)
	}
	if c.Batch < 1 || c.Batch > publisher.MaxRequestEvents {
		return nil, fmt.Errorf("%w: --batch %d: want 1 to %d", errUsage, c.Batch, publisher.MaxRequestEvents)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"linger", c.Linger}, {"progress", c.Progress}} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: --%s %s: must not be negative", errUsage, d.flag, d.v)
		}
	}
	if c.Timeout <= 0 {
		return nil, fmt.Errorf("%w: --timeout %s: must be more than 0", errUsage, c.Timeout)
	}
	if c.Retries < 0 {
		return nil, fmt.Errorf("%w: --retries %d: must not be negative (0: none)", errUsage, c.Retries)
	}
	return c, nil
}

// readDocument resolves --document: inline JSON, @file, or @- for stdin.
func readDocument(flagName, v string, stdin io.Reader) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	if !strings.HasPrefix(v, "@") {
		return []byte(v), nil
	}
	var data []byte
	var err error
	if v == "@-" {
		data, err = io.ReadAll(io.LimitReader(stdin, publisher.MaxRequestBytes+1))
	} else {
		data, err = os.ReadFile(v[1:])
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %v", flagName, v, err)
	}
	return data, nil
}

// firstKey is the first non-empty key of a comma-separated list such as
// SYNCGATE_PUBLISH_KEYS, or "".
func firstKey(keys string) string {
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			return k
		}
	}
	return ""
}
