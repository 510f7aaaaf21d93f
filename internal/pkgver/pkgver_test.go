package pkgver

import "testing"

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		a, b string
		want int
	}{
		{"deb tilde sorts before release", Deb, "1.0~rc1-1", "1.0-1", -1},
		{"deb epoch wins", Deb, "1:0.9-1", "2.0-1", 1},
		{"deb revision", Deb, "2.10-3", "2.10-2", 1},
		{"deb equal", Deb, "2.10-3", "2.10-3", 0},
		{"deb numeric not lexical", Deb, "1.10", "1.9", 1},
		{"deb plus suffix", Deb, "5.02-1+b1", "5.02-1", 1},
		{"rpm release", RPM, "2.12.1-3.fc40", "2.12.1-2.fc40", 1},
		{"rpm epoch", RPM, "1:1.0-1", "2.0-1", 1},
		{"rpm numeric", RPM, "1.10-1", "1.9-1", 1},
		{"rpm tilde", RPM, "1.0~rc1-1", "1.0-1", -1},
		{"pacman pkgrel", Pacman, "2.12.1-2", "2.12.1-1", 1},
		{"apk release", APK, "2.12.1-r1", "2.12.1-r0", 1},
		{"apk suffix", APK, "1.0_rc1-r0", "1.0-r0", -1},
		{"apk equal", APK, "1.36.1-r5", "1.36.1-r5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compare(tt.f, tt.a, tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Compare(%s, %q, %q) = %d, want %d", tt.f, tt.a, tt.b, got, tt.want)
			}
			back, _ := Compare(tt.f, tt.b, tt.a)
			if back != -tt.want {
				t.Errorf("Compare(%s, %q, %q) = %d, not the opposite of %d", tt.f, tt.b, tt.a, back, tt.want)
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	for _, tt := range []struct {
		f    Format
		a, b string
	}{
		{Deb, "not a version!", "1.0"},
		{Deb, "1.0", "x:1"},
		{APK, "1.0-r0", "???"},
		{"zip", "1", "2"},
	} {
		if _, err := Compare(tt.f, tt.a, tt.b); err == nil {
			t.Errorf("Compare(%s, %q, %q) succeeded", tt.f, tt.a, tt.b)
		}
	}
}

func TestAtLeast(t *testing.T) {
	if ok, err := AtLeast(Deb, "2.10-3", "2.10"); err != nil || !ok {
		t.Errorf("AtLeast(deb, 2.10-3, 2.10) = %v, %v", ok, err)
	}
	if ok, err := AtLeast(RPM, "2.9-1", "2.10"); err != nil || ok {
		t.Errorf("AtLeast(rpm, 2.9-1, 2.10) = %v, %v", ok, err)
	}
}
