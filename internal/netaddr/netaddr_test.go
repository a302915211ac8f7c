package netaddr

import (
	"net/url"
	"testing"
)

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"127.0.0.1", true},
		{"127.8.4.2", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.20.0.5", false},
		{"patchd.msp.example", false},
		{"localhost.msp.example", false},
		{"[::1]", false},
	}
	for _, tt := range tests {
		if got := IsLoopbackHost(tt.host); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		want    bool
		wantErr bool
	}{
		{"the default listen address", "127.0.0.1:8420", true, false},
		{"a free port on loopback", "127.0.0.1:0", true, false},
		{"IPv6 loopback", "[::1]:8420", true, false},
		{"localhost", "localhost:6060", true, false},
		{"every interface", ":8420", false, false},
		{"every IPv4 interface", "0.0.0.0:8420", false, false},
		{"a LAN address", "192.168.1.10:8420", false, false},
		{"no port", "127.0.0.1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IsLoopbackAddr(tt.addr)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("IsLoopbackAddr(%q) = %v, %v; want %v, error %v", tt.addr, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestInClear(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://patchd.msp.example:8420", false},
		{"https://10.20.0.5:8420", false},
		{"http://127.0.0.1:8420", false},
		{"http://localhost:8420", false},
		{"http://[::1]:8420", false},
		{"HTTP://patchd.msp.example", true},
		{"http://patchd.msp.example:8420", true},
		{"http://10.20.0.5:8420", true},
		{"http://[2001:db8::1]:8420", true},
		{"http://localhost.msp.example:8420", true},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := InClear(u); got != tt.want {
			t.Errorf("InClear(%s) = %v, want %v", tt.url, got, tt.want)
		}
	}
}
