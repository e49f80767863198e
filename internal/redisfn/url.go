package redisfn

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Target is a parsed syncgate Redis URL: one of Single and Cluster is set.
type Target struct {
	Single  *redis.Options
	Cluster *redis.ClusterOptions
}

// ParseURL accepts redis://[user:pass@]host:port[/db] and rediss:// (TLS),
// and for Redis Cluster redis+cluster://host1:port,host2:port (or
// rediss+cluster://) or a redis:// URL with several comma-separated hosts.
// Query parameters are go-redis options (dial_timeout=…). A host without a
// port gets 6379. Errors quote the URL with its password hidden.
func ParseURL(raw string) (Target, error) {
	bad := func(why string) error {
		// Parser errors quote the URL; never let them carry the password.
		if pw := urlPassword(raw); pw != "" {
			why = strings.ReplaceAll(why, pw, "xxxxx")
		}
		return fmt.Errorf("redis URL %q: %s", RedactURL(raw), why)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, bad("want redis://host:port, rediss://…, or redis+cluster://host1:port,host2:port")
	}
	isCluster := false
	switch scheme {
	case "redis", "rediss":
	case "redis+cluster", "rediss+cluster":
		isCluster = true
		scheme = strings.TrimSuffix(scheme, "+cluster")
	default:
		return Target{}, bad("scheme must be redis, rediss, redis+cluster or rediss+cluster")
	}
	// Split the authority (user:pass@host1,host2) from path and query.
	auth := rest
	tail := ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		auth, tail = rest[:i], rest[i:]
	}
	userinfo := ""
	hosts := auth
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		userinfo, hosts = auth[:i+1], auth[i+1:]
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			addrs = append(addrs, h)
		}
	}
	if len(addrs) == 0 {
		return Target{}, bad("no host")
	}
	if len(addrs) > 1 {
		isCluster = true
	}
	for i, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			addrs[i] = net.JoinHostPort(a, "6379")
		}
	}
	if !isCluster {
		o, err := redis.ParseURL(scheme + "://" + userinfo + addrs[0] + tail)
		if err != nil {
			return Target{}, bad(err.Error())
		}
		return Target{Single: o}, nil
	}
	if strings.HasPrefix(tail, "/") {
		p, q, _ := strings.Cut(tail, "?")
		if p != "/" && p != "/0" {
			return Target{}, bad("Redis Cluster has only database 0")
		}
		tail = ""
		if q != "" {
			tail = "?" + q
		}
	}
	u, err := url.Parse(scheme + "://" + userinfo + addrs[0] + tail)
	if err != nil {
		return Target{}, bad(err.Error())
	}
	q := u.Query()
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return Target{}, bad(err.Error())
	}
	return Target{Cluster: o}, nil
}

// urlPassword returns the password part of raw's userinfo, as written.
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:i], ":")
	return pw
}

// RedactURL hides a password for error messages and logs.
func RedactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "…"
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		userinfo := rest[:i]
		if u, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
			return scheme + "://" + u + ":xxxxx@" + rest[i+1:]
		}
	}
	return raw
}

// CommandOptions returns t's options for a command client that fails
// fast and never sends a command twice: no command retries (go-redis
// otherwise resends a command whose connection broke after it was
// written, which can publish twice), one dial attempt, a 2s dial timeout
// unless the URL sets one, and the caller's context deadlines honoured on
// the socket (ContextTimeoutEnabled: without it go-redis waits for its own
// read timeout on a Redis that accepts but does not answer). Exactly one of
// the results is non-nil, as in t.
func (t Target) CommandOptions() (*redis.Options, *redis.ClusterOptions) {
	if t.Single != nil {
		o := *t.Single
		failFast(&o.MaxRetries, &o.DialerRetries, &o.DialTimeout, &o.ContextTimeoutEnabled)
		return &o, nil
	}
	o := *t.Cluster
	failFast(&o.MaxRetries, &o.DialerRetries, &o.DialTimeout, &o.ContextTimeoutEnabled)
	return nil, &o
}

// failFast sets the fields CommandOptions sets, in either options type.
func failFast(maxRetries, dialerRetries *int, dialTimeout *time.Duration, contextTimeout *bool) {
	*maxRetries, *dialerRetries = -1, 1
	if *dialTimeout == 0 {
		*dialTimeout = 2 * time.Second
	}
	*contextTimeout = true
}

// CommandClient returns a new command client for t (CommandOptions): the
// client the publish and history calls want.
func (t Target) CommandClient() redis.UniversalClient {
	o, co := t.CommandOptions()
	if o != nil {
		return redis.NewClient(o)
	}
	return redis.NewClusterClient(co)
}
