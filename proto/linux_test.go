package proto

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseLinuxSettings(t *testing.T) {
	tests := []struct {
		name, setting, in string
		want              string // canonical form; "" when it must fail
		err               string
	}{
		{"packages", SettingPackages, `[{"name":"curl","state":"present","minVersion":"7.88"},{"state":"absent","name":"telnet"}]`,
			`[{"name":"curl","state":"present","minVersion":"7.88"},{"name":"telnet","state":"absent"}]`, ""},
		{"packages empty", SettingPackages, `[]`, `[]`, ""},
		{"package name is an option", SettingPackages, `[{"name":"-y","state":"present"}]`, "", "not starting with a sign"},
		{"package named twice", SettingPackages, `[{"name":"a","state":"present"},{"name":"a","state":"absent"}]`, "", "named twice"},
		{"package bad state", SettingPackages, `[{"name":"a","state":"latest"}]`, "", "state must be"},
		{"minVersion of an absent package", SettingPackages, `[{"name":"a","state":"absent","minVersion":"1"}]`, "", "minVersion needs state"},
		{"package version is report-only", SettingPackages, `[{"name":"a","state":"present","version":"1"}]`, "", "reported by agents"},
		{"package unknown field", SettingPackages, `[{"name":"a","state":"present","pin":true}]`, "", "unknown field"},
		{"packages not a list", SettingPackages, `{"name":"a"}`, "", "must be a list"},
		{"services", SettingServices, `[{"name":"cups.service","enabled":false,"running":false},{"name":"sshd","masked":false}]`,
			`[{"name":"cups.service","enabled":false,"running":false},{"name":"sshd","masked":false}]`, ""},
		{"service with nothing managed", SettingServices, `[{"name":"cups"}]`, "", "at least one of"},
		{"masked and running", SettingServices, `[{"name":"cups","masked":true,"running":true}]`, "", "masked unit"},
		{"service name", SettingServices, `[{"name":"--now","running":true}]`, "", "not a systemd unit name"},
		{"passwordQuality", SettingPasswordQuality, `{"minclass":3,"minlen":12}`, `{"minlen":12,"minclass":3}`, ""},
		{"passwordQuality too short", SettingPasswordQuality, `{"minlen":4,"minclass":0}`, "", "minlen must be"},
		{"passwordQuality missing", SettingPasswordQuality, `{"minlen":8}`, "", "{minlen, minclass}"},
		{"firewallEnabled", SettingFirewallEnabled, `true`, `true`, ""},
		{"firewallEnabled not bool", SettingFirewallEnabled, `"yes"`, "", "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSetting(tt.setting, json.RawMessage(tt.in))
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSetting(%s, %s) = %s, %v; want an error with %q", tt.setting, tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("ParseSetting(%s, %s) = %s, %v; want %s", tt.setting, tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDiskEncryptionRequirement(t *testing.T) {
	d, _ := LookupSetting(SettingDiskEncryptionRequired)
	for _, c := range []struct {
		want, got string
		ok        bool
	}{{"false", "false", true}, {"false", "true", true}, {"true", "true", true}, {"true", "false", false}} {
		if d.EqualValues(json.RawMessage(c.want), json.RawMessage(c.got)) != c.ok {
			t.Errorf("required %s, observed %s: satisfied = %v, want %v", c.want, c.got, !c.ok, c.ok)
		}
	}
}

func TestDiffUnsupportedDetail(t *testing.T) {
	want := SettingValues{SettingServices: json.RawMessage(`[{"name":"cups","running":false}]`)}
	f := DiffValues(want, nil, SettingValues{}, []string{SettingServices}, map[string]string{SettingServices: "systemd is not running this host"})
	if len(f) != 1 || f[0].Reason != ReasonUnsupported || f[0].Detail != "systemd is not running this host" {
		t.Fatalf("DiffValues = %+v", f)
	}
}
