// Package mailtest runs Mailpit, a real SMTP server with an HTTP API, for tests. Mailpit is
// built from its own module, tools/mailpit (so its dependencies never move the service's),
// once per go.sum: the binary is kept in the temporary directory, and the go build cache
// makes a rebuild after a cleanup quick.
package mailtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/proctest"
)

var build struct {
	once sync.Once
	bin  string
	err  error
}

// binary answers the path of the Mailpit binary, building it on first use.
func binary() (string, error) {
	build.once.Do(func() { build.bin, build.err = buildMailpit() })
	return build.bin, build.err
}

func buildMailpit() (string, error) {
	dir, err := toolsDir()
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(sum)
	bin := filepath.Join(os.TempDir(), "saasbase-mailpit-"+hex.EncodeToString(h[:8]), "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages start at once: one builds, the others wait for it.
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// Built under a name of its own, then renamed, so that no one runs a half-written binary.
	tmp := fmt.Sprintf("%s.%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/axllent/mailpit")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build mailpit in %s: %w\n%s", dir, err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// toolsDir finds tools/mailpit above this source file's package directory.
func toolsDir() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	for dir := filepath.Dir(file); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "tools", "mailpit")
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mailtest: tools/mailpit/go.mod not found above " + file)
}

// Mailpit is one running server, on free loopback ports.
type Mailpit struct {
	SMTPAddr string // host:port
	APIURL   string // http://host:port
	cmd      *exec.Cmd
	exited   chan struct{}
	t        testing.TB
}

// Start runs a Mailpit of the test's own, stopped when the test ends. Extra flags are
// passed on (TLS certificates, for example).
func Start(t testing.TB, flags ...string) *Mailpit {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 { // a port picked free may be taken before Mailpit binds it: pick again
		m, err := start(t, bin, flags)
		if err == nil {
			return m
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func start(t testing.TB, bin string, flags []string) (*Mailpit, error) {
	ports := proctest.FreePorts(t, 2)
	smtpPort, httpPort := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
	m := &Mailpit{
		SMTPAddr: "127.0.0.1:" + smtpPort,
		APIURL:   "http://127.0.0.1:" + httpPort,
		exited:   make(chan struct{}),
		t:        t,
	}
	args := append([]string{
		"--smtp", m.SMTPAddr, "--listen", m.APIURL[len("http://"):],
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--smtp-disable-rdns", "--disable-version-check", "--quiet",
	}, flags...)
	m.cmd = exec.Command(bin, args...)
	var stderr strings.Builder
	m.cmd.Stderr, m.cmd.Stdout = &stderr, &stderr
	m.cmd.SysProcAttr = dieWithParent()
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(m.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-m.exited:
			return nil, fmt.Errorf("mailpit exited during start: %s", stderr.String())
		default:
		}
		if resp, err := http.Get(m.APIURL + "/api/v1/messages"); err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", m.SMTPAddr); err == nil {
				c.Close()
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("mailpit did not answer within 20s: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server.
func (m *Mailpit) Stop() {
	select {
	case <-m.exited:
	default:
		m.cmd.Process.Kill()
		<-m.exited
	}
}

// Message is a message as Mailpit's API shows it.
type Message struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	Subject   string    `json:"Subject"`
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Text      string    `json:"Text"`
	HTML      string    `json:"HTML"`
}

// Address is a mailbox.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Messages answers every message received so far, to anyone, each in full (text and HTML),
// oldest first.
func (m *Mailpit) Messages() []Message {
	m.t.Helper()
	var list struct {
		Messages []Message `json:"messages"`
	}
	m.get("/api/v1/messages?limit=1000", &list)
	out := make([]Message, len(list.Messages))
	for i, s := range list.Messages {
		m.get("/api/v1/message/"+url.PathEscape(s.ID), &out[len(out)-1-i])
	}
	return out
}

// To answers the messages received for addr, oldest first.
func (m *Mailpit) To(addr string) []Message {
	m.t.Helper()
	var out []Message
	for _, msg := range m.Messages() {
		for _, a := range msg.To {
			if strings.EqualFold(a.Address, addr) {
				out = append(out, msg)
			}
		}
	}
	return out
}

// WaitFor polls until at least n messages for addr arrived, and answers them; it fails the
// test after 20 seconds.
func (m *Mailpit) WaitFor(addr string, n int) []Message {
	m.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := m.To(addr)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mailpit: %d messages for %s after 20s, want %d", len(got), addr, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *Mailpit) get(path string, into any) {
	m.t.Helper()
	resp, err := http.Get(m.APIURL + path)
	if err != nil {
		m.t.Fatalf("mailpit %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		m.t.Fatalf("mailpit %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		m.t.Fatalf("mailpit %s: %v", path, err)
	}
}
