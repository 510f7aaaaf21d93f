package policy

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func vals(kv ...string) proto.SettingValues {
	v := proto.SettingValues{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i]] = json.RawMessage(kv[i+1])
	}
	return v
}

func TestEffective(t *testing.T) {
	low := store.Group{ID: "g1", Name: "all", Priority: 1, Layer: store.Layer{Values: vals("cameraDisabled", "false", "passwordMinLength", "4")}}
	high := store.Group{ID: "g2", Name: "kiosks", Priority: 10, Layer: store.Layer{Values: vals("cameraDisabled", "true")}}
	tieA := store.Group{ID: "g9", Name: "alpha", Priority: 5, Layer: store.Layer{Values: vals("passwordMinLength", "6")}}
	tieB := store.Group{ID: "g3", Name: "beta", Priority: 5, Layer: store.Layer{Values: vals("passwordMinLength", "12")}}
	monitor := store.Group{ID: "g4", Name: "watch", Priority: 20, Mode: proto.ModeMonitor, Layer: store.Layer{Values: vals("statusBarDisabled", "true")}}
	type want struct {
		values  string // JSON of the effective Settings
		monitor []string
		sources map[string]string
	}
	tests := []struct {
		name     string
		groups   []store.Group
		override store.Layer
		want     want
	}{
		{"nothing: camera allowed by default", nil, store.Layer{},
			want{`{"cameraDisabled":false}`, nil, map[string]string{"cameraDisabled": "default"}}},
		{"higher priority wins", []store.Group{low, high}, store.Layer{},
			want{`{"cameraDisabled":true,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "group:g2", "passwordMinLength": "group:g1"}}},
		{"order of groups does not matter", []store.Group{high, low}, store.Layer{},
			want{`{"cameraDisabled":true,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "group:g2", "passwordMinLength": "group:g1"}}},
		{"equal priority: name sorting first wins", []store.Group{tieB, tieA}, store.Layer{},
			want{`{"cameraDisabled":false,"passwordMinLength":6}`, nil, map[string]string{"cameraDisabled": "default", "passwordMinLength": "group:g9"}}},
		{"device override wins over every group", []store.Group{low, high}, store.Layer{Values: vals("cameraDisabled", "false")},
			want{`{"cameraDisabled":false,"passwordMinLength":4}`, nil, map[string]string{"cameraDisabled": "device", "passwordMinLength": "group:g1"}}},
		{"group mode monitors its settings", []store.Group{monitor, high}, store.Layer{},
			want{`{"cameraDisabled":true,"statusBarDisabled":true}`, []string{"statusBarDisabled"}, map[string]string{"cameraDisabled": "group:g2", "statusBarDisabled": "group:g4"}}},
		{"device modes override the mode, not the value", []store.Group{high}, store.Layer{Modes: map[string]proto.Mode{"cameraDisabled": proto.ModeMonitor}},
			want{`{"cameraDisabled":true}`, []string{"cameraDisabled"}, map[string]string{"cameraDisabled": "group:g2"}}},
		{"per-setting group mode", []store.Group{{ID: "g5", Name: "x", Layer: store.Layer{Values: vals("cameraDisabled", "true", "passwordMinLength", "8"), Modes: map[string]proto.Mode{"passwordMinLength": proto.ModeMonitor}}}}, store.Layer{},
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
	d := store.Device{Policy: proto.DevicePolicy{Version: 1}}
	if Recompute(&d, nil) {
		t.Fatal("Recompute with nothing changed bumped")
	}
	g := store.Group{ID: "g", Name: "g", Layer: store.Layer{Values: vals("cameraDisabled", "true")}}
	if !Recompute(&d, []store.Group{g}) || d.Policy.Version != 2 || !d.Policy.CameraDisabled {
		t.Fatalf("after group: %+v, want version 2 camera disabled", d.Policy)
	}
	if Recompute(&d, []store.Group{g}) || d.Policy.Version != 2 {
		t.Fatalf("second Recompute bumped: %+v", d.Policy)
	}
	g.Mode = proto.ModeMonitor
	if !Recompute(&d, []store.Group{g}) || d.Policy.Version != 3 || !reflect.DeepEqual(d.Policy.Monitor, []string{"cameraDisabled"}) {
		t.Fatalf("mode change: %+v, want version 3 monitoring the camera", d.Policy)
	}
}
