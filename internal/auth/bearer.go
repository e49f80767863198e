package auth

import "strings"

// BearerToken returns the credential of an Authorization header value in the
// Bearer scheme, or "" when there is none. The scheme is matched without
// regard to case, as RFC 7235 says ("Bearer", "bearer" and "BEARER" are one
// scheme), and spaces around the credential are dropped. Every path that
// takes a token or key from the header (publish, /v1/ws, /socket.io/) uses
// it, so that they agree on what they accept.
func BearerToken(header string) string {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}
