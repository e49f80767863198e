package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

var errUnknownKey = errors.New("unknown key id")

// fetchTimeout bounds one JWKS fetch, and so how long a token with an
// unknown key id can wait for one.
const fetchTimeout = 10 * time.Second

// jwks caches the public keys of a JWKS URL.
//
// A fetch runs on a goroutine of its own (owned by the jwks, ended by
// fetchTimeout), one at a time, and mu is never held across it: a token
// whose key id is cached is verified at once even while a slow JWKS
// endpoint is being asked, and tokens with unknown key ids wait for the one
// fetch in flight (or their context) instead of starting more.
type jwks struct {
	url    string
	client *http.Client
	fresh  time.Duration
	minGap time.Duration
	now    func() time.Time

	mu        sync.Mutex // guards the fields below; never held across I/O
	keys      map[string]crypto.PublicKey
	fetchedAt time.Time
	triedAt   time.Time
	fetching  chan struct{} // closed when the fetch in flight ends; nil when none
	lastErr   error         // the last fetch's failure; nil after a success
}

// key returns the key with id kid for alg. A cached key is returned at once
// (a stale set is refreshed in the background); an unknown kid starts a
// fetch, at most once per minGap, or joins the one in flight, and waits for
// it until ctx ends.
func (j *jwks) key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if j == nil {
		return nil, fmt.Errorf("%w: no JWKS configured for %s", errUnknownKey, alg)
	}
	j.mu.Lock()
	k, ok := j.keys[kid]
	done := j.startFetchLocked(!ok)
	j.mu.Unlock()
	if !ok && done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w %q: waiting for the JWKS: %w", errUnknownKey, kid, ctx.Err())
		}
		j.mu.Lock()
		k, ok = j.keys[kid]
		err := j.lastErr
		j.mu.Unlock()
		if !ok && err != nil {
			return nil, fmt.Errorf("%w %q: fetching JWKS: %v", errUnknownKey, kid, err)
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKey, kid)
	}
	switch k.(type) {
	case *rsa.PublicKey:
		if alg == "RS256" {
			return k, nil
		}
	case *ecdsa.PublicKey:
		if alg == "ES256" {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w %q: key type does not match algorithm %s", errUnknownKey, kid, alg)
}

// startFetchLocked, called with mu held, starts a fetch when one is due (the
// set is stale, or a key is wanted that it lacks, and minGap has passed
// since the last try) and returns the channel that closes when the fetch in
// flight ends, or nil when there is none. A failed fetch keeps the cached
// keys.
func (j *jwks) startFetchLocked(wanted bool) <-chan struct{} {
	if j.fetching != nil {
		return j.fetching
	}
	now := j.now()
	stale := now.Sub(j.fetchedAt) > j.fresh
	if !(wanted || stale) || now.Sub(j.triedAt) < j.minGap {
		return nil
	}
	j.triedAt = now
	done := make(chan struct{})
	j.fetching = done
	go func() {
		defer close(done)
		keys, err := j.fetch()
		j.mu.Lock()
		defer j.mu.Unlock()
		if err == nil {
			j.keys, j.fetchedAt = keys, now
		}
		j.lastErr = err
		j.fetching = nil
	}()
	return done
}

type jsonKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// fetch asks the JWKS URL for its keys. It does not take the caller's
// context: other callers may be waiting for the same fetch.
func (j *jwks) fetch() (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set struct {
		Keys []jsonKey `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pk, err := parseJWK(k)
		if err != nil {
			continue // one unusable key must not hide the others
		}
		keys[k.Kid] = pk
	}
	return keys, nil
}

func parseJWK(k jsonKey) (crypto.PublicKey, error) {
	b64 := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 || len(n) < 256 {
			return nil, fmt.Errorf("bad RSA key %q", k.Kid)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("bad EC key %q", k.Kid)
		}
		// Build the uncompressed point and let ecdh-backed parsing check it
		// is on the curve.
		pt := append([]byte{4}, append(x, y...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return nil, fmt.Errorf("bad EC key %q: %v", k.Kid, err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}
