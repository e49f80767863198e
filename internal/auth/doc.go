// Package auth verifies client tokens (JWT) and publish keys.
//
// Client tokens are HS256 with a shared secret or RS256/ES256 with keys from
// a JWKS URL; the algorithm allow-list never mixes the two, so a public key
// can never be used as an HMAC secret. Every failure wraps ErrInvalidToken
// and carries a short reason for metrics. A Verifier is safe for concurrent
// use; it fetches the JWKS on first use and again when it is stale or a
// token names an unknown key (at most once per MinRefresh), one fetch at a
// time and never under a lock that a token with a cached key needs.
package auth
