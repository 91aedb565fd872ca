package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPublicAddr is the address rule, at registration and at dial time alike. Addresses that
// carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) are as public as what they carry.
func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
		what   string
	}{
		{"93.184.215.14", true, "public IPv4"},
		{"8.8.8.8", true, "public IPv4"},
		{"2606:2800:21f:cb07::1", true, "public IPv6"},
		{"2001:4860:4860::8888", true, "public IPv6 next to Teredo's 2001::/32"},
		{"2a00:1450:4001:81c::200e", true, "public IPv6"},
		{"::ffff:93.184.215.14", true, "IPv4-mapped public"},
		{"64:ff9b::5db8:d70e", true, "NAT64 of 93.184.215.14"},
		{"2002:5db8:d70e::1", true, "6to4 of 93.184.215.14"},
		{"2001:0:4136:e378:8000:63bf:a247:28f1", true, "Teredo: server 65.54.227.120, client 93.184.215.14"},

		{"127.0.0.1", false, "loopback"},
		{"127.8.9.10", false, "loopback"},
		{"::1", false, "loopback"},
		{"10.0.0.1", false, "RFC 1918"},
		{"172.16.5.4", false, "RFC 1918"},
		{"192.168.1.1", false, "RFC 1918"},
		{"fd00:ec2::254", false, "unique local (AWS metadata over IPv6)"},
		{"169.254.169.254", false, "link-local (cloud metadata)"},
		{"fe80::1", false, "link-local"},
		{"fe80::1%eth0", false, "link-local with a zone"},
		{"100.64.0.1", false, "CGNAT"},
		{"224.0.0.1", false, "multicast"},
		{"239.255.255.250", false, "multicast"},
		{"ff02::1", false, "multicast"},
		{"ff0e::1", false, "global multicast"},
		{"0.0.0.0", false, "unspecified"},
		{"::", false, "unspecified"},
		{"0.1.2.3", false, "this network"},
		{"255.255.255.255", false, "broadcast"},
		{"240.0.0.1", false, "reserved"},
		{"198.18.0.1", false, "benchmarking"},
		{"192.0.0.8", false, "IETF protocol assignments"},
		{"::127.0.0.1", false, "IPv4-compatible loopback (::/96)"},
		{"::10.0.0.1", false, "IPv4-compatible private (::/96)"},
		{"::8.8.8.8", false, "IPv4-compatible (::/96, deprecated: never a real destination)"},
		{"::ffff:127.0.0.1", false, "IPv4-mapped loopback"},
		{"::ffff:10.0.0.1", false, "IPv4-mapped private"},
		{"::ffff:169.254.169.254", false, "IPv4-mapped link-local"},
		{"::ffff:0:7f00:1", false, "IPv4-translated loopback (::ffff:0:0:0/96)"},
		{"64:ff9b::7f00:1", false, "NAT64 of 127.0.0.1"},
		{"64:ff9b::a9fe:a9fe", false, "NAT64 of 169.254.169.254"},
		{"64:ff9b::a00:1", false, "NAT64 of 10.0.0.1"},
		{"64:ff9b:1::a00:1", false, "local-use NAT64 (64:ff9b:1::/48)"},
		{"fec0::1", false, "site-local (fec0::/10)"},
		{"feff::1", false, "site-local (fec0::/10)"},
		{"2002:a9fe:a9fe::1", false, "6to4 of 169.254.169.254"},
		{"2002:7f00:1::1", false, "6to4 of 127.0.0.1"},
		{"2002:c0a8:101::1", false, "6to4 of 192.168.1.1"},
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, "Teredo: client 10.0.0.1"},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", false, "Teredo: client 127.0.0.1"},
		{"2001:0:a00:1:8000:63bf:a247:28f1", false, "Teredo: server 10.0.0.1"},
		{"100::1", false, "discard-only (100::/64)"},
	} {
		if got := publicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("publicAddr(%s) = %v, want %v (%s)", tc.addr, got, tc.public, tc.what)
		}
	}
}

// The check runs on the dialled address: a name resolving to loopback is refused, and a
// redirect is an answer, not something to follow.
func TestClientRefusesAndDoesNotFollow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
	}))
	defer srv.Close()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	_, err := NewClient(false, time.Second).Post(byName, "application/json", nil)
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("strict client to %s: err = %v, want ErrForbiddenAddress", byName, err)
	}
	res, err := NewClient(true, time.Second).Post(byName, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Errorf("status %d, want the 302 itself", res.StatusCode)
	}
}
