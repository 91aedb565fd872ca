// Package logbuf buffers a log's output: lines are gathered in memory and written in one
// write(2) when the buffer fills, on a short interval, and on Flush or Close, instead of one
// write per line (the access log writes a line per request). A line at or above a level
// (Warn, by default) is written at once, with those before it, so errors are never held back.
//
// The trade-off, the one zap's BufferedWriteSyncer makes: a process killed without Close
// (SIGKILL, a crash) loses the lines of at most the last interval below that level.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultSize     = 64 << 10
	DefaultInterval = 100 * time.Millisecond
)

// Options configure a Writer. The zero value is the defaults.
type Options struct {
	// Size is the buffer's capacity: a line that does not fit has those before it written
	// first, and a line longer than Size is written on its own.
	Size int
	// Interval is how long a line waits at most before it is written, while the process
	// lives (DefaultInterval).
	Interval time.Duration
	// Ticks, when set, replaces the Interval's ticker: each value received flushes. For tests.
	Ticks <-chan time.Time
}

// Writer is an io.Writer that buffers what is written to it and writes it to the underlying
// writer in order. It is safe for concurrent use; each Write's bytes stay together, so a
// handler that writes a line a call (slog's do) never has its lines interleaved.
type Writer struct {
	out  io.Writer
	size int

	// flushMu orders writes to out: the buffer is swapped and written under it, so a line
	// is never written before one buffered earlier. mu guards buf and closed only, so a
	// line can be buffered while the previous buffer is being written.
	flushMu sync.Mutex
	spare   []byte // the buffer not in use, under flushMu
	mu      sync.Mutex
	buf     []byte
	closed  bool

	stop, done chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// New returns a Writer over out and starts its background flush; Close stops it.
func New(out io.Writer, opts Options) *Writer {
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	w := &Writer{
		out:   out,
		size:  opts.Size,
		buf:   make([]byte, 0, opts.Size),
		spare: make([]byte, 0, opts.Size),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	ticks := opts.Ticks
	var ticker *time.Ticker
	if ticks == nil {
		ticker = time.NewTicker(opts.Interval)
		ticks = ticker.C
	}
	go func() {
		defer close(w.done)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-w.stop:
				return
			case <-ticks:
				w.Flush() // an error is the next Flush's or Close's caller's to see too
			}
		}
	}()
	return w
}

// Write buffers p, writing what was buffered first when p does not fit. After Close it
// writes p at once.
func (w *Writer) Write(p []byte) (int, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			w.flushMu.Lock() // after a Flush in progress, whose lines came first
			defer w.flushMu.Unlock()
			return w.out.Write(p)
		}
		if len(w.buf)+len(p) <= w.size {
			w.buf = append(w.buf, p...)
			w.mu.Unlock()
			return len(p), nil
		}
		empty := len(w.buf) == 0
		w.mu.Unlock()
		if empty { // longer than the buffer: on its own, after what is being written
			return w.writeAlone(p)
		}
		if err := w.Flush(); err != nil {
			return 0, err
		}
		// Another writer may have filled the buffer since: try again.
	}
}

// writeAlone writes p, which does not fit the buffer, after what was buffered before it.
func (w *Writer) writeAlone(p []byte) (int, error) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushLocked(); err != nil {
		return 0, err
	}
	return w.out.Write(p)
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	return w.flushLocked()
}

// flushLocked writes the buffer, with flushMu held.
func (w *Writer) flushLocked() error {
	w.mu.Lock()
	b := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	w.spare = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := w.out.Write(b)
	return err
}

// Close stops the background flush and writes what is buffered; later writes go straight
// to the underlying writer, so a line logged after Close (by a deferred shutdown step) is
// not lost. It does not close the underlying writer.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.flushMu.Lock()
		defer w.flushMu.Unlock()
		w.mu.Lock() // the last lines taken and the door shut at once: none is left behind
		b := w.buf
		w.buf, w.closed = nil, true
		w.mu.Unlock()
		if len(b) > 0 {
			_, w.closeErr = w.out.Write(b)
		}
	})
	return w.closeErr
}

// Handler wraps h, which writes to w, so that a record at level or above is written at once
// (w is flushed after h handles it), with every line buffered before it.
func Handler(h slog.Handler, w *Writer, level slog.Leveler) slog.Handler {
	return handler{h, w, level}
}

type handler struct {
	slog.Handler
	w     *Writer
	level slog.Leveler
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= h.level.Level() {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs), h.w, h.level}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h.Handler.WithGroup(name), h.w, h.level}
}
