// Package demo serves the development demo page: a small single-page app,
// built from the browser SDK in clients/js (npm run build:demo), that reads a
// client token from the URL fragment (#token=…), connects to the same
// origin's /v1/ws and shows events and documents as they arrive.
//
// The built files are committed under static/ and embedded, so `go build`
// needs no npm. The handler is stateless and safe for concurrent use; the
// gateway mounts it at "/" on development nodes only.
package demo

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy lets the page load only its own files and open
// WebSockets; it never needs anything from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler returns the handler that serves the demo page and its assets
// (GET and HEAD; anything else is 405).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("demo: embedded static files missing: " + err.Error()) // a build defect, not a runtime condition
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
