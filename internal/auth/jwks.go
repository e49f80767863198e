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

// jwks caches the public keys of a JWKS URL.
type jwks struct {
	url    string
	client *http.Client
	fresh  time.Duration
	minGap time.Duration
	now    func() time.Time

	mu        sync.Mutex // serialises fetches and guards the fields below
	keys      map[string]crypto.PublicKey
	fetchedAt time.Time
	triedAt   time.Time
}

// key returns the key with id kid for alg, fetching the set when it is stale
// or does not hold kid (at most once per minGap).
func (j *jwks) key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if j == nil {
		return nil, fmt.Errorf("%w: no JWKS configured for %s", errUnknownKey, alg)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	k, ok := j.keys[kid]
	stale := now.Sub(j.fetchedAt) > j.fresh
	if (!ok || stale) && now.Sub(j.triedAt) >= j.minGap {
		j.triedAt = now
		keys, err := j.fetch(ctx)
		if err == nil {
			j.keys, j.fetchedAt = keys, now
			k, ok = keys[kid]
		} else if !ok {
			return nil, fmt.Errorf("%w %q: fetching JWKS: %v", errUnknownKey, kid, err)
		}
		// On a failed refresh keep serving the cached keys.
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

func (j *jwks) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
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
