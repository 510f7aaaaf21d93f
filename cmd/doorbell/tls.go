package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

// tlsFlags are serve's TLS flags.
type tlsFlags struct {
	mode, cert, key, sans string
	deviceTTL             time.Duration
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.mode, "tls", "auto", "auto: HTTPS and MQTT over TLS with a private CA kept in <data>/tls; off: plain listeners (loopback only, please)")
	fs.StringVar(&f.cert, "tls-cert", "", "the operator's own server certificate chain (PEM); needs --tls-key")
	fs.StringVar(&f.key, "tls-key", "", "the key of --tls-cert (PEM)")
	fs.StringVar(&f.sans, "tls-san", "", "extra comma-separated DNS names or IPs for the generated server certificate")
	fs.DurationVar(&f.deviceTTL, "device-cert-ttl", pki.DefaultDeviceCertTTL, "lifetime of a device certificate (agents renew when a third remains)")
	return f
}

// config is the daemon's TLS configuration, nil for --tls off.
func (f *tlsFlags) config() (*pki.Config, error) {
	switch f.mode {
	case "off":
		if f.cert != "" || f.key != "" {
			return nil, errors.New("--tls off contradicts --tls-cert/--tls-key")
		}
		return nil, nil
	case "auto", "":
	default:
		return nil, fmt.Errorf("--tls must be auto or off, not %q", f.mode)
	}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.deviceTTL <= 0 {
		return nil, errors.New("--device-cert-ttl must be positive")
	}
	c := &pki.Config{CertFile: f.cert, KeyFile: f.key, DeviceCertTTL: f.deviceTTL}
	for _, s := range strings.Split(f.sans, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Hosts = append(c.Hosts, s)
		}
	}
	return c, nil
}

// applyTrustFlags fills the agent's server, pin and token from the
// enrollment string (explicit flags win) and reads the CA file.
func applyTrustFlags(cfg *agent.Config, caFile, enrollURL string) error {
	if enrollURL != "" {
		e, err := agent.ParseEnrollURL(enrollURL)
		if err != nil {
			return fmt.Errorf("agent: --enroll-url: %w", err)
		}
		if cfg.ServerURL == "" {
			cfg.ServerURL = e.Server
		}
		if cfg.ServerPin == "" {
			cfg.ServerPin = e.Pin
		}
		if cfg.EnrollToken == "" {
			cfg.EnrollToken = e.Token
		}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("agent: --ca-file: %w", err)
		}
		cfg.ServerCA = b
	}
	return nil
}
