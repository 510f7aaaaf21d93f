package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileIDStore(t *testing.T) {
	id := Identity{DeviceID: "dev-1", DeviceSecret: "secret", MQTTURL: "tcp://h:1883", Topic: "devices/dev-1/policy_changed", FCMToken: "tok"}
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantOK  bool
		wantErr bool
	}{
		{name: "missing directory is not found", setup: func(*testing.T, string) {}},
		{name: "missing file is not found", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "saved identity loads", setup: func(t *testing.T, dir string) {
			if err := NewFileIDStore(dir).Save(id); err != nil {
				t.Fatal(err)
			}
		}, wantOK: true},
		{name: "corrupt file is an error", setup: func(t *testing.T, dir string) {
			os.MkdirAll(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "identity.json"), []byte("{not json"), 0o600)
		}, wantErr: true},
		{name: "identity without secret is an error", setup: func(t *testing.T, dir string) {
			os.MkdirAll(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "identity.json"), []byte(`{"deviceId":"x"}`), 0o600)
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "state")
			tt.setup(t, dir)
			got, ok, err := NewFileIDStore(dir).Load()
			if (err != nil) != tt.wantErr || ok != tt.wantOK {
				t.Fatalf("Load = %+v, %v, %v; want ok=%v err=%v", got, ok, err, tt.wantOK, tt.wantErr)
			}
			if ok && got != id {
				t.Errorf("Load = %+v, want %+v", got, id)
			}
		})
	}
}

func TestFileIDStoreSaveAndClear(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := NewFileIDStore(dir)
	for i, id := range []Identity{{DeviceID: "a", DeviceSecret: "1"}, {DeviceID: "b", DeviceSecret: "2"}} {
		if err := s.Save(id); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		got, ok, err := s.Load()
		if err != nil || !ok || got != id {
			t.Fatalf("Load after Save %d = %+v, %v, %v", i, got, ok, err)
		}
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", di.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %d entries after overwrite, want 1 (no temp files)", len(entries))
	}
	for range 2 { // clearing twice is fine
		if err := s.Clear(); err != nil {
			t.Fatalf("Clear: %v", err)
		}
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Errorf("Load after Clear = %v, %v; want not found", ok, err)
	}
}

func TestWriteFileAtomicCleansUpOnFailure(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileAtomic(filepath.Join(dir, "f.json"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Renaming over a non-empty directory fails after the temp file was
	// written: the temp file must not be left behind.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(sub, []byte("new"), 0o600); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 {
		t.Errorf("dir holds %v, want only f.json and sub (temp file cleaned up)", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f.json")); string(b) != "old" {
		t.Errorf("f.json = %q, want old", b)
	}
}
