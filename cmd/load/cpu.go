package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// cpuGroups are the processes whose CPU time the baseline rounds account for, by the name
// the kernel knows them by, or by the name readCPU is given for a pid ("load" for this
// process and "bare" for the bare server, whatever their binary is called).
var cpuGroups = []string{"api", "postgres", "redis-server", "bare", "load"}

// cpuTimes is the CPU time (user + system) each group of processes used.
type cpuTimes map[string]time.Duration

// cpuReading is the CPU time each running process of a group has used so far, by pid.
type cpuReading map[int]procCPU

type procCPU struct {
	group string
	used  time.Duration
}

// readCPU reads the CPU time of the running processes of every group, from /proc, naming
// the processes of named by the name given. It answers nil where there is no /proc.
func readCPU(named map[int]string) cpuReading {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return nil
	}
	out := cpuReading{}
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // it ended meanwhile
		}
		// pid (comm) state ppid ... field 14 utime, 15 stime; comm may hold spaces and
		// parentheses, so the fields are counted from the last ')'.
		open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if open < 0 || end < open {
			continue
		}
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(raw[:open])))
		name := string(raw[open+1 : end])
		if n, ok := named[pid]; ok {
			name = n
		}
		if !slices.Contains(cpuGroups, name) {
			continue
		}
		fields := bytes.Fields(raw[end+1:])
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(string(fields[11]), 10, 64)
		stime, _ := strconv.ParseInt(string(fields[12]), 10, 64)
		out[pid] = procCPU{group: name, used: time.Duration(utime+stime) * time.Second / userHZ}
	}
	return out
}

// add accumulates the time each process used between two readings. A process that started
// in between counts all its time; one that ended in between takes its time with it (short-lived
// PostgreSQL backends are missed, pooled ones are not), so no group ever goes negative.
func (c cpuTimes) add(before, after cpuReading) {
	for pid, p := range after {
		if b, ok := before[pid]; ok && b.group == p.group {
			c[p.group] += p.used - b.used
		} else {
			c[p.group] += p.used
		}
	}
}

// writeCPU prints where the CPU went in the baseline rounds, in microseconds per answered
// request, by process: the service's requests against the bare handler's.
func writeCPU(w io.Writer, service, bare cpuTimes, serviceOK, bareOK int) {
	if service == nil || serviceOK == 0 || bareOK == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhere the CPU goes in the baseline rounds, µs per answered request (bare is the bare server's process, load the client):\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "ROUNDS")
	for _, g := range cpuGroups {
		fmt.Fprintf(tw, "\t%s", g)
	}
	fmt.Fprintln(tw, "\ttotal")
	row := func(name string, t cpuTimes, n int) {
		fmt.Fprint(tw, name)
		var total time.Duration
		for _, g := range cpuGroups {
			fmt.Fprintf(tw, "\t%.0f", float64(t[g].Microseconds())/float64(n))
			total += t[g]
		}
		fmt.Fprintf(tw, "\t%.0f\n", float64(total.Microseconds())/float64(n))
	}
	row("service", service, serviceOK)
	row("bare", bare, bareOK)
	tw.Flush()
}
