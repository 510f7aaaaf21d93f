package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

// openPKI opens the CA and the server certificate when TLS is on and wraps
// nothing yet; the listeners are wrapped by brokerTLS and NewDaemon.
func (d *Daemon) openPKI() error {
	if d.cfg.TLS == nil {
		if !loopback(d.cfg.HTTPAddr) || !loopback(d.cfg.MQTTAddr) {
			d.logger.Warn("TLS is off on a non-loopback address: secrets and policies travel in clear text", "http", d.cfg.HTTPAddr, "mqtt", d.cfg.MQTTAddr)
		}
		return nil
	}
	c := *d.cfg.TLS
	if c.Dir == "" {
		c.Dir = filepath.Join(d.cfg.DataDir, "tls")
	}
	if d.pg != nil && c.Files == nil {
		// Every replica serves the same CA and certificate.
		c.Files = d.pg.PKIFiles()
	}
	if c.Logger == nil {
		c.Logger = d.cfg.Logger
	}
	httpHost, _, _ := net.SplitHostPort(d.cfg.HTTPAddr)
	mqttHost, _, _ := net.SplitHostPort(d.cfg.MQTTAddr)
	c.Hosts = pki.DefaultHosts(httpHost, append([]string{mqttHost}, c.Hosts...)...)
	a, err := pki.Open(c)
	if err != nil {
		return fmt.Errorf("setting up TLS: %w", err)
	}
	d.pki = a
	return nil
}

// brokerTLS adds MQTT over TLS and the client certificate check to bc when
// TLS is on.
func (d *Daemon) brokerTLS(bc broker.Config) broker.Config {
	if d.pki == nil {
		return bc
	}
	bc.TLS = d.countHandshakes(d.pki.TLSConfig(), "mqtt")
	bc.CheckClientCert = d.checkMQTTCert
	return bc
}

// checkMQTTCert applies the API's rule to an MQTT login over TLS: a
// presented certificate must be the device's own from our CA; a device that
// was issued one must present it. Operators log in without one.
func (d *Daemon) checkMQTTCert(username string, device bool, cs tls.ConnectionState) error {
	if !device {
		if len(cs.PeerCertificates) > 0 {
			return errors.New("operators log in without a client certificate")
		}
		return nil
	}
	dev, err := d.store.DeviceAuth(context.Background(), username)
	if err != nil {
		return fmt.Errorf("loading device: %w", err)
	}
	if len(cs.PeerCertificates) == 0 {
		if dev.ClientCert {
			return errors.New("this device was issued a certificate and must present it")
		}
		return nil
	}
	return d.pki.VerifyDevice(cs.PeerCertificates, username)
}

// wrapHTTP turns the API listener into an HTTPS one when TLS is on.
func (d *Daemon) wrapHTTP(ln net.Listener) net.Listener {
	if d.pki == nil {
		return ln
	}
	return tls.NewListener(ln, d.countHandshakes(d.pki.TLSConfig(), "http"))
}

// newHandshakeCounter is doorbell_tls_handshakes_total.
func newHandshakeCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "doorbell_tls_handshakes_total",
		Help: "TLS handshakes completed, by listener (http, mqtt) and whether the client resumed a session (resumed=\"true\": no certificates sent or verified).",
	}, []string{"listener", "resumed"})
}

// countHandshakes makes c count its completed handshakes as listener's.
func (d *Daemon) countHandshakes(c *tls.Config, listener string) *tls.Config {
	full, resumed := d.handshakes.WithLabelValues(listener, "false"), d.handshakes.WithLabelValues(listener, "true")
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Inc()
		} else {
			full.Inc()
		}
		return nil
	}
	return c
}

// PKI is the server's certificate authority, nil when TLS is off.
func (d *Daemon) PKI() *pki.Authority { return d.pki }

// Pin is the SPKI pin agents use for this server ("" when TLS is off).
func (d *Daemon) Pin() string {
	if d.pki == nil {
		return ""
	}
	return d.pki.Pin()
}

// EnrollURL is the QR-friendly enrollment string for this server:
// doorbell://enroll?server=<https URL>&pin=<pin>, plus &token=<token> when
// withToken. It is "" when TLS is off.
func (d *Daemon) EnrollURL(withToken bool) string {
	if d.pki == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(d.HTTPAddr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host, _ = os.Hostname()
	}
	s := proto.EnrollURLScheme + "://enroll?server=" + url.QueryEscape("https://"+net.JoinHostPort(host, port)) +
		"&pin=" + url.QueryEscape(d.Pin())
	if withToken {
		s += "&token=" + url.QueryEscape(d.cfg.EnrollToken)
	}
	return s
}

// announceTLS prints the CA, the pin and the enrollment string to Out (never
// to the log: the string may carry the enrollment token). The token is in it
// only on the start that generated the token, like the token itself.
func (d *Daemon) announceTLS(withToken bool) {
	if d.pki == nil {
		return
	}
	fmt.Fprintf(d.cfg.Out, "TLS on. Agents verify this server with --server-pin %s (or --ca-file %s).\n",
		d.Pin(), filepath.Join(d.pki.Dir(), pki.CAFile))
	if withToken {
		fmt.Fprintf(d.cfg.Out, "Enrollment string (shown only now): %s\n", d.EnrollURL(true))
	} else {
		fmt.Fprintf(d.cfg.Out, "Enrollment string (add &token=<enrollment token>): %s\n", d.EnrollURL(false))
	}
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
