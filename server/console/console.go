// Package console is the Doorbell MDM web console: plain HTML, CSS and
// JavaScript embedded in the binary, served by `doorbell serve` at /. It has no
// build step and no access to the server's internals: the browser talks to the
// public REST API and GET /events with the operator's token, like any other
// client.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"
)

//go:embed index.html ui
var files embed.FS

// Asset is one file of the console, ready to serve.
type Asset struct {
	Body        []byte
	ContentType string
	// ETag is a strong validator derived from the content.
	ETag string
}

var assets = load()

func load() map[string]Asset {
	m := map[string]Asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		m["/"+p] = Asset{Body: b, ContentType: ct, ETag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading embedded files: " + err.Error()) // the embed is fixed at build time
	}
	return m
}

// Lookup returns the asset served at urlPath: "/" is the page itself,
// "/ui/..." its scripts, styles and icons.
func Lookup(urlPath string) (Asset, bool) {
	if urlPath == "/" || urlPath == "" {
		urlPath = "/index.html"
	}
	if strings.Contains(urlPath, "..") {
		return Asset{}, false
	}
	a, ok := assets[urlPath]
	return a, ok
}

// SecurityHeaders are sent with every console file. The page loads only its
// own scripts and styles and talks only to its own origin, so a device-chosen
// string that slipped into the page could not run or call out.
var SecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}
