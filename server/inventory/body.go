package inventory

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Errors of DecodeUpload, for the handler to map to HTTP statuses.
var (
	// ErrTooLarge: the body is above proto.MaxInventoryBodyBytes as sent or
	// proto.MaxInventoryBytes decompressed (413).
	ErrTooLarge = errors.New("inventory too large")
	// ErrEncoding: a Content-Encoding other than gzip or identity (415).
	ErrEncoding = errors.New("unsupported content encoding")
	// ErrInvalid: not gzip, not JSON, or not a valid upload (400).
	ErrInvalid = errors.New("invalid inventory")
)

// DecodeUpload decodes the body of PUT /devices/{id}/inventory as sent
// with Content-Encoding encoding ("" or "identity", or "gzip"). It never
// holds more than proto.MaxInventoryBytes of decompressed JSON, however
// much a gzip bomb would expand to, and validates the upload.
func DecodeUpload(body []byte, encoding string) (proto.InventoryUpload, error) {
	var up proto.InventoryUpload
	if len(body) > proto.MaxInventoryBodyBytes {
		return up, fmt.Errorf("%w: %d bytes sent, at most %d", ErrTooLarge, len(body), proto.MaxInventoryBodyBytes)
	}
	var r io.Reader = bytes.NewReader(body)
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return up, fmt.Errorf("%w: not a gzip stream: %v", ErrInvalid, err)
		}
		defer zr.Close()
		r = zr
	default:
		return up, fmt.Errorf("%w %q: send gzip or no Content-Encoding", ErrEncoding, encoding)
	}
	raw, err := io.ReadAll(io.LimitReader(r, proto.MaxInventoryBytes+1))
	if err != nil {
		return up, fmt.Errorf("%w: reading the body: %v", ErrInvalid, err)
	}
	if len(raw) > proto.MaxInventoryBytes {
		return up, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, proto.MaxInventoryBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&up); err != nil {
		return proto.InventoryUpload{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return proto.InventoryUpload{}, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if err := up.Validate(); err != nil {
		return proto.InventoryUpload{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return up, nil
}
