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

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14":         true,
		"2606:2800:21f:cb07::1": true,
		"127.0.0.1":             false,
		"127.8.9.10":            false,
		"::1":                   false,
		"10.0.0.1":              false,
		"172.16.5.4":            false,
		"192.168.1.1":           false,
		"169.254.169.254":       false, // cloud metadata
		"fe80::1":               false,
		"fd00:ec2::254":         false, // AWS metadata over IPv6 (unique local)
		"0.0.0.0":               false,
		"::":                    false,
		"100.64.0.1":            false,
		"224.0.0.1":             false,
		"::ffff:127.0.0.1":      false, // IPv4-mapped
		"::ffff:10.0.0.1":       false,
		"64:ff9b::a9fe:a9fe":    false, // NAT64 of 169.254.169.254
		"2002:a9fe:a9fe::1":     false, // 6to4 of 169.254.169.254
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
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
