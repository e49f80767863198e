package redistest

import "testing"

// FreePort returns a loopback port that was free a moment ago, chosen below
// the kernel's ephemeral range so no outgoing connection of a concurrent
// test takes it before the caller's server binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t, false)
}
