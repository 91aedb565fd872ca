package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saasbase/saasbase/internal/server/bare"
)

const (
	baselineRounds = 6
	baselineRound  = 2 * time.Second
	// baselineWarmUp is sent to each target, unrecorded, before the rounds: both open their
	// database and HTTP connections lazily, and the first round would pay for it.
	baselineWarmUp = time.Second
)

// bareServer serves the baseline of GET /v1/projects/{id}, package bare's handler, from a pgx
// pool as the database URL's user. The pool has pgx's defaults unless -bare-conns says
// otherwise, as the pool of BenchmarkGetProject in internal/server has, so the two agree.
type bareServer struct {
	origin string
	pool   *pgxpool.Pool
	srv    *http.Server
}

// startBare serves the baseline on a loopback port of its own.
func startBare(ctx context.Context, databaseURL string, conns int) (*bareServer, error) {
	poolCfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	if conns > 0 {
		poolCfg.MaxConns = int32(conns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return nil, err
	}
	b := &bareServer{origin: "http://" + ln.Addr().String(), pool: pool}
	b.srv = &http.Server{Handler: bare.Handler(pool), ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *bareServer) close() {
	b.srv.Close()
	b.pool.Close()
}

// bareCommand is the first argument that makes this program the bare server (serveBare).
const bareCommand = "bare"

// bareDatabaseURL is the environment variable that hands the bare server its database URL,
// kept off the command line, where ps would show a password in it.
const bareDatabaseURL = "LOAD_BARE_DATABASE_URL"

// serveBare is `load bare [-conns N]` with the database URL in LOAD_BARE_DATABASE_URL: the bare
// server as a process of its own. It prints its origin on a line to stdout and serves until
// stdin closes (its parent ended, however it ended) or it is interrupted.
func serveBare(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conns := fs.Int("conns", 0, "the pool's `size` (0: pgx's default)")
	databaseURL := getenv(bareDatabaseURL)
	if err := fs.Parse(args); err != nil || databaseURL == "" {
		fmt.Fprintln(stderr, "usage: "+bareDatabaseURL+"=URL load bare [-conns N]")
		return 2
	}
	b, err := startBare(ctx, databaseURL, *conns)
	if err != nil {
		fmt.Fprintln(stderr, "load bare:", err)
		return 1
	}
	defer b.close()
	fmt.Fprintln(stdout, b.origin)
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	}
	return 0
}

// bareProcess is the bare server running as a child process, as the service runs in one: both
// then pay the same crossings from process to process, and the CPU table can tell the bare
// server's time from the load generator's.
type bareProcess struct {
	origin string
	cmd    *exec.Cmd
	stdin  io.Closer
}

// spawnBare starts `load bare` from this program's own executable and waits for its origin.
// The child is killed if ctx ends first.
func spawnBare(ctx context.Context, databaseURL string, conns int, stderr io.Writer) (*bareProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, bareCommand, "-conns", strconv.Itoa(conns))
	cmd.Env = append(os.Environ(), bareDatabaseURL+"="+databaseURL)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errors.New("the bare server did not start (its error is above)")
	}
	return &bareProcess{origin: strings.TrimSpace(line), cmd: cmd, stdin: stdin}, nil
}

func (b *bareProcess) pid() int { return b.cmd.Process.Pid }

// close ends the child by closing its stdin, and waits for it.
func (b *bareProcess) close() {
	b.stdin.Close()
	b.cmd.Wait()
}

// comparison is the outcome of the baseline rounds.
type comparison struct {
	bare, service       summary
	ratio               float64  // service/bare, of 2xx answers a second
	bareCPU, serviceCPU cpuTimes // by process, nil where /proc cannot tell
}

// compareBaseline reads one of t's projects, from workers goroutines on keep-alive
// connections, through the bare server and through the service in alternating rounds, so
// that drift of the machine (other load, caches warming) falls on both alike. Interrupted,
// it answers ctx's error: rounds cut short compare nothing.
func compareBaseline(ctx context.Context, cfg config, bareProc *bareProcess, t *tenant, progress io.Writer) (comparison, error) {
	id := t.project(rand.New(rand.NewPCG(cfg.seed, 0)))
	bareRec, serviceRec := newRecorder(), newRecorder()
	bareClient := newClient(bareProc.origin, cfg.workers, bareRec)
	serviceClient := newClient(cfg.origin, cfg.workers, serviceRec)
	bareCall := call{route: routeBareProject, params: []string{t.id, id}}
	serviceCall := call{route: routeGetProject, params: []string{id}, as: t.session}

	hammer(ctx, bareClient.unrecorded(), bareCall, cfg.workers, baselineWarmUp)
	hammer(ctx, serviceClient.unrecorded(), serviceCall, cfg.workers, baselineWarmUp)

	var bareTime, serviceTime time.Duration
	bareCPU, serviceCPU := cpuTimes{}, cpuTimes{}
	names := map[int]string{os.Getpid(): "load", bareProc.pid(): "bare"}
	for i := range baselineRounds {
		b0, _, _ := bareRec.progress()
		s0, _, _ := serviceRec.progress()
		cpu0 := readCPU(names)
		bt := hammer(ctx, bareClient, bareCall, cfg.workers, baselineRound)
		cpu1 := readCPU(names)
		st := hammer(ctx, serviceClient, serviceCall, cfg.workers, baselineRound)
		cpu2 := readCPU(names)
		if cpu0 != nil {
			bareCPU.add(cpu0, cpu1)
			serviceCPU.add(cpu1, cpu2)
		}
		b1, _, _ := bareRec.progress()
		s1, _, _ := serviceRec.progress()
		bareTime, serviceTime = bareTime+bt, serviceTime+st
		fmt.Fprintf(progress, "baseline round %d/%d: bare %.0f req/s, service %.0f req/s\n",
			i+1, baselineRounds, float64(b1-b0)/bt.Seconds(), float64(s1-s0)/st.Seconds())
	}
	if err := ctx.Err(); err != nil {
		return comparison{}, err
	}
	c := comparison{
		bare:    bareRec.summaryOf(routeBareProject, bareTime),
		service: serviceRec.summaryOf(routeGetProject, serviceTime),
	}
	if len(serviceCPU) > 0 && serviceCPU["api"]+serviceCPU["postgres"] > 0 {
		c.bareCPU, c.serviceCPU = bareCPU, serviceCPU
	}
	c.bare.name, c.service.name = "bare chi+pgx "+string(routeBareProject), "service "+string(routeGetProject)
	// 2xx only: a 429 is cheap, and counting it would flatter the service.
	if c.bare.ok > 0 && serviceTime > 0 {
		c.ratio = (float64(c.service.ok) / serviceTime.Seconds()) / (float64(c.bare.ok) / bareTime.Seconds())
	}
	return c, nil
}

// hammer sends cl from workers goroutines, each as soon as its last was answered, for d, and
// answers how long that took, the requests in flight at the end included.
func hammer(ctx context.Context, c *client, cl call, workers int, d time.Duration) time.Duration {
	start := time.Now()
	stop, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for stop.Err() == nil {
				c.do(ctx, cl)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
