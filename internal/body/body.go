// Package body is the one bounded decoder every request body goes
// through: it limits the size as received and, after at most one
// Content-Encoding layer, the size decoded, so a few hundred compressed
// bytes cannot inflate to gigabytes.
package body

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// TooLargeError is a body over a limit, as received (Decoded false) or
// after decoding.
type TooLargeError struct {
	Limit   int
	Decoded bool
}

func (e *TooLargeError) Error() string {
	if e.Decoded {
		return fmt.Sprintf("request body is larger than %d bytes once decoded", e.Limit)
	}
	return fmt.Sprintf("request body is larger than %d bytes", e.Limit)
}

// EncodingError is a Content-Encoding the server does not accept, or a
// body that does not decode as its Content-Encoding says.
type EncodingError struct {
	// Unsupported is true for an encoding (or a stack of encodings) the
	// server does not accept (415), false for a body that is not valid in
	// its encoding (400).
	Unsupported bool
	Msg         string
}

func (e *EncodingError) Error() string { return e.Msg }

// Limits are the bounds of one route's body.
type Limits struct {
	// Raw bounds the body as received (compressed).
	Raw int
	// Decoded bounds the body after its Content-Encoding is removed.
	Decoded int
}

// Decode returns raw with its Content-Encoding (the header's value)
// removed. It accepts identity (none), gzip and deflate, at most one layer:
// "gzip, gzip" is refused as unsupported rather than inflated twice.
// Decoding stops at lim.Decoded+1 bytes, so memory stays bounded whatever
// the ratio.
func Decode(raw []byte, contentEncoding string, lim Limits) ([]byte, error) {
	if len(raw) > lim.Raw {
		return nil, &TooLargeError{Limit: lim.Raw}
	}
	var layers []string
	for _, l := range strings.Split(contentEncoding, ",") {
		if l = strings.ToLower(strings.TrimSpace(l)); l != "" && l != "identity" {
			layers = append(layers, l)
		}
	}
	if len(layers) == 0 {
		if len(raw) > lim.Decoded {
			return nil, &TooLargeError{Limit: lim.Decoded, Decoded: true}
		}
		return raw, nil
	}
	if len(layers) > 1 {
		return nil, &EncodingError{Unsupported: true, Msg: fmt.Sprintf("Content-Encoding %q: at most one encoding is accepted", contentEncoding)}
	}
	var r io.Reader
	switch layers[0] {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, &EncodingError{Msg: "body is not valid gzip: " + err.Error()}
		}
		zr.Multistream(false)
		r = zr
	case "deflate":
		r = flate.NewReader(bytes.NewReader(raw))
	default:
		return nil, &EncodingError{Unsupported: true, Msg: fmt.Sprintf("Content-Encoding %q is not supported (gzip or deflate)", layers[0])}
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(lim.Decoded)+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &EncodingError{Msg: fmt.Sprintf("body is not valid %s: %v", layers[0], err)}
	}
	if len(out) > lim.Decoded {
		return nil, &TooLargeError{Limit: lim.Decoded, Decoded: true}
	}
	return out, nil
}
