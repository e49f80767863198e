package auth

import (
	"crypto/subtle"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// SignHS256 mints an HS256 token carrying c. The gateway uses it for the
// development token it prints; tests and the load generator use it too.
func SignHS256(secret []byte, c Claims) (string, error) {
	mc := jwt.MapClaims{"sub": c.Subject, "exp": c.ExpiresAt.Unix(), "projects": c.Projects}
	if c.Collections != nil {
		mc["collections"] = c.Collections
	}
	if c.Roles != nil {
		mc["roles"] = c.Roles
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(secret)
}

// Keys is a set of publish keys.
type Keys [][]byte

// ParseKeys splits a comma-separated list, dropping empty entries.
func ParseKeys(list string) Keys {
	var ks Keys
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			ks = append(ks, []byte(k))
		}
	}
	return ks
}

// Check reports whether key is one of the set. It compares against every key
// in constant time so the answer's timing does not reveal a prefix.
func (ks Keys) Check(key string) bool {
	ok := 0
	for _, k := range ks {
		ok |= subtle.ConstantTimeCompare(k, []byte(key))
	}
	return ok == 1 && len(key) > 0
}
