package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is one load run, from flags.
type config struct {
	URLs          []string // gateway base URLs (http://host:port); clients spread over them
	PublishURLs   []string // base URLs publishing posts to (worker w uses PublishURLs[w mod len]); default URLs[0]
	Transport     string   // ws (/v1/ws) or sse (/v1/sse)
	Conns         int
	Subs          int // subscriptions per connection
	Projects      int
	Collections   int // per project
	ProjectPrefix string
	Secret        string
	TokenTTL      time.Duration
	Ramp          float64 // connections per second; 0: as fast as DialConcurrency allows
	DialConc      int
	SourceIPs     int // spread connections over 127.0.0.1 … 127.0.0.N
	SourceFirst   int // the first source address is 127.0.0.SourceFirst

	Rate       float64 // events per second in total; 0 with Duration: as fast as possible
	Size       int     // approximate encoded event size in bytes
	Duration   time.Duration
	Mode       string        // http, http-batch, redis
	Batch      int           // events per request in http-batch and redis modes
	Interval   time.Duration // with http-batch/redis: one request per interval carrying what is due
	Publishers int           // concurrent publishing workers, each owning a share of the streams
	Key        string
	RedisURL   string

	Drain    time.Duration // how long to wait for outstanding deliveries after publishing
	Settle   time.Duration // pause after connecting before the idle sample
	Hold     time.Duration // keep idle connections open this long (idle scenario)
	Progress time.Duration

	PIDs       []int
	MetricsURL []string
	JSONPath   string
	Label      string
	CPUProfile string
	ProfileDir string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls := fs.String("url", "http://127.0.0.1:8080", "gateway base URL(s), comma-separated; connections are spread round-robin")
	purls := fs.String("publish-url", "", "base URL(s), comma-separated, to publish to over HTTP; publisher w posts to the (w mod n)-th, so each stream still goes through one (default: the first -url; \"all\": every -url)")
	fs.StringVar(&c.Transport, "transport", "ws", "how clients subscribe: ws (WebSocket, /v1/ws) or sse (Server-Sent Events, /v1/sse, one stream with a sub= per subscription)")
	fs.IntVar(&c.Conns, "conns", 100, "client connections to open")
	fs.IntVar(&c.Subs, "subs", 1, "subscriptions per connection")
	fs.IntVar(&c.Projects, "projects", 1, "projects")
	fs.IntVar(&c.Collections, "collections", 1, "collections per project; connection i subscribes to streams (i*subs+j) mod (projects*collections)")
	fs.StringVar(&c.ProjectPrefix, "project-prefix", "lg", "project names are <prefix><n>")
	fs.StringVar(&c.Secret, "secret", "", "HS256 secret to mint client tokens with (the gateway's SYNCGATE_JWT_SECRET)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", time.Hour, "lifetime of minted tokens")
	fs.Float64Var(&c.Ramp, "ramp", 0, "connections opened per second; 0 means as fast as -dial-concurrency allows")
	fs.IntVar(&c.DialConc, "dial-concurrency", 64, "connection attempts in flight at once")
	fs.IntVar(&c.SourceIPs, "source-ips", 0, "spread connections over 127.0.0.1…127.0.0.N (0: one per 25,000 connections)")
	fs.IntVar(&c.SourceFirst, "source-ip-first", 1, "first loopback source address 127.0.0.N; give concurrent load generators disjoint ranges")
	fs.Float64Var(&c.Rate, "rate", 100, "events published per second in total, spread round-robin over all streams; 0 means as fast as possible")
	fs.IntVar(&c.Size, "size", 200, "approximate encoded size of one event in bytes (padding in the document)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to publish; 0 publishes nothing (idle run)")
	fs.StringVar(&c.Mode, "publish", "http-batch", "how to publish: http (one event per request), http-batch (-batch events per request) or redis (straight into Redis)")
	fs.IntVar(&c.Batch, "batch", 100, "most events per request for http-batch and redis")
	fs.DurationVar(&c.Interval, "batch-interval", 0, "http-batch and redis: send what is due once per interval (e.g. 50ms) instead of as soon as one event is due")
	fs.IntVar(&c.Publishers, "publishers", 1, "concurrent publishing workers; each owns the streams with index mod publishers == its number, so per-stream order is kept")
	fs.StringVar(&c.Key, "key", "", "publish key (the gateway's SYNCGATE_PUBLISH_KEYS)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL for -publish redis")
	fs.DurationVar(&c.Drain, "drain", 15*time.Second, "after publishing, wait at most this long for every expected event")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "pause after connecting before sampling the idle gateway")
	fs.DurationVar(&c.Hold, "hold", 0, "keep the connections open this long after the idle sample (idle runs)")
	fs.DurationVar(&c.Progress, "progress", 2*time.Second, "progress line interval on stderr; 0 for none")
	pids := fs.String("pid", "", "gateway PID(s), comma-separated, to sample RSS and CPU seconds from /proc")
	murls := fs.String("metrics", "", "gateway metrics URL(s), comma-separated (http://host:port/metrics), for go_goroutines and heap figures")
	fs.StringVar(&c.JSONPath, "json", "", "write the JSON report to this file ('-' for stdout)")
	fs.StringVar(&c.Label, "label", "", "a name for this run, copied into the report")
	fs.StringVar(&c.ProfileDir, "gateway-profiles", "", "fetch each gateway's CPU profile over the publishing phase and its heap profile at its end (or after the idle sample when nothing is published) into this directory; needs -metrics and the gateway's pprof endpoint (SYNCGATE_PPROF=true)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the load generator's own CPU profile here (to check that it is not the bottleneck)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.URLs = splitList(*urls)
	for _, p := range splitList(*pids) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-pid %q: want process ids", *pids)
		}
		c.PIDs = append(c.PIDs, n)
	}
	c.MetricsURL = splitList(*murls)
	switch *purls {
	case "":
		if len(c.URLs) > 0 {
			c.PublishURLs = c.URLs[:1]
		}
	case "all":
		c.PublishURLs = c.URLs
	default:
		c.PublishURLs = splitList(*purls)
	}
	if c.SourceIPs == 0 {
		c.SourceIPs = c.Conns/25000 + 1
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.URLs) == 0 {
		bad("-url: at least one gateway URL is needed")
	}
	for _, u := range c.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("-url %q: want http://host:port", u)
		}
	}
	for _, u := range c.PublishURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("-publish-url %q: want http://host:port", u)
		}
	}
	if len(c.PublishURLs) > c.Publishers && c.Mode != "redis" && c.Duration > 0 {
		bad("-publish-url: %d URLs but -publishers %d: give each URL a publisher at least", len(c.PublishURLs), c.Publishers)
	}
	if c.Conns < 0 || c.Subs < 1 || c.Projects < 1 || c.Collections < 1 {
		bad("-conns ≥ 0, -subs, -projects and -collections ≥ 1 (got %d, %d, %d, %d)", c.Conns, c.Subs, c.Projects, c.Collections)
	}
	if c.Subs > c.Projects*c.Collections {
		bad("-subs %d exceeds the %d streams (-projects × -collections): a connection would subscribe twice", c.Subs, c.Projects*c.Collections)
	}
	if c.Secret == "" && c.Conns > 0 {
		bad("-secret is required to mint client tokens")
	}
	if c.SourceIPs < 1 || c.SourceFirst < 1 || c.SourceFirst+c.SourceIPs-1 > 254 {
		bad("-source-ip-first %d -source-ips %d: the addresses must lie in 127.0.0.1..127.0.0.254", c.SourceFirst, c.SourceIPs)
	}
	if c.Transport != "ws" && c.Transport != "sse" {
		bad("-transport %q: want ws or sse", c.Transport)
	}
	if c.DialConc < 1 {
		bad("-dial-concurrency must be ≥ 1")
	}
	if c.Rate < 0 || c.Size < 0 || c.Batch < 1 || c.Batch > 1000 || c.Publishers < 1 {
		bad("-rate ≥ 0, -size ≥ 0, -batch 1..1000, -publishers ≥ 1")
	}
	switch c.Mode {
	case "http", "http-batch":
		if c.Duration > 0 && c.Key == "" {
			bad("-key (a publish key) is required for -publish %s", c.Mode)
		}
	case "redis":
		if c.Duration > 0 && c.RedisURL == "" {
			bad("-redis-url is required for -publish redis")
		}
	default:
		bad("-publish %q: want http, http-batch or redis", c.Mode)
	}
	if len(c.MetricsURL) > 0 && len(c.PIDs) > 0 && len(c.MetricsURL) != len(c.PIDs) {
		bad("-metrics and -pid: give one metrics URL per PID, in the same order")
	}
	return errors.Join(errs...)
}

// streams is the number of distinct (project, collection) streams.
func (c *config) streams() int { return c.Projects * c.Collections }

// stream k's project and collection.
func (c *config) stream(k int) (project, collection string) {
	return c.ProjectPrefix + strconv.Itoa(k/c.Collections), "c" + strconv.Itoa(k%c.Collections)
}

// lanes is how many publishers share each stream: 1 when there are at
// least as many streams as publishers (publisher w owns the streams k with
// k mod Publishers == w), else ceil(Publishers/streams) (publisher w
// publishes stream w mod streams as its lane w / streams).
func (c *config) lanes() int {
	if n := c.streams(); n < c.Publishers {
		return (c.Publishers + n - 1) / n
	}
	return 1
}

// lane indexes pubStats.seqs: stream k's lane j.
func (c *config) lane(k, j int) int { return k*c.lanes() + j }

// owned is publisher w's streams and its lane in each.
func (c *config) owned(w int) (streams []int, lane int) {
	if n := c.streams(); n < c.Publishers {
		return []int{w % n}, w / n
	}
	for k := w; k < c.streams(); k += c.Publishers {
		streams = append(streams, k)
	}
	return streams, 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
