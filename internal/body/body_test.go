package body

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestDecodeBounded: a decompression bomb (one or two gzip layers, the
// finding of issue 17) is refused after at most the decoded limit; a
// normal body decodes.
func TestDecodeBounded(t *testing.T) {
	lim := Limits{Raw: 64 << 10, Decoded: 64 << 10}
	zeros := make([]byte, 16<<20) // 16 MiB of zeros: ~16 KiB gzipped once
	once := gz(t, zeros)
	twice := gz(t, once)
	t.Logf("16 MiB bomb: %d bytes gzipped once, %d twice", len(once), len(twice))
	small := []byte(`{"cameraDisabled":true}`)
	var defl bytes.Buffer
	fw, _ := flate.NewWriter(&defl, flate.BestCompression)
	fw.Write(small)
	fw.Close()
	tests := []struct {
		name     string
		raw      []byte
		encoding string
		want     []byte
		tooLarge bool
		enc      bool
	}{
		{"plain", small, "", small, false, false},
		{"identity", small, "identity", small, false, false},
		{"gzip", gz(t, small), "gzip", small, false, false},
		{"deflate", defl.Bytes(), "Deflate", small, false, false},
		{"bomb, two layers", twice, "gzip, gzip", nil, false, true},
		{"bomb, one layer, compressed size within limit", gz(t, make([]byte, 10<<20)), "gzip", nil, true, false},
		{"raw too large", make([]byte, 65<<10), "", nil, true, false},
		{"fields past the limit once decoded", gz(t, []byte(`{"model":"`+strings.Repeat("a", 70<<10)+`"}`)), "gzip", nil, true, false},
		{"unsupported", small, "br", nil, false, true},
		{"not gzip", small, "gzip", nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.raw, tt.encoding, lim)
			var tl *TooLargeError
			var ee *EncodingError
			switch {
			case tt.tooLarge:
				if !errors.As(err, &tl) {
					t.Fatalf("Decode = %d bytes, %v; want TooLargeError", len(got), err)
				}
			case tt.enc:
				if !errors.As(err, &ee) {
					t.Fatalf("Decode = %d bytes, %v; want EncodingError", len(got), err)
				}
			default:
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("Decode = %q, %v; want %q", got, err, tt.want)
				}
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
}
