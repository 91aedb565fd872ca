package logbuf_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/logbuf"
)

// output records what reaches the underlying writer, one entry per write(2) it would be.
type output struct {
	mu     sync.Mutex
	writes []string
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes = append(o.writes, string(p))
	return len(p), nil
}

func (o *output) get() (writes []string, all string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.writes...), strings.Join(o.writes, "")
}

// newWriter answers a Writer whose interval is driven by tick, which returns once the flush
// it caused has been done: the loop takes the next tick only after the last one's flush.
func newWriter(t *testing.T, size int) (w *logbuf.Writer, out *output, tick func()) {
	t.Helper()
	ticks := make(chan time.Time)
	out = &output{}
	w = logbuf.New(out, logbuf.Options{Size: size, Ticks: ticks})
	t.Cleanup(func() { w.Close() })
	return w, out, func() {
		ticks <- time.Time{}
		ticks <- time.Time{}
	}
}

func writeLines(t *testing.T, w *logbuf.Writer, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if n, err := w.Write([]byte(l)); err != nil || n != len(l) {
			t.Fatalf("Write(%q) = %d, %v", l, n, err)
		}
	}
}

func TestLinesWaitForTheIntervalAndGoInOrder(t *testing.T) {
	w, out, tick := newWriter(t, 1024)
	writeLines(t, w, "one\n", "two\n", "three\n")
	if writes, _ := out.get(); len(writes) != 0 {
		t.Fatalf("before the interval, written: %q", writes)
	}
	tick()
	writes, all := out.get()
	if all != "one\ntwo\nthree\n" || len(writes) != 1 {
		t.Fatalf("after the interval: %q, want the three lines in order in one write", writes)
	}
	writeLines(t, w, "four\n")
	tick()
	if _, all := out.get(); all != "one\ntwo\nthree\nfour\n" {
		t.Fatalf("after the next interval: %q", all)
	}
}

func TestFullBufferIsWrittenFirst(t *testing.T) {
	w, out, _ := newWriter(t, 10)
	writeLines(t, w, "aaaa\n", "bbbb\n") // 10 bytes: full, not yet written
	if writes, _ := out.get(); len(writes) != 0 {
		t.Fatalf("a buffer just full was written: %q", writes)
	}
	writeLines(t, w, "cc\n")
	if writes, _ := out.get(); len(writes) != 1 || writes[0] != "aaaa\nbbbb\n" {
		t.Fatalf("a line that does not fit: written %q, want the buffer before it", writes)
	}
	writeLines(t, w, "a line longer than the buffer\n")
	writes, _ := out.get()
	want := []string{"aaaa\nbbbb\n", "cc\n", "a line longer than the buffer\n"}
	if fmt.Sprint(writes) != fmt.Sprint(want) {
		t.Fatalf("a line longer than the buffer: written %q, want %q", writes, want)
	}
}

func TestFlushAndClose(t *testing.T) {
	w, out, _ := newWriter(t, 1024)
	writeLines(t, w, "one\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, all := out.get(); all != "one\n" {
		t.Fatalf("after Flush: %q", all)
	}
	writeLines(t, w, "two\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, all := out.get(); all != "one\ntwo\n" {
		t.Fatalf("after Close: %q", all)
	}
	// A line logged by a shutdown step after Close is written at once, not lost.
	writeLines(t, w, "three\n")
	if _, all := out.get(); all != "one\ntwo\nthree\n" {
		t.Fatalf("a write after Close: %q", all)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func TestWarningsAreWrittenAtOnce(t *testing.T) {
	w, out, _ := newWriter(t, 4096)
	log := slog.New(logbuf.Handler(slog.NewJSONHandler(w, nil), w, slog.LevelWarn)).With("component", "test")
	log.Info("first")
	log.Info("second")
	if writes, _ := out.get(); len(writes) != 0 {
		t.Fatalf("info lines written before the interval: %q", writes)
	}
	log.WithGroup("g").Warn("careful", "k", 1)
	_, all := out.get()
	msgs := messages(t, all)
	if fmt.Sprint(msgs) != "[first second careful]" {
		t.Fatalf("after a warning, written %v, want the info lines before it and the warning", msgs)
	}
	if !strings.Contains(all, `"component":"test"`) || !strings.Contains(all, `"g":{"k":1}`) {
		t.Fatalf("the attributes and group were lost: %s", all)
	}
	log.Info("third")
	if _, all := out.get(); len(messages(t, all)) != 3 {
		t.Fatalf("an info line after the warning was written before the interval: %s", all)
	}
	log.Error("broken")
	if _, all := out.get(); fmt.Sprint(messages(t, all)) != "[first second careful third broken]" {
		t.Fatalf("after an error: %s", all)
	}
}

func messages(t *testing.T, all string) []string {
	t.Helper()
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(all, "\n"), "\n") {
		if line == "" {
			continue
		}
		i := strings.Index(line, `"msg":"`)
		if i < 0 {
			t.Fatalf("not a log line: %q", line)
		}
		rest := line[i+len(`"msg":"`):]
		msgs = append(msgs, rest[:strings.IndexByte(rest, '"')])
	}
	return msgs
}

// TestConcurrentWriters: lines from many goroutines, with the buffer filling and the interval
// firing meanwhile, arrive whole, each goroutine's in its order, none lost (run with -race).
func TestConcurrentWriters(t *testing.T) {
	w, out, tick := newWriter(t, 256)
	const goroutines, lines = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				if _, err := fmt.Fprintf(w, "%d %d\n", g, i); err != nil {
					t.Error(err)
					return
				}
				if i%100 == 0 {
					w.Flush()
				}
			}
		})
	}
	stop := make(chan struct{})
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		for {
			select {
			case <-stop:
				return
			default:
				tick()
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-ticking
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, all := out.get()
	next := make([]int, goroutines)
	for _, line := range strings.Split(strings.TrimSuffix(all, "\n"), "\n") {
		var g, i int
		if n, err := fmt.Sscanf(line, "%d %d", &g, &i); n != 2 || err != nil || g < 0 || g >= goroutines {
			t.Fatalf("a broken line: %q", line)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d where %d was due", g, i, next[g])
		}
		next[g]++
	}
	for g, n := range next {
		if n != lines {
			t.Errorf("goroutine %d: %d lines, want %d", g, n, lines)
		}
	}
}

// TestRealTicker: without Ticks, a line is written within the interval while nothing else
// happens (polled with a generous deadline).
func TestRealTicker(t *testing.T) {
	out := &output{}
	w := logbuf.New(out, logbuf.Options{Interval: 10 * time.Millisecond})
	defer w.Close()
	writeLines(t, w, "one\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, all := out.get(); all == "one\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the line was not written by the background flush")
		}
	}
}
