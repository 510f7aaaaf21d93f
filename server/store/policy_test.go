package store

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

func vals(kv ...string) proto.SettingValues {
	v := proto.SettingValues{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i]] = json.RawMessage(kv[i+1])
	}
	return v
}

func TestEffective(t *testing.T) {
	low := Group{ID: "g1", Name: "all", Priority: 1, Layer: Layer{Values: vals("cameraDisabled", "false", "passwordMinLength", "4")}}
	high := Group{ID: "g2", Name: "kiosks", Priority: 10, Layer: Layer{Values: vals("cameraDisabled", "true")}}
	tieA := Group{ID: "g9", Name: "alpha", Priority: 5, Layer: Layer{Values: vals("passwordMinLength", "6")}}
	tieB := Group{ID: "g3", Name: "beta", Priority: 5, Layer: Layer{Values: vals("passwordMinLength", "12")}}
	monitor := Group{ID: "g4", Name: "watch", Priority: 20, Mode: proto.ModeMonitor, Layer: Layer{Values: vals("statusBarDisabled", "true")}}
	type want struct {
		values  string // JSON of the effective Settings
		monitor []string
		sources map[string]string
	}
	tests := []struct {
		name     string
		groups   []Group
		override Layer
		want     want
	}{
		{"nothing: camera allowed by default", nil, Layer{},
			want{`{"cameraDisabled":false}`, nil, map[string]string{"cameraDisabled": "default"}}},
		{"higher priority wins", []Group{low, high}, Layer{},
			want{`{"cameraDisabled":true,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "group:g2", "passwordMinLength": "group:g1"}}},
		{"order of groups does not matter", []Group{high, low}, Layer{},
			want{`{"cameraDisabled":true,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "group:g2", "passwordMinLength": "group:g1"}}},
		{"equal priority: name sorting first wins", []Group{tieB, tieA}, Layer{},
			want{`{"cameraDisabled":false,"passwordMinLength":6}`, nil, map[string]string{"cameraDisabled": "default", "passwordMinLength": "group:g9"}}},
		{"device override wins over every group", []Group{low, high}, Layer{Values: vals("cameraDisabled", "false")},
			want{`{"cameraDisabled":false,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "device", "passwordMinLength": "group:g1"}}},
		{"group mode monitors its settings", []Group{monitor, high}, Layer{},
			want{`{"cameraDisabled":true,"statusBarDisabled":true}`, []string{"statusBarDisabled"}, map[string]string{"cameraDisabled": "group:g2", "statusBarDisabled": "group:g4"}}},
		{"device modes override the mode, not the value", []Group{high}, Layer{Modes: map[string]proto.Mode{"cameraDisabled": proto.ModeMonitor}},
			want{`{"cameraDisabled":true}`, []string{"cameraDisabled"}, map[string]string{"cameraDisabled": "group:g2"}}},
		{"per-setting group mode", []Group{{ID: "g5", Name: "x", Layer: Layer{Values: vals("cameraDisabled", "true", "passwordMinLength", "8"), Modes: map[string]proto.Mode{"passwordMinLength": proto.ModeMonitor}}}}, Layer{},
			want{`{"cameraDisabled":true,"passwordMinLength":8}`, []string{"passwordMinLength"}, map[string]string{"cameraDisabled": "group:g5", "passwordMinLength": "group:g5"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, monitor, ex := Effective(tt.groups, tt.override)
			b, _ := json.Marshal(s)
			if string(b) != tt.want.values {
				t.Errorf("settings = %s, want %s", b, tt.want.values)
			}
			if !reflect.DeepEqual(monitor, tt.want.monitor) {
				t.Errorf("monitor = %v, want %v", monitor, tt.want.monitor)
			}
			sources := map[string]string{}
			for k, e := range ex {
				sources[k] = e.Source
			}
			if !reflect.DeepEqual(sources, tt.want.sources) {
				t.Errorf("sources = %v, want %v", sources, tt.want.sources)
			}
		})
	}
}

func TestRecomputeBumpsOnlyOnChange(t *testing.T) {
	d := Device{Policy: proto.DevicePolicy{Version: 1}}
	if Recompute(&d, nil) {
		t.Fatal("Recompute with nothing changed bumped")
	}
	g := Group{ID: "g", Name: "g", Layer: Layer{Values: vals("cameraDisabled", "true")}}
	if !Recompute(&d, []Group{g}) || d.Policy.Version != 2 || !d.Policy.CameraDisabled {
		t.Fatalf("after group: %+v, want version 2 camera disabled", d.Policy)
	}
	if Recompute(&d, []Group{g}) || d.Policy.Version != 2 {
		t.Fatalf("second Recompute bumped: %+v", d.Policy)
	}
	g.Mode = proto.ModeMonitor
	if !Recompute(&d, []Group{g}) || d.Policy.Version != 3 || !reflect.DeepEqual(d.Policy.Monitor, []string{"cameraDisabled"}) {
		t.Fatalf("mode change: %+v, want version 3 monitoring the camera", d.Policy)
	}
}
