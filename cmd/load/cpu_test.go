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
	// Burn CPU until the reading shows it. A busy machine may give this process less than
	// its wall time, so the test waits for the count rather than timing the work; it fails
	// only if CPU spent is never counted.
	used := cpuTimes{}
	sum := sha256.Sum256(nil)
	for deadline := time.Now().Add(30 * time.Second); used["load"] < 100*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("30 s of hashing counted as %v of CPU", used["load"])
		}
		for range 10000 {
			sum = sha256.Sum256(sum[:])
		}
		used = cpuTimes{}
		used.add(before, readCPU(map[int]string{os.Getpid(): "load"}))
	}
	var b strings.Builder
	writeCPU(&b, used, cpuTimes{"load": used["load"] / 2}, 1000, 1000)
	if !strings.Contains(b.String(), "service") || !strings.Contains(b.String(), "bare") {
		t.Fatalf("table:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}
