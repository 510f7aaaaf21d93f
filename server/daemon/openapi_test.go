package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/api"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

// apiCase is one real request and the status it must get. Both the request
// (when reqValid) and the answer are validated against server/openapi.json.
type apiCase struct {
	name     string
	method   string
	path     string // placeholders such as {dev} are filled in from the fixture
	token    string // a fixture token's name ("admin", "viewer", "dev", …), "" or a literal
	body     string
	header   map[string]string
	status   int
	reqValid bool // false: the document must reject the request too
}

// tooLarge marks a body over the size limit, which api.OpenAPI cannot express:
// its request is not validated, only the 413 answer.
func (c apiCase) tooLarge() bool { return len(c.body) > proto.MaxBodyBytes }

// short keeps a validation error readable.
func short(err error) string {
	s := err.Error()
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// apiCases covers every documented operation and every status it
// documents. A route added to the server must be added here and to the
// document, or TestOpenAPI fails.
func apiCases() []apiCase {
	big := `{"pad":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`
	huge := `{"pad":"` + strings.Repeat("x", api.MaxGroupBodyBytes) + `"}`
	hugeInventory := `{"pad":"` + strings.Repeat("x", proto.MaxInventoryBodyBytes) + `"}`
	return []apiCase{
		{"enroll", "POST", "/enroll", "enroll", `{"model":"Pixel 8","osVersion":"14","agentVersion":"0.1.0"}`, nil, 201, true},
		{"enroll with a wrong token", "POST", "/enroll", "nope", `{"model":"x"}`, nil, 401, true},
		{"enroll with a mistyped field", "POST", "/enroll", "enroll", `{"model":5}`, nil, 400, false},
		{"enroll too large", "POST", "/enroll", "enroll", big, nil, 413, true},

		{"register token", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":"fcm-1"}`, nil, 204, true},
		{"register an empty token", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":""}`, nil, 400, false},
		{"register token without credentials", "POST", "/devices/{dev}/token", "", `{"fcmToken":"x"}`, nil, 401, true},
		{"register token for another device", "POST", "/devices/{dev}/token", "other", `{"fcmToken":"x"}`, nil, 403, true},
		{"register token of an unknown device", "POST", "/devices/nope/token", "dev", `{"fcmToken":"x"}`, nil, 404, true},
		{"register token too large", "POST", "/devices/{dev}/token", "dev", big, nil, 413, true},

		{"get policy as the device", "GET", "/devices/{dev}/policy", "dev", "", nil, 200, true},
		{"get policy as an operator", "GET", "/devices/{dev}/policy", "admin", "", nil, 200, true},
		{"get policy not modified", "GET", "/devices/{dev}/policy", "dev", "", map[string]string{"If-None-Match": "{devPolicyETag}"}, 304, true},
		{"get policy with a wrong token", "GET", "/devices/{dev}/policy", "nope", "", nil, 401, true},
		{"get another device's policy", "GET", "/devices/{dev}/policy", "other", "", nil, 403, true},
		{"get policy of an unknown device", "GET", "/devices/nope/policy", "admin", "", nil, 404, true},

		{"edit policy", "PUT", "/devices/{dev}/policy", "admin", `{"cameraDisabled":true}`, nil, 200, true},
		{"edit policy with an unknown field", "PUT", "/devices/{dev}/policy", "admin", `{"cameraDisabled":true,"cameraDisbled":true}`, nil, 400, false},
		{"edit policy without a setting", "PUT", "/devices/{dev}/policy", "admin", `{}`, nil, 400, false},
		{"edit policy with a wrong token", "PUT", "/devices/{dev}/policy", "nope", `{"cameraDisabled":true}`, nil, 401, true},
		{"edit policy as a device", "PUT", "/devices/{dev}/policy", "dev", `{"cameraDisabled":true}`, nil, 403, true},
		{"edit policy of an unknown device", "PUT", "/devices/nope/policy", "admin", `{"cameraDisabled":true}`, nil, 404, true},
		{"edit policy too large", "PUT", "/devices/{dev}/policy", "admin", big, nil, 413, true},

		{"report", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":2,"cameraDisabled":true,"compliant":true}`, nil, 204, true},
		{"report a version never issued", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":99,"cameraDisabled":true}`, nil, 409, true},
		{"report a negative version", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":-1}`, nil, 400, false},
		{"report with a wrong token", "POST", "/devices/{dev}/report", "nope", `{"appliedPolicyVersion":1}`, nil, 401, true},
		{"report for another device", "POST", "/devices/{dev}/report", "other", `{"appliedPolicyVersion":1}`, nil, 403, true},
		{"report of an unknown device", "POST", "/devices/nope/report", "dev", `{"appliedPolicyVersion":1}`, nil, 404, true},
		{"report too large", "POST", "/devices/{dev}/report", "dev", big, nil, 413, true},

		{"put inventory", "PUT", "/devices/{dev}/inventory", "dev", `{"hashes":{"system":"sha256:1","packages":"sha256:2"},"system":{"hostname":"h","osId":"debian","osVersion":"12","kernel":"6.1.0-18-amd64"},"packages":{"format":"deb","packages":[{"name":"openssl","version":"3.0.11-1"}]}}`, nil, 200, true},
		{"put inventory probe", "PUT", "/devices/{dev}/inventory", "dev", `{"hashes":{"system":"sha256:1","users":"sha256:3"}}`, nil, 200, true},
		{"put inventory without hashes", "PUT", "/devices/{dev}/inventory", "dev", `{"system":{"hostname":"h"}}`, nil, 400, false},
		{"put inventory malformed", "PUT", "/devices/{dev}/inventory", "dev", `{"hashes":`, nil, 400, false},
		{"put inventory of an unknown encoding", "PUT", "/devices/{dev}/inventory", "dev", `{"hashes":{"system":"x"}}`, map[string]string{"Content-Encoding": "br"}, 415, true},
		{"put inventory with a wrong token", "PUT", "/devices/{dev}/inventory", "nope", `{"hashes":{"system":"x"}}`, nil, 401, true},
		{"put inventory for another device", "PUT", "/devices/{dev}/inventory", "other", `{"hashes":{"system":"x"}}`, nil, 403, true},
		{"put inventory of an unknown device", "PUT", "/devices/nope/inventory", "dev", `{"hashes":{"system":"x"}}`, nil, 404, true},
		{"put inventory too large", "PUT", "/devices/{dev}/inventory", "dev", hugeInventory, nil, 413, true},
		{"get inventory", "GET", "/devices/{dev}/inventory", "viewer", "", nil, 200, true},
		{"get inventory sections", "GET", "/devices/{dev}/inventory?sections=system", "viewer", "", nil, 200, true},
		{"get inventory of an unknown section", "GET", "/devices/{dev}/inventory?sections=bios", "viewer", "", nil, 400, true},
		{"get inventory with a wrong token", "GET", "/devices/{dev}/inventory", "nope", "", nil, 401, true},
		{"get inventory as a device", "GET", "/devices/{dev}/inventory", "dev", "", nil, 403, true},
		{"get inventory of an unknown device", "GET", "/devices/nope/inventory", "viewer", "", nil, 404, true},
		{"refresh inventory", "POST", "/devices/{dev}/inventory/refresh", "admin", "", nil, 202, true},
		{"refresh inventory with a wrong token", "POST", "/devices/{dev}/inventory/refresh", "nope", "", nil, 401, true},
		{"refresh inventory as a viewer", "POST", "/devices/{dev}/inventory/refresh", "viewer", "", nil, 403, true},
		{"refresh inventory of an unknown device", "POST", "/devices/nope/inventory/refresh", "admin", "", nil, 404, true},
		{"package versions", "GET", "/inventory/packages?name=openssl", "viewer", "", nil, 200, true},
		{"package versions without a name", "GET", "/inventory/packages", "viewer", "", nil, 400, false},
		{"package versions with a wrong token", "GET", "/inventory/packages?name=openssl", "nope", "", nil, 401, true},
		{"package versions as a device", "GET", "/inventory/packages?name=openssl", "dev", "", nil, 403, true},
		{"fact distribution", "GET", "/inventory/facts/os", "viewer", "", nil, 200, true},
		{"fact distribution of an unknown fact", "GET", "/inventory/facts/bogus", "viewer", "", nil, 404, true},
		{"fact distribution with a wrong token", "GET", "/inventory/facts/os", "nope", "", nil, 401, true},
		{"fact distribution as a device", "GET", "/inventory/facts/os", "dev", "", nil, 403, true},
		{"list devices by package version", "GET", "/devices?package=openssl&package.lt=3.0.12", "viewer", "", nil, 200, true},
		{"list devices with an unknown filter operator", "GET", "/devices?kernel.newer=6", "viewer", "", nil, 400, true},

		{"list devices", "GET", "/devices", "admin", "", nil, 200, true},
		{"list a page of compliant devices", "GET", "/devices?state=COMPLIANT&limit=1", "admin", "", nil, 200, true},
		{"list with limit 0", "GET", "/devices?limit=0", "admin", "", nil, 400, false},
		{"list devices by search text", "GET", "/devices?q=1&limit=2", "viewer", "", nil, 200, true},
		{"list devices by a blank search text", "GET", "/devices?q=%20", "viewer", "", nil, 400, false},
		{"list devices by search text and an inventory filter", "GET", "/devices?q=a&hostname~=b", "viewer", "", nil, 400, true},
		{"list an unknown state", "GET", "/devices?state=GREEN", "admin", "", nil, 400, false},
		{"list with a wrong token", "GET", "/devices", "nope", "", nil, 401, true},
		{"list as a device", "GET", "/devices", "dev", "", nil, 403, true},

		{"status", "GET", "/devices/{dev}/status", "admin", "", nil, 200, true},
		{"status of a device that never reported", "GET", "/devices/{other}/status", "admin", "", nil, 200, true},
		{"status with a wrong token", "GET", "/devices/{dev}/status", "nope", "", nil, 401, true},
		{"status as a device", "GET", "/devices/{dev}/status", "dev", "", nil, 403, true},
		{"status of an unknown device", "GET", "/devices/nope/status", "admin", "", nil, 404, true},

		{"healthz", "GET", "/healthz", "", "", nil, 200, true},
		{"metrics", "GET", "/metrics", "admin", "", nil, 200, true},
		{"metrics with a wrong token", "GET", "/metrics", "nope", "", nil, 401, true},
		{"metrics as a device", "GET", "/metrics", "dev", "", nil, 403, true},
		{"openapi", "GET", "/openapi.json", "", "", nil, 200, true},

		// Reports with reportedAt and nonce (replay resistance), on a
		// device of their own: once it sent a nonce it must always.
		{"report with a nonce", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1,"cameraDisabled":false,"reportedAt":"{now}","nonce":"nonce-0123456789-a","agentSha256":"ab"}`, nil, 204, true},
		{"report a replayed nonce", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1,"reportedAt":"{now}","nonce":"nonce-0123456789-a"}`, nil, 409, true},
		{"report older than the last one", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1,"reportedAt":"{past}","nonce":"nonce-0123456789-b"}`, nil, 409, true},
		{"report with a skewed clock", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1,"reportedAt":"2000-01-01T00:00:00Z","nonce":"nonce-0123456789-c"}`, nil, 400, true},
		{"report without a nonce after one", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1}`, nil, 400, true},
		{"report with a short nonce", "POST", "/devices/{third}/report", "third", `{"appliedPolicyVersion":1,"reportedAt":"{now}","nonce":"short"}`, nil, 400, false},

		{"edit policy partially with modes", "PUT", "/devices/{dev}/policy", "admin", `{"passwordMinLength":8,"lockTaskPackages":["a.b"],"modes":{"passwordMinLength":"monitor"}}`, nil, 200, true},
		{"edit policy removing a setting", "PUT", "/devices/{dev}/policy", "admin", `{"lockTaskPackages":null,"modes":{"cameraDisabled":null}}`, nil, 200, true},
		{"edit policy with an out-of-range value", "PUT", "/devices/{dev}/policy", "admin", `{"passwordMinLength":65}`, nil, 400, false},
		{"edit policy with an unknown mode", "PUT", "/devices/{dev}/policy", "admin", `{"modes":{"cameraDisabled":"maybe"}}`, nil, 400, false},
		{"edit policy as a viewer", "PUT", "/devices/{dev}/policy", "viewer", `{"cameraDisabled":true}`, nil, 403, true},
		{"report non-compliant", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":4,"cameraDisabled":true,"unsupported":["passwordMinLength","newSetting"],"failed":{"cameraDisabled":"refused"}}`, nil, 204, true},
		{"status of a failing device", "GET", "/devices/{dev}/status", "viewer", "", nil, 200, true},

		{"last report", "GET", "/devices/{dev}/report", "viewer", "", nil, 200, true},
		{"last report with a nonce", "GET", "/devices/{third}/report", "admin", "", nil, 200, true},
		{"last report of a device that never reported", "GET", "/devices/{other}/report", "admin", "", nil, 404, true},
		{"last report of an unknown device", "GET", "/devices/nope/report", "admin", "", nil, 404, true},
		{"last report with a wrong token", "GET", "/devices/{dev}/report", "nope", "", nil, 401, true},
		{"last report as a device", "GET", "/devices/{dev}/report", "dev", "", nil, 403, true},

		{"explain policy", "GET", "/devices/{dev}/policy/explain", "viewer", "", nil, 200, true},
		{"explain policy of an unknown device", "GET", "/devices/nope/policy/explain", "admin", "", nil, 404, true},
		{"explain policy with a wrong token", "GET", "/devices/{dev}/policy/explain", "nope", "", nil, 401, true},
		{"explain policy as a device", "GET", "/devices/{dev}/policy/explain", "dev", "", nil, 403, true},

		{"history", "GET", "/devices/{dev}/history", "viewer", "", nil, 200, true},
		{"history of an unknown device", "GET", "/devices/nope/history", "admin", "", nil, 404, true},
		{"history with a wrong token", "GET", "/devices/{dev}/history", "nope", "", nil, 401, true},
		{"history as a device", "GET", "/devices/{dev}/history", "dev", "", nil, 403, true},

		{"compliance summary", "GET", "/compliance/summary", "viewer", "", nil, 200, true},
		{"settings catalog", "GET", "/settings", "viewer", "", nil, 200, true},
		{"settings catalog as a device", "GET", "/settings", "dev", "", nil, 403, true},
		{"settings catalog with a wrong token", "GET", "/settings", "nope", "", nil, 401, true},
		{"command catalog", "GET", "/command-types", "viewer", "", nil, 200, true},
		{"command catalog as a device", "GET", "/command-types", "dev", "", nil, 403, true},
		{"command catalog with a wrong token", "GET", "/command-types", "nope", "", nil, 401, true},
		{"compliance summary with a wrong token", "GET", "/compliance/summary", "nope", "", nil, 401, true},
		{"compliance summary as a device", "GET", "/compliance/summary", "dev", "", nil, 403, true},

		{"create group", "POST", "/groups", "admin", `{"name":"kiosks","priority":5,"policy":{"statusBarDisabled":true,"modes":{"statusBarDisabled":"monitor"},"mode":"enforce"},"deviceIds":["{other}"]}`, nil, 201, true},
		{"create group with defaults", "POST", "/groups", "admin", `{"name":"bare","policy":null,"deviceIds":null}`, nil, 201, true},
		{"create group without a name", "POST", "/groups", "admin", `{"priority":1}`, nil, 400, false},
		{"create group with an unknown device", "POST", "/groups", "admin", `{"name":"ghosts","deviceIds":["nope"]}`, nil, 400, true},
		{"create group with a taken name", "POST", "/groups", "admin", `{"name":"fixture"}`, nil, 409, true},
		{"create group with a wrong token", "POST", "/groups", "nope", `{"name":"x"}`, nil, 401, true},
		{"create group as a viewer", "POST", "/groups", "viewer", `{"name":"x"}`, nil, 403, true},
		{"create group too large", "POST", "/groups", "admin", huge, nil, 413, true},
		{"list groups", "GET", "/groups", "viewer", "", nil, 200, true},
		{"list groups with a wrong token", "GET", "/groups", "nope", "", nil, 401, true},
		{"list groups as a device", "GET", "/groups", "dev", "", nil, 403, true},
		{"get group", "GET", "/groups/{group}", "viewer", "", nil, 200, true},
		{"get an unknown group", "GET", "/groups/nope", "admin", "", nil, 404, true},
		{"get group with a wrong token", "GET", "/groups/{group}", "nope", "", nil, 401, true},
		{"get group as a device", "GET", "/groups/{group}", "dev", "", nil, 403, true},
		{"replace group policy", "PUT", "/groups/{group}/policy", "admin", `{"usbFileTransferDisabled":true,"autoUpdatesEnabled":null,"mode":"monitor"}`, nil, 200, true},
		{"replace group policy with an unknown setting", "PUT", "/groups/{group}/policy", "admin", `{"wifiDisabled":true}`, nil, 400, false},
		{"replace group policy, guided with escalation", "PUT", "/groups/{group}/policy", "admin", `{"firewallEnabled":true,"modes":{"firewallEnabled":"guided"},"deadline":"48h","escalation":{"notifyAfter":"72h","commandAfter":"168h","command":"lock"}}`, nil, 200, true},
		{"replace group policy with a bad deadline", "PUT", "/groups/{group}/policy", "admin", `{"firewallEnabled":true,"deadline":"soon"}`, nil, 400, true},
		{"replace group policy with a command but no delay", "PUT", "/groups/{group}/policy", "admin", `{"escalation":{"command":"lock"}}`, nil, 400, true},
		{"replace policy of an unknown group", "PUT", "/groups/nope/policy", "admin", `{}`, nil, 404, true},
		{"replace group policy with a wrong token", "PUT", "/groups/{group}/policy", "nope", `{}`, nil, 401, true},
		{"replace group policy as a viewer", "PUT", "/groups/{group}/policy", "viewer", `{}`, nil, 403, true},
		{"replace group policy too large", "PUT", "/groups/{group}/policy", "admin", big, nil, 413, true},
		{"replace group members", "PUT", "/groups/{group}/devices", "admin", `{"deviceIds":["{dev}","{other}"]}`, nil, 200, true},
		{"replace group members without a list", "PUT", "/groups/{group}/devices", "admin", `{}`, nil, 400, false},
		{"replace group members with an unknown device", "PUT", "/groups/{group}/devices", "admin", `{"deviceIds":["nope"]}`, nil, 400, true},
		{"replace members of an unknown group", "PUT", "/groups/nope/devices", "admin", `{"deviceIds":[]}`, nil, 404, true},
		{"replace group members with a wrong token", "PUT", "/groups/{group}/devices", "nope", `{"deviceIds":[]}`, nil, 401, true},
		{"replace group members as a viewer", "PUT", "/groups/{group}/devices", "viewer", `{"deviceIds":[]}`, nil, 403, true},
		{"replace group members too large", "PUT", "/groups/{group}/devices", "admin", huge, nil, 413, true},
		{"list group revisions", "GET", "/groups/{group}/revisions", "viewer", "", nil, 200, true},
		{"list revisions of an unknown group", "GET", "/groups/nope/revisions", "admin", "", nil, 404, true},
		{"list group revisions with a wrong token", "GET", "/groups/{group}/revisions", "nope", "", nil, 401, true},
		{"list group revisions as a device", "GET", "/groups/{group}/revisions", "dev", "", nil, 403, true},
		{"get a group revision", "GET", "/groups/{group}/revisions/1", "viewer", "", nil, 200, true},
		{"get a group revision that is not a number", "GET", "/groups/{group}/revisions/x", "admin", "", nil, 400, false},
		{"get a group revision that never was", "GET", "/groups/{group}/revisions/999", "admin", "", nil, 404, true},
		{"get a group revision with a wrong token", "GET", "/groups/{group}/revisions/1", "nope", "", nil, 401, true},
		{"get a group revision as a device", "GET", "/groups/{group}/revisions/1", "dev", "", nil, 403, true},
		{"roll a group back", "POST", "/groups/{group}/rollback", "admin", `{"revision":1}`, nil, 200, true},
		{"roll a group back to no revision", "POST", "/groups/{group}/rollback", "admin", `{"revision":0}`, nil, 400, false},
		{"roll a group back to a revision that never was", "POST", "/groups/{group}/rollback", "admin", `{"revision":999}`, nil, 404, true},
		{"roll a group back with a wrong token", "POST", "/groups/{group}/rollback", "nope", `{"revision":1}`, nil, 401, true},
		{"roll a group back as a viewer", "POST", "/groups/{group}/rollback", "viewer", `{"revision":1}`, nil, 403, true},
		{"roll a group back too large", "POST", "/groups/{group}/rollback", "admin", big, nil, 413, true},
		{"list device revisions", "GET", "/devices/{dev}/revisions", "viewer", "", nil, 200, true},
		{"list revisions of an unknown device", "GET", "/devices/nope/revisions", "admin", "", nil, 404, true},
		{"list device revisions with a wrong token", "GET", "/devices/{dev}/revisions", "nope", "", nil, 401, true},
		{"list device revisions as the device", "GET", "/devices/{dev}/revisions", "dev", "", nil, 403, true},
		{"get a device revision", "GET", "/devices/{dev}/revisions/1", "viewer", "", nil, 200, true},
		{"get a device revision that is not a number", "GET", "/devices/{dev}/revisions/-1", "admin", "", nil, 400, false},
		{"get a device revision that never was", "GET", "/devices/{dev}/revisions/999", "admin", "", nil, 404, true},
		{"get a device revision with a wrong token", "GET", "/devices/{dev}/revisions/1", "nope", "", nil, 401, true},
		{"get a device revision as the device", "GET", "/devices/{dev}/revisions/1", "dev", "", nil, 403, true},
		{"roll a device back", "POST", "/devices/{dev}/rollback", "admin", `{"revision":1}`, nil, 200, true},
		{"roll a device back to no revision", "POST", "/devices/{dev}/rollback", "admin", `{}`, nil, 400, false},
		{"roll back an unknown device", "POST", "/devices/nope/rollback", "admin", `{"revision":1}`, nil, 404, true},
		{"roll a device back with a wrong token", "POST", "/devices/{dev}/rollback", "nope", `{"revision":1}`, nil, 401, true},
		{"roll a device back as a viewer", "POST", "/devices/{dev}/rollback", "viewer", `{"revision":1}`, nil, 403, true},
		{"roll a device back too large", "POST", "/devices/{dev}/rollback", "admin", big, nil, 413, true},
		{"history after group changes", "GET", "/devices/{dev}/history", "admin", "", nil, 200, true},
		{"explain policy from a group", "GET", "/devices/{dev}/policy/explain", "admin", "", nil, 200, true},
		{"change group priority and name", "PATCH", "/groups/{group}", "admin", `{"priority":2,"name":"fixture"}`, nil, 200, true},
		{"change group with nothing", "PATCH", "/groups/{group}", "admin", `{}`, nil, 400, false},
		{"rename group to a taken name", "PATCH", "/groups/{group}", "admin", `{"name":"doomed"}`, nil, 409, true},
		{"change an unknown group", "PATCH", "/groups/nope", "admin", `{"priority":1}`, nil, 404, true},
		{"change group with a wrong token", "PATCH", "/groups/{group}", "nope", `{"priority":1}`, nil, 401, true},
		{"change group as a viewer", "PATCH", "/groups/{group}", "viewer", `{"priority":1}`, nil, 403, true},
		{"delete group", "DELETE", "/groups/{doomed}", "admin", "", nil, 200, true},
		{"delete an unknown group", "DELETE", "/groups/nope", "admin", "", nil, 404, true},
		{"delete group with a wrong token", "DELETE", "/groups/{group}", "nope", "", nil, 401, true},
		{"delete group as a viewer", "DELETE", "/groups/{group}", "viewer", "", nil, 403, true},

		{"create operator token", "POST", "/tokens", "admin", `{"name":"ci-bot","role":"admin"}`, nil, 201, true},
		{"create operator token with an unknown role", "POST", "/tokens", "admin", `{"name":"x","role":"root"}`, nil, 400, false},
		{"create operator token with a bad name", "POST", "/tokens", "admin", `{"name":"-x","role":"viewer"}`, nil, 400, false},
		{"create operator token named admin", "POST", "/tokens", "admin", `{"name":"admin","role":"viewer"}`, nil, 409, true},
		{"create operator token with a wrong token", "POST", "/tokens", "nope", `{"name":"x","role":"viewer"}`, nil, 401, true},
		{"create operator token as a viewer", "POST", "/tokens", "viewer", `{"name":"x","role":"viewer"}`, nil, 403, true},
		{"create operator token too large", "POST", "/tokens", "admin", big, nil, 413, true},
		{"list operator tokens", "GET", "/tokens", "viewer", "", nil, 200, true},
		{"list operator tokens with a wrong token", "GET", "/tokens", "nope", "", nil, 401, true},
		{"list operator tokens as a device", "GET", "/tokens", "dev", "", nil, 403, true},
		{"delete operator token", "DELETE", "/tokens/doomed", "admin", "", nil, 204, true},
		{"delete an unknown operator token", "DELETE", "/tokens/doomed", "admin", "", nil, 404, true},
		{"delete the built-in admin token", "DELETE", "/tokens/admin", "admin", "", nil, 409, true},
		{"delete operator token with a wrong token", "DELETE", "/tokens/ci-bot", "nope", "", nil, 401, true},
		{"delete operator token as a viewer", "DELETE", "/tokens/ci-bot", "viewer", "", nil, 403, true},

		{"create enrollment token", "POST", "/enrollment-tokens", "admin", `{"expiresIn":"1h","maxUses":3}`, nil, 201, true},
		{"create enrollment token with defaults", "POST", "/enrollment-tokens", "admin", `{}`, nil, 201, true},
		{"create enrollment token with negative uses", "POST", "/enrollment-tokens", "admin", `{"maxUses":-1}`, nil, 400, false},
		{"create enrollment token with a bad duration", "POST", "/enrollment-tokens", "admin", `{"expiresIn":"soon"}`, nil, 400, true},
		{"create enrollment token with a wrong token", "POST", "/enrollment-tokens", "nope", `{}`, nil, 401, true},
		{"create enrollment token as a viewer", "POST", "/enrollment-tokens", "viewer", `{}`, nil, 403, true},
		{"create enrollment token too large", "POST", "/enrollment-tokens", "admin", big, nil, 413, true},
		{"draw an enrollment QR", "POST", "/enrollment-tokens/qr", "admin", `{"enrollUrl":"doorbell://enroll?server=https%3A%2F%2Fmdm%3A8080&pin=sha256%2Fx&token=t"}`, nil, 200, true},
		{"draw a QR of something else", "POST", "/enrollment-tokens/qr", "admin", `{"enrollUrl":"https://example.com/"}`, nil, 400, false},
		{"draw an enrollment QR with a wrong token", "POST", "/enrollment-tokens/qr", "nope", `{"enrollUrl":"doorbell://enroll?server=x"}`, nil, 401, true},
		{"draw an enrollment QR as a viewer", "POST", "/enrollment-tokens/qr", "viewer", `{"enrollUrl":"doorbell://enroll?server=x"}`, nil, 403, true},
		{"draw an enrollment QR too large", "POST", "/enrollment-tokens/qr", "admin", big, nil, 413, true},
		{"enroll with an enrollment token", "POST", "/enroll", "enrollment-token", `{"model":"m"}`, nil, 201, true},
		{"enroll with a used-up enrollment token", "POST", "/enroll", "enrollment-token", `{"model":"m"}`, nil, 401, true},
		{"list enrollment tokens", "GET", "/enrollment-tokens", "viewer", "", nil, 200, true},
		{"list enrollment tokens with a wrong token", "GET", "/enrollment-tokens", "nope", "", nil, 401, true},
		{"list enrollment tokens as a device", "GET", "/enrollment-tokens", "dev", "", nil, 403, true},
		{"revoke enrollment token", "DELETE", "/enrollment-tokens/{enrollmentTokenId}", "admin", "", nil, 204, true},
		{"revoke an unknown enrollment token", "DELETE", "/enrollment-tokens/nope", "admin", "", nil, 404, true},
		{"revoke enrollment token with a wrong token", "DELETE", "/enrollment-tokens/nope", "nope", "", nil, 401, true},
		{"revoke enrollment token as a viewer", "DELETE", "/enrollment-tokens/nope", "viewer", "", nil, 403, true},

		{"audit log", "GET", "/audit", "viewer", "", nil, 200, true},
		{"backup", "GET", "/backup", "admin", "", nil, 200, true},
		{"backup as a viewer", "GET", "/backup", "viewer", "", nil, 403, true},
		{"backup with a wrong token", "GET", "/backup", "nope", "", nil, 401, true},
		{"audit log page", "GET", "/audit?limit=2&after=1", "admin", "", nil, 200, true},
		{"audit log with limit 0", "GET", "/audit?limit=0", "admin", "", nil, 400, false},
		{"audit log with a bad cursor", "GET", "/audit?after=x", "admin", "", nil, 400, false},
		{"audit log with a wrong token", "GET", "/audit", "nope", "", nil, 401, true},
		{"audit log as a device", "GET", "/audit", "dev", "", nil, 403, true},

		// The test daemon runs without TLS: a certificate is refused with
		// tls_off once the caller and the body are checked.
		{"renew certificate without TLS", "POST", "/devices/{dev}/certificate", "dev", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}`, nil, 409, true},
		{"renew certificate without a CSR", "POST", "/devices/{dev}/certificate", "dev", `{}`, nil, 400, false},
		{"renew certificate with a wrong token", "POST", "/devices/{dev}/certificate", "nope", `{"csr":"x"}`, nil, 401, true},
		{"renew certificate for another device", "POST", "/devices/{dev}/certificate", "other", `{"csr":"x"}`, nil, 403, true},
		{"renew certificate of an unknown device", "POST", "/devices/nope/certificate", "dev", `{"csr":"x"}`, nil, 404, true},
		{"renew certificate too large", "POST", "/devices/{dev}/certificate", "dev", big, nil, 413, true},

		// Commands. The fixture queued, on {other}, {cmd}, {cmdCancel} and
		// {cmdResult} (reboots), and on {dev} a lock: a second lock there is
		// a conflict, and so is a lock for the fixture group ({dev} is a
		// member). Cancels come before {other} fetches its commands.
		{"send command", "POST", "/devices/{third}/commands", "admin", `{"type":"run_script","params":{"script":"cleanup.sh","timeout":"30s"},"expiresIn":"1h","idempotencyKey":"k-1"}`, nil, 202, true},
		{"send command again with its key", "POST", "/devices/{third}/commands", "admin", `{"type":"run_script","params":{"script":"cleanup.sh"},"idempotencyKey":"k-1"}`, nil, 202, true},
		{"send command of an unknown type", "POST", "/devices/{third}/commands", "admin", `{"type":"selfdestruct"}`, nil, 400, false},
		{"send command with bad params", "POST", "/devices/{third}/commands", "admin", `{"type":"clear_app_data","params":{"package":"no"}}`, nil, 400, true},
		{"send command expiring too late", "POST", "/devices/{third}/commands", "admin", `{"type":"lock","expiresIn":"721h"}`, nil, 400, true},
		{"send command to an unknown device", "POST", "/devices/nope/commands", "admin", `{"type":"lock"}`, nil, 404, true},
		{"send a second lock", "POST", "/devices/{dev}/commands", "admin", `{"type":"lock"}`, nil, 409, true},
		{"send command with a wrong token", "POST", "/devices/{dev}/commands", "nope", `{"type":"lock"}`, nil, 401, true},
		{"send command as a viewer", "POST", "/devices/{dev}/commands", "viewer", `{"type":"lock"}`, nil, 403, true},
		{"send command too large", "POST", "/devices/{dev}/commands", "admin", big, nil, 413, true},
		{"send group command", "POST", "/groups/{group}/commands", "admin", `{"type":"reboot","expiresIn":"5m"}`, nil, 202, true},
		{"send group command with a conflict", "POST", "/groups/{group}/commands", "admin", `{"type":"lock"}`, nil, 409, true},
		{"send group command of an unknown type", "POST", "/groups/{group}/commands", "admin", `{"type":"x"}`, nil, 400, false},
		{"send command to an unknown group", "POST", "/groups/nope/commands", "admin", `{"type":"lock"}`, nil, 404, true},
		{"send group command with a wrong token", "POST", "/groups/{group}/commands", "nope", `{"type":"lock"}`, nil, 401, true},
		{"send group command as a viewer", "POST", "/groups/{group}/commands", "viewer", `{"type":"lock"}`, nil, 403, true},
		{"send group command too large", "POST", "/groups/{group}/commands", "admin", big, nil, 413, true},
		{"get command", "GET", "/commands/{cmd}", "viewer", "", nil, 200, true},
		{"get an unknown command", "GET", "/commands/nope", "admin", "", nil, 404, true},
		{"get command with a wrong token", "GET", "/commands/{cmd}", "nope", "", nil, 401, true},
		{"get command as a device", "GET", "/commands/{cmd}", "other", "", nil, 403, true},
		{"cancel command", "DELETE", "/commands/{cmdCancel}", "admin", "", nil, 200, true},
		{"cancel a cancelled command", "DELETE", "/commands/{cmdCancel}", "admin", "", nil, 409, true},
		{"cancel an unknown command", "DELETE", "/commands/nope", "admin", "", nil, 404, true},
		{"cancel command with a wrong token", "DELETE", "/commands/{cmd}", "nope", "", nil, 401, true},
		{"cancel command as a viewer", "DELETE", "/commands/{cmd}", "viewer", "", nil, 403, true},
		{"list commands", "GET", "/devices/{other}/commands?limit=2&state=PENDING", "viewer", "", nil, 200, true},
		{"list commands with a bad limit", "GET", "/devices/{other}/commands?limit=0", "admin", "", nil, 400, false},
		{"list commands of an unknown device", "GET", "/devices/nope/commands", "admin", "", nil, 404, true},
		{"list commands with a wrong token", "GET", "/devices/{other}/commands", "nope", "", nil, 401, true},
		{"list commands as another device", "GET", "/devices/{other}/commands", "dev", "", nil, 403, true},
		{"fetch commands as the device", "GET", "/devices/{other}/commands", "other", "", nil, 200, true},
		{"command result", "POST", "/devices/{other}/commands/{cmdResult}/result", "other", `{"state":"ERROR","errorCode":"failed","message":"m","output":"o"}`, nil, 200, true},
		{"command result twice", "POST", "/devices/{other}/commands/{cmdResult}/result", "other", `{"state":"ACKNOWLEDGED"}`, nil, 409, true},
		{"command result for an unknown command", "POST", "/devices/{other}/commands/nope/result", "other", `{"state":"ACKNOWLEDGED"}`, nil, 404, true},
		{"command result with a bad state", "POST", "/devices/{other}/commands/{cmd}/result", "other", `{"state":"PENDING"}`, nil, 400, false},
		{"command result with a wrong token", "POST", "/devices/{other}/commands/{cmd}/result", "nope", `{"state":"ACKNOWLEDGED"}`, nil, 401, true},
		{"command result from another device", "POST", "/devices/{other}/commands/{cmd}/result", "dev", `{"state":"ACKNOWLEDGED"}`, nil, 403, true},
		{"command result too large", "POST", "/devices/{other}/commands/{cmd}/result", "other", big, nil, 413, true},

		{"events", "GET", "/events", "viewer", "", nil, 200, true},
		{"events with a wrong token", "GET", "/events", "nope", "", nil, 401, true},
		{"events as a device", "GET", "/events", "dev", "", nil, 403, true},

		{"console", "GET", "/", "", "", nil, 200, true},
		{"console not modified", "GET", "/", "", "", map[string]string{"If-None-Match": "{consoleETag}"}, 304, true},
		{"console script", "GET", "/ui/app.js", "", "", nil, 200, true},
		{"console style", "GET", "/ui/style.css", "", "", nil, 200, true},
		{"console icon", "GET", "/ui/icon.svg", "", "", nil, 200, true},
		{"console asset not modified", "GET", "/ui/app.js", "", "", map[string]string{"If-None-Match": "{appETag}"}, 304, true},
		{"console asset unknown", "GET", "/ui/nope.js", "", "", nil, 404, true},

		{"revoke device", "DELETE", "/devices/{victim}", "admin", "", nil, 204, true},
		{"revoke an unknown device", "DELETE", "/devices/{victim}", "admin", "", nil, 404, true},
		{"revoked device is gone", "GET", "/devices/{victim}/policy", "victim", "", nil, 404, true},
		{"revoke device with a wrong token", "DELETE", "/devices/{dev}", "nope", "", nil, 401, true},
		{"revoke device as a viewer", "DELETE", "/devices/{dev}", "viewer", "", nil, 403, true},
	}
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIDocumentsEveryRoute fails for any route the server serves that
// the document does not describe, and for any documented operation the
// server does not serve.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.Info.Version != strconv.Itoa(proto.CapabilityVersion) {
		t.Errorf("info.version %q, want proto.CapabilityVersion %d", doc.Info.Version, proto.CapabilityVersion)
	}
	d, _ := startDaemon(t, DaemonConfig{})
	served := map[string]bool{}
	for _, r := range d.api.App().GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue // fiber adds HEAD to every GET
		}
		p := fiberParam.ReplaceAllString(r.Path, "{$1}")
		p = strings.Replace(p, "/*", "/{file}", 1) // the console's /ui/*
		served[r.Method+" "+p] = true
		item := doc.Paths.Value(p)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is served but not described in server/openapi.json", r.Method, r.Path)
		}
	}
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			if !served[m+" "+p] {
				t.Errorf("openapi.json describes %s %s, which the server does not serve", m, p)
			}
		}
	}
	if t.Failed() {
		var keys []string
		for k := range served {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Logf("served routes: %s", strings.Join(keys, ", "))
	}
}

// apiErrorCodes are the error codes some cases must get: the ones the document
// names in its descriptions.
var apiErrorCodes = map[string]string{
	"report a replayed nonce":                      "replayed_nonce",
	"report older than the last one":               "stale_report",
	"report with a skewed clock":                   "clock_skew",
	"report without a nonce after one":             "nonce_required",
	"report a version never issued":                "version_ahead",
	"last report of a device that never reported":  "no_report",
	"last report of an unknown device":             "device_not_found",
	"get an unknown group":                         "group_not_found",
	"create group with an unknown device":          "unknown_devices",
	"replace group members with an unknown device": "unknown_devices",
	"create group with a taken name":               "group_name_taken",
	"create group too large":                       "body_too_large",
	"create operator token with an unknown role":   "invalid_role",
	"create operator token with a bad name":        "invalid_name",
	"create operator token named admin":            "token_exists",
	"delete an unknown operator token":             "token_not_found",
	"delete the built-in admin token":              "builtin_token",
	"enroll with a used-up enrollment token":       "enrollment_token_used_up",
	"revoke an unknown enrollment token":           "enrollment_token_not_found",
	"audit log with a bad cursor":                  "invalid_query",
	"renew certificate without TLS":                "tls_off",
	"enroll with a bad CSR over TLS":               "invalid_csr",
	"renew certificate with a bad CSR":             "invalid_csr",
	"report without the client certificate":        "client_certificate_required",
	"report with another device's certificate":     "bad_client_certificate",
	"enroll over the rate limit":                   "rate_limited",
	"report over the rate limit":                   "rate_limited",
	"console asset unknown":                        "not_found",
	"send a second lock":                           "command_conflict",
	"send group command with a conflict":           "command_conflict",
	"send command to an unknown device":            "device_not_found",
	"command result twice":                         "command_state",
	"cancel a cancelled command":                   "command_state",
	"command result for an unknown command":        "command_not_found",
	"get an unknown command":                       "command_not_found",
	"put inventory of an unknown encoding":         "unsupported_encoding",
	"fact distribution of an unknown fact":         "unknown_fact",
}

// apiRateCases run against a daemon that allows one enrollment per minute,
// and four calls per minute per device across
// all of its endpoints: the four that fit, then each endpoint refused.
func apiRateCases() []apiCase {
	return []apiCase{
		{"enroll over the rate limit", "POST", "/enroll", "enroll", `{"model":"m"}`, nil, 429, true},
		{"get policy within the rate limit", "GET", "/devices/{dev}/policy", "dev", "", nil, 200, true},
		{"report within the rate limit", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":1}`, nil, 204, true},
		{"register token within the rate limit", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":"f"}`, nil, 204, true},
		{"renew certificate within the rate limit", "POST", "/devices/{dev}/certificate", "dev", `{"csr":"x"}`, nil, 409, true},
		{"get policy over the rate limit", "GET", "/devices/{dev}/policy", "dev", "", nil, 429, true},
		{"report over the rate limit", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":1}`, nil, 429, true},
		{"put inventory over the rate limit", "PUT", "/devices/{dev}/inventory", "dev", `{"hashes":{"system":"x"}}`, nil, 429, true},
		{"register token over the rate limit", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":"f"}`, nil, 429, true},
		{"renew certificate over the rate limit", "POST", "/devices/{dev}/certificate", "dev", `{"csr":"x"}`, nil, 429, true},
	}
}

// apiTLSCases run against a daemon with TLS on (HTTPS, device certificates).
// The token "dev" presents the device's certificate, "dev-without-cert"
// presents none and "dev-with-other-cert" presents another device's.
func apiTLSCases() []apiCase {
	return []apiCase{
		{"enroll with a CSR over TLS", "POST", "/enroll", "enroll", `{"model":"m","csr":"{csr}"}`, nil, 201, true},
		{"enroll with a bad CSR over TLS", "POST", "/enroll", "enroll", `{"model":"m","csr":"garbage"}`, nil, 400, true},
		{"renew certificate over TLS", "POST", "/devices/{dev}/certificate", "dev", `{"csr":"{csr}"}`, nil, 200, true},
		{"renew certificate with a bad CSR", "POST", "/devices/{dev}/certificate", "dev", `{"csr":"garbage"}`, nil, 400, true},
		{"report without the client certificate", "POST", "/devices/{dev}/report", "dev-without-cert", `{"appliedPolicyVersion":1}`, nil, 401, true},
		{"report with another device's certificate", "POST", "/devices/{dev}/report", "dev-with-other-cert", `{"appliedPolicyVersion":1}`, nil, 401, true},
		{"get policy over TLS", "GET", "/devices/{dev}/policy", "dev", "", nil, 200, true},
	}
}

// apiFixture is what the cases refer to: placeholders in paths, bodies and
// headers, and named bearer tokens.
type apiFixture struct {
	url    string
	repl   *strings.Replacer
	tokens map[string]string
	// clients are the HTTP clients of some token names; client is
	// everyone else's (nil: http.DefaultClient).
	clients map[string]*http.Client
	client  *http.Client
}

// apiTLSFixture starts a daemon with TLS and enrolls two devices with
// certificates.
func apiTLSFixture(t *testing.T) apiFixture {
	d, url := startDaemon(t, DaemonConfig{TLS: &pki.Config{}})
	url = strings.Replace(url, "http://", "https://", 1)
	client := func(certs ...tls.Certificate) *http.Client {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(d.PKI().CAPEM())
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	csr := func() (string, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
	}
	enroll := func() (proto.EnrollResponse, tls.Certificate) {
		c, key := csr()
		body, _ := json.Marshal(proto.EnrollRequest{Model: "m", CSR: c})
		req, _ := http.NewRequest("POST", url+"/enroll", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+enrollToken)
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e proto.EnrollResponse
		if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Certificate == "" {
			t.Fatalf("enroll over TLS: %d, certificate %q", resp.StatusCode, e.Certificate)
		}
		der, _ := x509.MarshalECPrivateKey(key)
		pair, err := tls.X509KeyPair([]byte(e.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
		if err != nil {
			t.Fatal(err)
		}
		return e, pair
	}
	dev, devCert := enroll()
	_, otherCert := enroll()
	c, _ := csr()
	quoted, _ := json.Marshal(c)
	return apiFixture{url: url,
		repl:    strings.NewReplacer("{dev}", dev.DeviceID, "{csr}", string(quoted[1:len(quoted)-1])),
		tokens:  map[string]string{"enroll": enrollToken, "dev": dev.DeviceSecret, "dev-without-cert": dev.DeviceSecret, "dev-with-other-cert": dev.DeviceSecret},
		clients: map[string]*http.Client{"dev": client(devCert), "dev-with-other-cert": client(otherCert)},
		client:  client(),
	}
}

// apiEnroll enrolls a device on the daemon at url.
func apiEnroll(t *testing.T, url string) proto.EnrollResponse {
	t.Helper()
	var e proto.EnrollResponse
	if code, _, b := send(t, "POST", url+"/enroll", enrollToken, `{"model":"m"}`, &e); code != 201 {
		t.Fatalf("enroll: %d %s", code, b)
	}
	return e
}

// apiCreate makes a fixture object with an admin request and returns it.
func apiCreate[T any](t *testing.T, url, path, body string) T {
	t.Helper()
	var out T
	if code, _, b := send(t, "POST", url+path, adminToken, body, &out); code != 201 {
		t.Fatalf("POST %s: %d %s", path, code, b)
	}
	return out
}

// apiETag returns the ETag of a GET of path.
func apiETag(t *testing.T, url, path, token string) string {
	t.Helper()
	code, h, b := send(t, "GET", url+path, token, "", nil)
	if code != 200 || h.Get("ETag") == "" {
		t.Fatalf("GET %s: %d, ETag %q: %.200s", path, code, h.Get("ETag"), b)
	}
	return h.Get("ETag")
}

// TestOpenAPIMatchesRealAnswers sends every apiCase to a real daemon and
// validates the request and the answer (status, headers, body) against the
// document; then it checks that every documented status of every operation
// was seen.
func TestOpenAPIMatchesRealAnswers(t *testing.T) {
	doc := loadOpenAPI(t)
	_, url := startDaemon(t, DaemonConfig{})
	_, rateURL := startDaemon(t, DaemonConfig{EnrollPerMinute: 1, DevicePerMinute: 4})
	tlsF := apiTLSFixture(t)
	doc.Servers = openapi3.Servers{{URL: url}, {URL: rateURL}, {URL: tlsF.url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	dev, other, third, victim := apiEnroll(t, url), apiEnroll(t, url), apiEnroll(t, url), apiEnroll(t, url)
	viewer := apiCreate[proto.OperatorToken](t, url, "/tokens", `{"name":"watcher","role":"viewer"}`)
	apiCreate[proto.OperatorToken](t, url, "/tokens", `{"name":"doomed","role":"viewer"}`)
	enrollTok := apiCreate[proto.EnrollmentToken](t, url, "/enrollment-tokens", `{"maxUses":1}`)
	group := apiCreate[proto.GroupChange](t, url, "/groups", `{"name":"fixture","priority":1,"policy":{"autoUpdatesEnabled":true},"deviceIds":["`+dev.DeviceID+`"]}`)
	doomed := apiCreate[proto.GroupChange](t, url, "/groups", `{"name":"doomed","deviceIds":["`+dev.DeviceID+`"]}`)
	sendCmd := func(id, body string) proto.Command {
		var c proto.Command
		if code, _, b := send(t, "POST", url+"/devices/"+id+"/commands", adminToken, body, &c); code != 202 {
			t.Fatalf("queueing a command: %d %s", code, b)
		}
		return c
	}
	cmd, cmdCancel, cmdResult := sendCmd(other.DeviceID, `{"type":"reboot"}`), sendCmd(other.DeviceID, `{"type":"reboot"}`), sendCmd(other.DeviceID, `{"type":"reboot"}`)
	sendCmd(dev.DeviceID, `{"type":"lock"}`)
	now := time.Now().UTC()
	plain := apiFixture{url: url,
		repl: strings.NewReplacer("{dev}", dev.DeviceID, "{other}", other.DeviceID, "{third}", third.DeviceID, "{victim}", victim.DeviceID,
			"{group}", group.GroupID, "{doomed}", doomed.GroupID,
			"{cmd}", cmd.CommandID, "{cmdCancel}", cmdCancel.CommandID, "{cmdResult}", cmdResult.CommandID, "{enrollmentTokenId}", enrollTok.ID,
			"{now}", now.Format(time.RFC3339Nano), "{past}", now.Add(-time.Minute).Format(time.RFC3339Nano),
			"{consoleETag}", apiETag(t, url, "/", ""), "{appETag}", apiETag(t, url, "/ui/app.js", ""),
			"{devPolicyETag}", apiETag(t, url, "/devices/"+dev.DeviceID+"/policy", dev.DeviceSecret)),
		tokens: map[string]string{"admin": adminToken, "enroll": enrollToken, "dev": dev.DeviceSecret, "other": other.DeviceSecret,
			"third": third.DeviceSecret, "victim": victim.DeviceSecret, "viewer": viewer.Token, "enrollment-token": enrollTok.Token, "": ""},
	}
	rdev := apiEnroll(t, rateURL) // the one enrollment the limit allows
	rate := apiFixture{url: rateURL, repl: strings.NewReplacer("{dev}", rdev.DeviceID),
		tokens: map[string]string{"enroll": enrollToken, "dev": rdev.DeviceSecret}}

	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	seen := map[string]bool{} // "<operationId> <status>"
	run := func(f apiFixture, tc apiCase) {
		t.Run(tc.name, func(t *testing.T) {
			path := f.repl.Replace(tc.path)
			reqBody := f.repl.Replace(tc.body)
			tok, ok := f.tokens[tc.token]
			if !ok {
				tok = tc.token
			}
			newReq := func() *http.Request {
				var body io.Reader
				if reqBody != "" {
					body = strings.NewReader(reqBody)
				}
				req, err := http.NewRequest(tc.method, f.url+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				if reqBody != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range tc.header {
					req.Header.Set(k, f.repl.Replace(v))
				}
				return req
			}
			vreq := newReq()
			route, params, err := router.FindRoute(vreq)
			if err != nil {
				t.Fatalf("%s %s is not in the document: %v", tc.method, tc.path, err)
			}
			in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
			reqErr := openapi3filter.ValidateRequest(context.Background(), in)
			switch {
			case tc.tooLarge():
			case tc.reqValid && reqErr != nil:
				t.Fatalf("the document rejects a request the server must accept or answer: %s", short(reqErr))
			case !tc.reqValid && reqErr == nil:
				t.Fatalf("the document accepts a request the server refuses with %d: describe the constraint", tc.status)
			}

			client := f.client
			if c, ok := f.clients[tc.token]; ok {
				client = c
			}
			if client == nil {
				client = http.DefaultClient
			}
			// Every too-large body here is at most api.LingerBytes over its
			// route's limit: the server reads it before its 413.
			resp, err := client.Do(newReq())
			if err != nil {
				t.Fatal(err)
			}
			body, err := readAPIAnswer(resp)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			if resp.StatusCode >= 400 {
				var eb proto.ErrorBody
				if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
					t.Fatalf("error body is not {\"error\":{\"code\",\"message\"}}: %s", body)
				}
				if want, ok := apiErrorCodes[tc.name]; ok && eb.Error.Code != want {
					t.Fatalf("error code %q, want %q: %s", eb.Error.Code, want, body)
				}
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts},
				Status:                 resp.StatusCode,
				Header:                 resp.Header,
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                opts,
			}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Fatalf("the answer does not match the document: %s\nbody: %.300s", short(err), body)
			}
			seen[route.Operation.OperationID+" "+strconv.Itoa(resp.StatusCode)] = true
		})
	}
	for _, tc := range apiCases() {
		run(plain, tc)
	}
	for _, tc := range apiRateCases() {
		run(rate, tc)
	}
	for _, tc := range apiTLSCases() {
		run(tlsF, tc)
	}
	named := map[string]bool{}
	for _, cases := range [][]apiCase{apiCases(), apiRateCases(), apiTLSCases()} {
		for _, tc := range cases {
			named[tc.name] = true
		}
	}
	for name := range apiErrorCodes {
		if !named[name] {
			t.Errorf("apiErrorCodes names %q, which is no case", name)
		}
	}

	// Every documented answer of every operation was produced by a real request.
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if !seen[op.OperationID+" "+status] {
					t.Errorf("%s %s (%s) documents %s but no apiCase produced it", m, p, op.OperationID, status)
				}
			}
		}
	}
}

// readAPIAnswer reads a response body. A server-sent event stream never ends:
// of it, only the first message is read (up to the first blank line), and
// it must be the "ready" event.
func readAPIAnswer(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return io.ReadAll(resp.Body)
	}
	var out []byte
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		out = append(out, line...)
		if err != nil {
			return out, err
		}
		if string(line) == "\n" {
			break
		}
	}
	if !bytes.Contains(out, []byte("event: "+proto.EventReady+"\n")) {
		return out, fmt.Errorf("the event stream does not start with %q: %q", proto.EventReady, out)
	}
	return out, nil
}

// jsonFieldNames returns the JSON names of t's fields, embedded structs
// flattened, and which of them are always present (no omitempty/omitzero).
func jsonFieldNames(t reflect.Type, names, always map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			jsonFieldNames(f.Type, names, always)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always[name] = true
		}
	}
}

// TestOpenAPISchemasMatchProto keeps the document's schemas equal to the Go
// types of the wire contract: the same property names, and for answers
// (which the server always writes in full) "required" is exactly the fields
// without omitempty. Enums equal the Go constants.
func TestOpenAPISchemasMatchProto(t *testing.T) {
	doc := loadOpenAPI(t)
	answers := map[string]any{
		"Error": proto.ErrorBody{}, "DevicePolicy": proto.DevicePolicy{}, "EnrollResponse": proto.EnrollResponse{},
		"MQTTInfo": proto.MQTTInfo{}, "DeviceStatus": proto.DeviceStatus{}, "DeviceList": proto.DeviceList{},
		"SettingFailure": proto.SettingFailure{}, "Transition": proto.Transition{}, "History": proto.History{},
		"ComplianceSummary": proto.ComplianceSummary{}, "PolicyExplanation": proto.PolicyExplanation{},
		"SettingExplanation": proto.SettingExplanation{}, "Group": proto.Group{}, "GroupList": proto.GroupList{},
		"GroupChange": proto.GroupChange{}, "OperatorToken": proto.OperatorToken{}, "OperatorTokenList": proto.OperatorTokenList{},
		"EnrollmentToken": proto.EnrollmentToken{}, "EnrollmentTokenList": proto.EnrollmentTokenList{},
		"AuditEntry": proto.AuditEntry{}, "AuditList": proto.AuditList{}, "CertificateResponse": proto.CertificateResponse{}, "SettingCatalog": proto.SettingCatalog{}, "SettingInfo": proto.SettingInfo{},
		"DeviceEvent": proto.DeviceEvent{}, "LastReport": api.LastReport{}, "Command": proto.Command{}, "CommandList": proto.CommandList{},
		"GroupCommandResponse": proto.GroupCommandResponse{}, "CommandCatalog": proto.CommandCatalog{},
		"CommandTypeInfo": proto.CommandTypeInfo{}, "CommandParamInfo": proto.CommandParamInfo{},
		"InventoryAck": proto.InventoryAck{}, "DeviceInventory": proto.DeviceInventory{}, "Inventory": proto.Inventory{},
		"InventorySectionMeta": proto.InventorySectionMeta{}, "PackageVersions": proto.PackageVersions{},
		"PackageVersionCount": proto.PackageVersionCount{}, "FactDistribution": proto.FactDistribution{},
		"FactValueCount": proto.FactValueCount{}, "InventorySystem": proto.InventorySystem{},
		"InventoryHardware": proto.InventoryHardware{}, "InventoryDisks": proto.InventoryDisks{}, "InventoryDisk": proto.InventoryDisk{},
		"InventoryNetwork": proto.InventoryNetwork{}, "InventoryInterface": proto.InventoryInterface{},
		"InventoryUsers": proto.InventoryUsers{}, "InventoryUser": proto.InventoryUser{}, "InventoryPackages": proto.InventoryPackages{},
		"InventoryPackage": proto.InventoryPackage{}, "InventoryUnits": proto.InventoryUnits{}, "InventoryUnit": proto.InventoryUnit{},
		"InventoryFirewall": proto.InventoryFirewall{}, "InventoryAndroid": proto.InventoryAndroid{},
	}
	requests := map[string]any{
		"EnrollRequest": proto.EnrollRequest{}, "TokenRegistration": proto.TokenRegistration{},
		"ComplianceReport": proto.ComplianceReport{}, "GroupMembers": proto.GroupMembers{},
		"OperatorTokenRequest": proto.OperatorTokenRequest{}, "EnrollmentTokenRequest": proto.EnrollmentTokenRequest{},
		"CertificateRequest": proto.CertificateRequest{}, "CommandRequest": proto.CommandRequest{}, "CommandResult": proto.CommandResult{}, "GroupCreate": api.GroupRequest{}, "GroupUpdate": proto.GroupUpdate{},
		"InventoryUpload": proto.InventoryUpload{},
	}
	check := func(name string, v any, answer bool) {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Errorf("schema %s is missing", name)
			return
		}
		names, always := map[string]bool{}, map[string]bool{}
		jsonFieldNames(reflect.TypeOf(v), names, always)
		props := map[string]bool{}
		for p := range ref.Value.Properties {
			props[p] = true
		}
		if !reflect.DeepEqual(props, names) {
			t.Errorf("schema %s has properties %v; the Go type %T has %v", name, slices.Sorted(maps.Keys(props)), v, slices.Sorted(maps.Keys(names)))
		}
		if !answer {
			return
		}
		req := map[string]bool{}
		for _, r := range ref.Value.Required {
			req[r] = true
		}
		if !reflect.DeepEqual(req, always) {
			t.Errorf("schema %s requires %v; the Go type %T always writes %v", name, slices.Sorted(maps.Keys(req)), v, slices.Sorted(maps.Keys(always)))
		}
		if ref.Value.AdditionalProperties.Has == nil || *ref.Value.AdditionalProperties.Has {
			t.Errorf("schema %s must set additionalProperties false: answers are checked strictly", name)
		}
	}
	for name, v := range answers {
		check(name, v, true)
	}
	for name, v := range requests {
		check(name, v, false)
	}

	enums := map[string][]string{
		"SettingName": proto.SettingNames,
		"Mode":        {string(proto.ModeEnforce), string(proto.ModeMonitor), string(proto.ModeGuided)},
		"Reason":      {string(proto.ReasonUnsupported), string(proto.ReasonEnforcementFailed), string(proto.ReasonMismatch), string(proto.ReasonPendingUser)},
		"Integrity":   {string(proto.IntegrityUnchecked), string(proto.IntegrityOK), string(proto.IntegrityUnknownBinary), string(proto.IntegrityUnreported)},
	}
	for _, s := range proto.States {
		enums["ComplianceState"] = append(enums["ComplianceState"], string(s))
	}
	for name, want := range enums {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Errorf("schema %s is missing", name)
			continue
		}
		var got []string
		for _, e := range ref.Value.Enum {
			got = append(got, fmt.Sprint(e))
		}
		if !slices.Equal(got, want) {
			t.Errorf("schema %s enum %v, want %v", name, got, want)
		}
	}
	// Every setting is described the same way wherever settings appear.
	for _, name := range []string{"DevicePolicy", "ComplianceReport", "SettingValues", "PolicyEdit", "GroupPolicy", "LastReport"} {
		for _, s := range proto.SettingNames {
			if doc.Components.Schemas[name].Value.Properties[s] == nil {
				t.Errorf("schema %s does not describe setting %s", name, s)
			}
		}
	}
}
