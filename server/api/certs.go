package api

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// maxCSR bounds a CSR's PEM; an ECDSA or RSA-4096 request is far smaller.
const maxCSR = 16 << 10

var errCertRequired = errorf("client_certificate_required",
	"this device was issued a certificate; present it (mTLS) with the secret")

// mqttScheme is the broker URL scheme handed to agents.
func (a *API) mqttScheme() string {
	if a.cfg.PKI != nil {
		return "tls"
	}
	return "tcp"
}

// trustPEM is the certificate an enrolling agent pins: sent only over TLS,
// where the agent could verify the connection it arrives on.
func (a *API) trustPEM(c *fiber.Ctx) string {
	if a.cfg.PKI == nil || !c.Context().IsTLS() {
		return ""
	}
	return string(a.cfg.PKI.TrustPEM())
}

// issueDeviceCert signs csr for deviceID when TLS is on and the request came
// over TLS; it returns "" otherwise, and a 400 for a bad CSR.
func (a *API) issueDeviceCert(c *fiber.Ctx, csr, deviceID string) (string, error) {
	if csr == "" || a.cfg.PKI == nil || !c.Context().IsTLS() {
		return "", nil
	}
	if len(csr) > maxCSR {
		return "", errorf("invalid_csr", "csr is longer than %d bytes", maxCSR)
	}
	cert, err := a.cfg.PKI.SignDeviceCSR(csr, deviceID)
	if errors.Is(err, pki.ErrBadCSR) {
		return "", errorf("invalid_csr", "%v", err)
	}
	return cert, err
}

// checkClientCert admits a device call's TLS client certificate: when one is
// presented it must chain to our CA and name the device in the path; when
// none is, the device must not have been issued one. Plain connections have
// nothing to check.
func (a *API) checkClientCert(c *fiber.Ctx, d store.DeviceAuth) error {
	if a.cfg.PKI == nil {
		return nil
	}
	cs := c.Context().TLSConnectionState()
	if cs == nil {
		return nil
	}
	if len(cs.PeerCertificates) == 0 {
		if d.ClientCert {
			return errCertRequired
		}
		return nil
	}
	verify := a.cfg.PKI.VerifyDevice
	if c.Locals(localLapsedCertOK) == true {
		verify = a.cfg.PKI.VerifyLapsedDevice
	}
	if err := verify(cs.PeerCertificates, d.ID); err != nil {
		return errorf("bad_client_certificate", "%v", err)
	}
	return nil
}

// localLapsedCertOK marks a request on which an expired device certificate
// is accepted (renewal only).
const localLapsedCertOK = "doorbell.lapsedCertOK"

// renewCertificate is POST /devices/{id}/certificate: the device, with its
// secret and (when it has one) its current certificate, gets a new
// certificate for the key in its CSR. The current certificate may have
// expired: with the secret it still proves the device, and refusing it would
// leave a device that was offline too long unable ever to renew.
func (a *API) renewCertificate(c *fiber.Ctx) error {
	d := requestAuth(c)
	var req proto.CertificateRequest
	if err := decode(c, &req, false); err != nil {
		return err
	}
	if req.CSR == "" {
		return errorf("invalid_body", "csr is required")
	}
	if a.cfg.PKI == nil || !c.Context().IsTLS() {
		return errorf("tls_off", "device certificates are issued over TLS only; this server runs without TLS")
	}
	cert, err := a.issueDeviceCert(c, req.CSR, d.ID)
	if err != nil {
		return err
	}
	if cert == "" {
		return fmt.Errorf("renewing certificate of %s: nothing issued", d.ID)
	}
	return c.JSON(proto.CertificateResponse{Certificate: cert})
}
