package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// TestMain lets the test binary be the bare server that spawnBare starts from it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == bareCommand {
		os.Exit(serveBare(context.Background(), os.Args[2:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBareServerProcess: the bare server runs as a child process that answers on the origin
// it reports, and ends when its parent closes it.
func TestBareServerProcess(t *testing.T) {
	ctx := context.Background()
	var stderr strings.Builder
	b, err := spawnBare(ctx, pgtest.ServerURL(), 2, &stderr)
	if err != nil {
		t.Fatalf("spawnBare: %v\n%s", err, stderr.String())
	}
	if b.pid() == os.Getpid() {
		t.Fatal("the bare server runs in this process, want a child")
	}
	// The test database has no projects table: the handler's 500 proves the query ran there.
	resp, err := http.Get(b.origin + "/projects/" + uuid.NewString() + "/" + uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("GET a project on a database without projects: %d, want 500", resp.StatusCode)
	}

	done := make(chan struct{})
	go func() {
		b.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the bare server did not end within 10s of close")
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the bare server exited %d, want 0\n%s", code, stderr.String())
	}
}

// TestBareServerThatCannotStart: a database out of reach is an error of spawnBare, with the
// child's reason on stderr, and no child left behind.
func TestBareServerThatCannotStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stderr strings.Builder
	b, err := spawnBare(context.Background(), "postgres://postgres@"+addr+"/x?connect_timeout=2", 0, &stderr)
	if err == nil {
		b.close()
		t.Fatal("spawnBare on a refused database: no error")
	}
	if !strings.Contains(stderr.String(), "load bare:") {
		t.Errorf("stderr does not give the child's reason: %q", stderr.String())
	}
}
