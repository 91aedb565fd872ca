package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress refuses a connection to an address a tenant's webhook must not reach.
var ErrForbiddenAddress = errors.New("webhook: address is not public (private, loopback, link-local or reserved)")

// nonPublic4 are IPv4 ranges beyond what netip's predicates cover that no webhook should
// reach: "this network", shared carrier-grade NAT, IETF protocol assignments, benchmarking,
// and the reserved block (broadcast included).
var nonPublic4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// IPv6 prefixes: the global unicast space, and inside or beside it the ones that carry an
// IPv4 address the packets end up at.
var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the IPv4 address in the last 32 bits
	sixToFour     = netip.MustParsePrefix("2002::/16")    // RFC 3056: the IPv4 address in bits 16-47
	teredo        = netip.MustParsePrefix("2001::/32")    // RFC 4380: the server in bits 32-63, the client inverted in the last 32
)

// publicAddr reports whether a webhook may connect to ip.
//
// IPv6 is allowed only inside global unicast (2000::/3) rather than refused range by range:
// that leaves out at once everything else, IPv4-compatible (::/96) and IPv4-translated
// addresses, unique and site-local (fec0::/10), link-local, multicast, and whatever is
// reserved next. An address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo)
// reaches that address in the end, so it is exactly as public as what it carries.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.Is4():
		return public4(ip)
	case !ip.IsValid():
		return false
	case nat64.Contains(ip):
		b := ip.As16()
		return public4(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		b := ip.As16()
		return public4(netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(ip):
		b := ip.As16()
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return public4(netip.AddrFrom4([4]byte(b[4:8]))) && public4(netip.AddrFrom4(client))
	}
	return globalUnicast.Contains(ip)
}

func public4(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic4 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// refuseNonPublic is a net.Dialer Control function. It runs after name resolution, on the
// address actually dialled, so a name that resolves (or re-resolves, DNS rebinding) to a
// private address is refused too.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// localName reports whether host is a name that means this machine whatever DNS says.
func localName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// NewClient is the HTTP client deliveries go through. Unless allowPrivate, it refuses
// private, loopback and link-local addresses at dial time. It never follows a redirect (a
// 3xx is a failed attempt: following one would let a public endpoint bounce us to a private
// one), never uses a proxy from the environment (the check would then see the proxy's
// address, not the endpoint's), and gives each attempt timeout in all.
func NewClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: min(5*time.Second, timeout), KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = refuseNonPublic
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(5*time.Second, timeout),
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
