package version

import "testing"

func TestCompare(t *testing.T) {
	tests := []struct {
		name   string
		source string
		a, b   string
		want   int
	}{
		{"apt: release candidate with tilde is older than the release", "apt", "1.0~rc1", "1.0", -1},
		{"apt: epoch 1 beats a higher upstream without epoch", "apt", "1:0.9", "2.0", 1},
		{"apt: higher Debian revision is newer", "apt", "1.0-1", "1.0-2", -1},
		{"apt: binNMU suffix +b1 is newer", "apt", "1.0+b1", "1.0", 1},
		{"apt: Debian stable security backport is older than unstable", "apt", "3.0.15-1~deb12u1", "3.0.15-1", -1},
		{"apt: equal versions", "apt", "2.36-9+deb12u4", "2.36-9+deb12u4", 0},
		{"apt: digit runs compare numerically", "apt", "1.10", "1.9", 1},
		{"apt: leading zeros do not matter", "apt", "1.01", "1.1", 0},
		{"apt: explicit epoch 0 equals no epoch", "apt", "0:1.2", "1.2", 0},
		{"apt: double tilde is older than single tilde", "apt", "1.0~~", "1.0~", -1},
		{"apt: letters sort before other characters", "apt", "1.0a", "1.0+", -1},
		{"apt: end of string sorts before a letter", "apt", "1.0", "1.0a", -1},
		{"apt: ubuntu revision", "apt", "2.4.1-1ubuntu1", "2.4.1-1ubuntu1.1", -1},
		{"apt: huge numbers do not overflow", "apt", "99999999999999999999999", "99999999999999999999998", 1},
		{"winget: dotted numeric", "winget", "124.0.6367.91", "124.0.6367.118", -1},
		{"winget: missing segment equals zero", "winget", "1.0", "1.0.0", 0},
		{"winget: extra non-zero segment is newer", "winget", "1.0", "1.0.1", -1},
		{"choco: pre-release is older than the release", "choco", "1.2.3-beta", "1.2.3", -1},
		{"choco: pre-releases compare as strings", "choco", "1.2.3-alpha", "1.2.3-beta", -1},
		{"brew: revision suffix is newer", "brew", "3.2.1_1", "3.2.1", 1},
		{"brew: numeric segment beats word", "brew", "1.0.1", "1.0.rc", 1},
		{"windows-update: build numbers", "windows-update", "10.0.19045.4529", "10.0.19045.4651", -1},
		{"windows-update: equal", "windows-update", "10.0.1", "10.0.1", 0},
		{"empty versions are equal", "winget", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(tt.source, tt.a, tt.b); got != tt.want {
				t.Errorf("Compare(%q, %q, %q) = %d, want %d", tt.source, tt.a, tt.b, got, tt.want)
			}
			if got := Compare(tt.source, tt.b, tt.a); got != -tt.want {
				t.Errorf("Compare(%q, %q, %q) = %d, want %d", tt.source, tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

func FuzzCompare(f *testing.F) {
	seeds := [][2]string{
		{"1.0~rc1", "1.0"}, {"1:0.9", "2.0"}, {"1.0-1", "1.0-2"}, {"1.0+b1", "1.0"},
		{"3.0.15-1~deb12u1", "3.0.15-1"}, {"1.2.3-beta", "1.2.3"}, {"", "0"}, {"a:b-c", "1:"},
	}
	for _, s := range seeds {
		f.Add("apt", s[0], s[1])
		f.Add("winget", s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, source, a, b string) {
		ab, ba := Compare(source, a, b), Compare(source, b, a)
		if ab != -ba {
			t.Fatalf("Compare(%q, %q, %q) = %d but reversed = %d", source, a, b, ab, ba)
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("Compare(%q, %q, %q) = %d, want -1, 0 or 1", source, a, b, ab)
		}
		if Compare(source, a, a) != 0 {
			t.Fatalf("Compare(%q, %q, %q) != 0", source, a, a)
		}
	})
}
