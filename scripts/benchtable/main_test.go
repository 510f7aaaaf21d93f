package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSlicesCombine: the lines of simulator processes that ran slices of one
// fleet become one row (devices and counts added, the slowest slice's
// time); a later run's first slice starts a new row.
func TestSlicesCombine(t *testing.T) {
	in := strings.Join([]string{
		`{"scenario":"restart","mode":"mqtt","tls":true,"devices":7,"allCompliantMs":1000,"compliant":7,"httpsHandshakes":7,"httpsResumed":7,"slice":"1/2"}`,
		`{"scenario":"restart","mode":"mqtt","tls":true,"devices":9,"allCompliantMs":500,"reconnectsPerSec":18,"tlsHandshakesPerSec":36,"compliant":9,"httpsHandshakes":9,"httpsResumed":9,"slice":"1/2"}`,
		`{"scenario":"restart","mode":"mqtt","tls":true,"devices":11,"allCompliantMs":4000,"reconnectsPerSec":2.75,"tlsHandshakesPerSec":5.75,"compliant":10,"httpsHandshakes":12,"httpsResumed":11,"slice":"2/2"}`,
	}, "\n")
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"TLS, 20 devices, 2 sim processes", "4.00 s", "19 of 20 COMPLIANT", "5 devices/s, 10 TLS handshakes/s", "HTTPS resumed 20 of 21"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
