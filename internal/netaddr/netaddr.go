// Package netaddr tells whether a network address stays on this machine.
// Patchline allows some things only there: plain HTTP between the agent
// and the controller, the controller's API without TLS, the admin token
// over plain HTTP, and the profiler.
package netaddr

import (
	"net"
	"net/url"
	"strings"
)

// IsLoopbackHost reports whether host, a name or an IP address without a
// port, is this machine: "localhost" (in any case) or a loopback IP
// address such as 127.0.0.1 or ::1. The empty host, which means every
// interface to a listener, is not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackAddr reports whether addr, a host:port address to listen on or
// to dial, has a loopback host (see IsLoopbackHost). An address without a
// port is an error.
func IsLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	return IsLoopbackHost(host), nil
}

// InClear reports whether a request to u would cross the network
// unencrypted: plain http to a host that is not loopback.
func InClear(u *url.URL) bool {
	return u.Scheme == "http" && !IsLoopbackHost(u.Hostname())
}
