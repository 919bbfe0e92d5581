package monitor

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

//go:embed assets
var assets embed.FS

// dashboard serves the embedded page and its script and style.
func dashboard() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		files.ServeHTTP(w, r)
	})
}

func sortNodes(ns []NodeStats) {
	slices.SortFunc(ns, func(a, b NodeStats) int { return strings.Compare(a.ID, b.ID) })
}
