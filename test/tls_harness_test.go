package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// useTLS switches s to HTTPS: its client trusts the CA the server keeps in
// <data>/tls/ca.pem, and agents get the pin.
func (s *serverProc) useTLS(pin string) {
	s.t.Helper()
	s.pin = pin
	s.caFile = filepath.Join(s.dataDir, "tls", "ca.pem")
	s.url = "https://" + s.httpAddr
	s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: s.tlsConfig()}}
}

// tlsConfig trusts the server's CA and presents certs (a device's), nil
// when the server runs plain.
func (s *serverProc) tlsConfig(certs ...tls.Certificate) *tls.Config {
	s.t.Helper()
	if s.caFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.caFile)
	if err != nil {
		s.t.Fatalf("reading the server's CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		s.t.Fatalf("%s holds no certificate", s.caFile)
	}
	return &tls.Config{RootCAs: roots, Certificates: certs}
}

// mqttOptions are paho options for the server's broker (MQTT over TLS when
// the server runs TLS), presenting certs.
func (s *serverProc) mqttOptions(certs ...tls.Certificate) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().SetAutoReconnect(false)
	if c := s.tlsConfig(certs...); c != nil {
		return o.AddBroker("tls://" + s.mqttAddr).SetTLSConfig(c)
	}
	return o.AddBroker("tcp://" + s.mqttAddr)
}

// mosquittoTLSArgs are mosquitto_sub's arguments for the server's broker.
func (s *serverProc) mosquittoTLSArgs() []string {
	if s.caFile == "" {
		return nil
	}
	return []string{"--cafile", s.caFile}
}

// certificate is the agent's device certificate and key, as a TLS client
// certificate (empty when it has none).
func (a *agentProc) certificate() []tls.Certificate {
	a.t.Helper()
	var v struct{ CertPEM, KeyPEM string }
	b, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
	if err != nil {
		a.t.Fatalf("identity.json: %v", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		a.t.Fatalf("identity.json: %v", err)
	}
	if v.CertPEM == "" {
		return nil
	}
	c, err := tls.X509KeyPair([]byte(v.CertPEM), []byte(v.KeyPEM))
	if err != nil {
		a.t.Fatalf("the agent's certificate: %v", err)
	}
	return []tls.Certificate{c}
}
