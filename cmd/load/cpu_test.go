package main

import (
	"crypto/sha256"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReadCPUCountsThisProcess: CPU this process burns shows up under "load", and the table
// divides it by the requests answered.
func TestReadCPUCountsThisProcess(t *testing.T) {
	before := readCPU(map[int]string{os.Getpid(): "load"})
	if before == nil {
		t.Skip("no /proc here")
	}
	sum := sha256.Sum256(nil)
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		sum = sha256.Sum256(sum[:])
	}
	after := readCPU(map[int]string{os.Getpid(): "load"})
	used := cpuTimes{}
	used.add(before, after)
	if used["load"] < 100*time.Millisecond {
		t.Fatalf("200 ms of hashing counted as %v of CPU", used["load"])
	}

	var b strings.Builder
	writeCPU(&b, used, cpuTimes{"load": used["load"] / 2}, 1000, 1000)
	if !strings.Contains(b.String(), "service") || !strings.Contains(b.String(), "bare") {
		t.Fatalf("table:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}
