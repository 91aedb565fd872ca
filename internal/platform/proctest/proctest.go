// Package proctest is for tests that run a real program beside the service (stripe-mock,
// Mailpit, Jaeger, Prometheus, the service itself): loopback ports to give it, and a buffer
// that collects its output while it runs.
package proctest

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
)

// FreePorts answers n distinct loopback ports that were free a moment ago. All n are held
// until the last is found, so no two are the same.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// FreeAddr answers a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePorts(t, 1)[0])
}

// Output collects what a program writes: exec's copying goroutines write while a test that
// saw it fail reads.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
