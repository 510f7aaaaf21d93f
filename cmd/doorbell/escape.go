package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// safe makes a string from a device (or anything a device can influence)
// printable in a terminal table: control characters (C0, DEL, C1: escape
// sequences, newlines, carriage returns, tabs that tabwriter would take as
// a column), Unicode format characters (bidi overrides, zero-width ones)
// and invalid UTF-8 are shown as Go escapes (\x1b, \n, \u202e), and a
// backslash as \\ so an escape cannot be forged. Everything else, non-ASCII
// letters included, is shown as is. Every device string the CLI prints in
// a table goes through it; --json output is escaped by the JSON encoder.
func safe(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r == '\\' || r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		r == '\u2028' || r == '\u2029'
}
