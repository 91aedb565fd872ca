package stripetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/proctest"
)

// mockStartTimeout bounds how long StartMock waits for stripe-mock to answer.
const mockStartTimeout = 20 * time.Second

// mock is the stripe-mock process of this test binary: one for all the tests of a
// package, started by the first StartMock and stopped by StopMock.
var mock struct {
	mu     sync.Mutex
	url    string
	err    error // a failed start, reported to every later StartMock rather than retried
	cmd    *exec.Cmd
	dir    string        // temporary directory for the HTTPS socket (see startMock)
	exited chan struct{} // closed when the process has exited
	stderr *proctest.Output
}

// StartMock returns the base URL (http://127.0.0.1:port) of a stripe-mock process,
// starting it on first use. All tests of the test binary share the process, so
// parallel tests are fine and nothing is registered per test: stop it from TestMain,
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		stripetest.StopMock()
//		os.Exit(code)
//	}
//
// (On Linux the process also dies with the test binary, e.g. when a test times out.)
//
// The binary is stripe-mock on PATH or in GOBIN / GOPATH/bin, where `make tools` puts
// it. The test fails if it is missing.
//
// What stripe-mock v0.203.0 does, checked against it by TestStartMock:
//   - It validates requests against Stripe's OpenAPI spec (a missing amount is a 400,
//     a request without an sk_test_ key a 401) and answers with fixtures in which the
//     scalar parameters sent are echoed: POST /v1/payment_intents amount=2000
//     currency=usd answers 200 with a new pi_ id, amount 2000, currency usd, status
//     requires_payment_method.
//   - It is stateless: every create answers a fresh random id, GET by id answers a
//     fixture carrying that id (amount 1099), search answers a fixture whatever the
//     query, metadata and meter event payloads are not echoed.
//   - It has no idempotency: the same Idempotency-Key twice creates two ids (it only
//     echoes the header back).
//   - It never declines: confirm=true with payment_method=pm_card_chargeDeclined answers
//     200, status requires_payment_method. Refunds are never capped, and a repeated
//     meter event identifier is accepted.
//   - Fixture fields are filler: last_payment_error is {"type":"idempotency_error"} on a
//     fresh PaymentIntent, canceled_at is set. Assert only on what was echoed.
//
// Use Fake for anything that needs state.
func StartMock(t testing.TB) string {
	t.Helper()
	mock.mu.Lock()
	defer mock.mu.Unlock()
	if mock.url == "" && mock.err == nil {
		mock.url, mock.err = startMock()
	}
	if mock.err != nil {
		t.Fatal(mock.err)
	}
	select {
	case <-mock.exited:
		t.Fatalf("stripe-mock exited: %s", mock.stderr)
	default:
	}
	return mock.url
}

// StopMock stops the stripe-mock process, if one was started. A later StartMock starts
// a new one.
func StopMock() {
	mock.mu.Lock()
	defer mock.mu.Unlock()
	if mock.cmd != nil {
		mock.cmd.Process.Kill() // stripe-mock holds no state worth a graceful stop
		<-mock.exited
		os.RemoveAll(mock.dir)
	}
	mock.url, mock.err, mock.cmd, mock.dir = "", nil, nil, ""
}

// startMock starts stripe-mock and waits until it answers. It runs with mock.mu held.
func startMock() (string, error) {
	bin := findMock()
	if bin == "" {
		return "", errors.New("stripe-mock not found: run `make tools`")
	}
	dir, err := os.MkdirTemp("", "stripe-mock-")
	if err != nil {
		return "", err
	}
	// -http-addr picks a free loopback port and prints it, so there is no race for a
	// port picked in advance. But -http-addr alone also starts HTTPS on :12112 on all
	// interfaces (stripe-mock's main.go forgets -http-addr when deciding whether HTTPS is
	// wanted), and a second test binary then dies on the taken port. Putting HTTPS on a
	// unix socket of our own keeps it off the network.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-unix", filepath.Join(dir, "https.sock"))
	cmd.SysProcAttr = dieWithParent()
	// A pipe of our own rather than cmd.StdoutPipe, which Wait closes under a reader.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	cmd.Stdout = stdoutW
	stderr := &proctest.Output{}
	cmd.Stderr = stderr

	// The start and the wait run on one locked OS thread: on Linux the child is killed
	// when the thread that started it exits (Pdeathsig), and Go may retire a thread that
	// is not locked.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	err = <-started
	stdoutW.Close() // the child has its copy; ours would keep the reader from seeing EOF
	if err != nil {
		stdout.Close()
		os.RemoveAll(dir)
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	mock.cmd, mock.dir, mock.exited, mock.stderr = cmd, dir, exited, stderr

	fail := func(err error) (string, error) {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(dir)
		mock.cmd, mock.dir = nil, ""
		return "", fmt.Errorf("stripe-mock: %w; its stderr: %s", err, stderr)
	}
	deadline := time.After(mockStartTimeout)
	var addr string
	select {
	case addr = <-listenAddr(stdout):
	case <-exited:
		return fail(errors.New("exited during start"))
	case <-deadline:
		return fail(fmt.Errorf("no HTTP address printed within %s", mockStartTimeout))
	}
	url := "http://" + addr
	for !mockAnswers(url) {
		select {
		case <-exited:
			return fail(errors.New("exited during start"))
		case <-deadline:
			return fail(fmt.Errorf("%s did not answer within %s", url, mockStartTimeout))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return url, nil
}

// listenAddr sends the address of the line "Listening for HTTP at address: 127.0.0.1:N",
// and then reads stdout to its end, so that stripe-mock never blocks on a full pipe.
func listenAddr(stdout io.ReadCloser) <-chan string {
	addr := make(chan string, 1)
	go func() {
		defer stdout.Close()
		const prefix = "Listening for HTTP at address: "
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), prefix); ok && len(addr) == 0 {
				addr <- strings.TrimSpace(a)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	return addr
}

// mockAnswers reports whether stripe-mock serves an authenticated list of charges.
func mockAnswers(url string) bool {
	req, err := http.NewRequest(http.MethodGet, url+"/v1/charges", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	res, err := (&http.Client{Timeout: time.Second}).Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// findMock looks where `make tools` installs: GOBIN, else the first GOPATH entry's bin.
// `go env` is asked last, because it costs a process and it only matters when GOBIN or
// GOPATH is set with `go env -w` rather than in the environment.
func findMock() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath := filepath.SplitList(os.Getenv("GOPATH")); len(gopath) > 0 && gopath[0] != "" {
		dirs = append(dirs, filepath.Join(gopath[0], "bin"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, dir := range dirs {
		if p := filepath.Join(dir, "stripe-mock"); isExecutable(p) {
			return p
		}
	}
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return ""
	}
	// One line each, the first empty when GOBIN is unset.
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2 {
		return ""
	}
	dirs = []string{lines[0]}
	if gopath := filepath.SplitList(lines[1]); len(gopath) > 0 && gopath[0] != "" {
		dirs = append(dirs, filepath.Join(gopath[0], "bin"))
	}
	for _, dir := range dirs {
		if p := filepath.Join(dir, "stripe-mock"); dir != "" && isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
