// Package auth verifies client credentials and publish keys.
//
// Client tokens are HS256 with a shared secret or RS256/ES256 with keys from
// a JWKS URL; the algorithm allow-list never mixes the two, so a public key
// can never be used as an HMAC secret. Every refusal wraps ErrInvalidToken
// and carries a short reason for metrics. A Verifier is safe for concurrent
// use; it fetches the JWKS on first use and again when it is stale or a
// token names an unknown key (at most once per MinRefresh), one fetch at a
// time and never under a lock that a token with a cached key needs.
//
// With a webhook configured (webhook.go), a credential that is not a JWT
// the Verifier can verify is POSTed to an HTTP backend, whose answer carries
// the same claims. Concurrent verifications of one credential share one
// call, answers are cached under the credential's SHA-256 (never the
// credential itself), and calls in flight are bounded. A backend that does
// not answer properly is a temporary failure (ErrUnavailable, close 1013),
// never a refusal; CloseCode and ExpiryCloseCode hold that mapping for
// every transport, and Claims.Renew asks again when webhook claims reach exp.
package auth
