package export_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/export"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// addUsage inserts n usage events of a tenant, source src, straight into the table.
func addUsage(t testing.TB, conn *pgx.Conn, tenantID, src string, n int) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `
		INSERT INTO usage_events (tenant_id, source, id, type, subject, time, data, received_at)
		SELECT $1, $2, 'e' || g, 'tokens', 'user-' || (g % 100), now() - g * interval '1 second',
		       jsonb_build_object('n', g % 7, 'model', 'gpt'), now()
		  FROM generate_series(1, $3) g`, tenantID, src, n)
	if err != nil {
		t.Fatal(err)
	}
}

// pendingExport records an export as POST /v1/tenant/exports does, without starting it.
func pendingExport(t testing.TB, conn *pgx.Conn, tenantID string, at time.Time) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := conn.Exec(context.Background(), `INSERT INTO tenant_exports (tenant_id, id, status, requested_by, created_at)
		VALUES ($1, $2, 'pending', 'test', $3)`, tenantID, id, at); err != nil {
		t.Fatal(err)
	}
	return id
}

// archive is a downloaded export: its manifest and files.
type archive struct {
	manifest export.Manifest
	files    map[string][]byte
}

func download(t *testing.T, s *servertest.Server, token, id string) archive {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/v1/tenant/exports/"+id+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/gzip" {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("download: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	gz, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	a := archive{files: map[string][]byte{}}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(b, &a.manifest); err != nil {
				t.Fatal(err)
			}
			continue
		}
		a.files[h.Name] = b
	}
	return a
}

// TestExportLargeTenant: an export of a tenant with 200,000 usage events grows the heap by
// far less than its size (rows are streamed, never loaded), and its archive's counts and
// hashes match the database and its files; no row of another tenant is in it.
func TestExportLargeTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 rows")
	}
	s := servertest.New(t)
	ctx := context.Background()
	owner := pgtest.Owner(t)
	a, b := s.Signup(t, "exp-big"), s.Signup(t, "exp-other")
	const events = 200_000
	addUsage(t, owner, a.ID, "a-source", events)
	addUsage(t, owner, b.ID, "b-marker-source", 50)
	s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "alpha"})
	s.Create(t, b.Token, "/v1/projects", map[string]string{"name": "b-marker-project"})
	id := pendingExport(t, owner, a.ID, time.Now())

	// The heap's peak over the run, against the heap before it.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
		}
	})
	n, err := s.App.Exports.Run(ctx)
	close(done)
	wg.Wait()
	if err != nil || n != 1 {
		t.Fatalf("run: %d exports, %v", n, err)
	}
	growth := int64(peak.Load()) - int64(baseline)
	t.Logf("heap: baseline %d MiB, peak %d MiB, growth %d MiB", baseline>>20, peak.Load()>>20, growth>>20)
	if growth > 64<<20 {
		t.Errorf("the heap grew by %d MiB during the export, want < 64 MiB", growth>>20)
	}

	res := s.Get(t, a.Token, "/v1/tenant/exports/"+id)
	res.Want(t, http.StatusOK, "")
	var e export.Export
	res.Decode(t, &e)
	if e.Status != export.Done || e.SizeBytes == nil || e.ExpiresAt == nil {
		t.Fatalf("export after its run: %s", res.Body)
	}
	arc := download(t, s, a.Token, id)
	if arc.manifest.TenantID.String() != a.ID || len(arc.manifest.Files) != len(export.Resources) {
		t.Fatalf("manifest: %+v", arc.manifest)
	}
	want := map[string]int64{}
	for _, q := range []struct{ file, table string }{
		{"usage_events.ndjson", "usage_events"}, {"projects.ndjson", "projects"}, {"users.ndjson", "users"},
		{"events.ndjson", "outbox"}, {"audit_log.ndjson", "audit_log"}, {"api_keys.ndjson", "api_keys"},
	} {
		var n int64
		if err := owner.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE tenant_id = $1", q.table), a.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		want[q.file] = n
	}
	if want["usage_events.ndjson"] != events {
		t.Fatalf("%d usage events in the database", want["usage_events.ndjson"])
	}
	for _, f := range arc.manifest.Files {
		body, ok := arc.files[f.Name]
		if !ok {
			t.Errorf("%s is in the manifest but not in the archive", f.Name)
			continue
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: SHA-256 differs from the manifest's", f.Name)
		}
		lines := int64(bytes.Count(body, []byte("\n")))
		if lines != f.Rows {
			t.Errorf("%s: %d lines, manifest says %d rows", f.Name, lines, f.Rows)
		}
		if w, ok := want[f.Name]; ok && w != f.Rows {
			t.Errorf("%s: %d rows, the database has %d", f.Name, f.Rows, w)
		}
		for _, other := range []string{b.ID, "b-marker"} {
			if bytes.Contains(body, []byte(other)) {
				t.Errorf("%s holds another tenant's data (%s)", f.Name, other)
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("%s: a line is not JSON: %.100s", f.Name, sc.Bytes())
			}
		}
	}
	for _, secret := range []string{"password_hash", "secret_hash", "secret_sealed", "$argon2id"} {
		for name, body := range arc.files {
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("%s holds %s", name, secret)
			}
		}
	}
}

// TestExportStates: POST starts an export that gets done on its own; a download before
// done is 409 export_not_ready; after 7 days the export reads expired and its download is
// 410 gone; members may not export.
func TestExportStates(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC().Truncate(time.Second))
	s := servertest.NewAt(t, clk)
	owner := pgtest.Owner(t)
	a := s.Signup(t, "exp-states")
	s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "alpha"})

	_, member := s.LoginNewUser(t, a, "member")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/exports", Token: member.AccessToken}).Want(t, http.StatusForbidden, "forbidden")

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/exports", Token: a.Token})
	res.Want(t, http.StatusAccepted, "")
	var e export.Export
	res.Decode(t, &e)
	if e.Status != export.Pending || res.Header.Get("Location") != "/v1/tenant/exports/"+e.ID.String() {
		t.Fatalf("POST: %s %v", res.Body, res.Header)
	}
	servertest.Poll(t, 30*time.Second, "the export to be done", func() (bool, string) {
		r := s.Get(t, a.Token, "/v1/tenant/exports/"+e.ID.String())
		return strings.Contains(string(r.Body), `"status":"done"`), string(r.Body)
	})
	arc := download(t, s, a.Token, e.ID.String())
	if !bytes.Contains(arc.files["projects.ndjson"], []byte(`"alpha"`)) {
		t.Errorf("projects.ndjson: %s", arc.files["projects.ndjson"])
	}

	pending := pendingExport(t, owner, a.ID, clk.Now())
	s.Get(t, a.Token, "/v1/tenant/exports/"+pending+"/download").Want(t, http.StatusConflict, "export_not_ready")
	s.Get(t, a.Token, "/v1/tenant/exports/"+uuid.NewString()).Want(t, http.StatusNotFound, "not_found")

	clk.Advance(export.Lifetime)
	token := s.TokenFor(t, a)
	r := s.Get(t, token, "/v1/tenant/exports/"+e.ID.String())
	r.Decode(t, &e)
	if e.Status != export.Expired {
		t.Errorf("after 7 days: %s", r.Body)
	}
	s.Get(t, token, "/v1/tenant/exports/"+e.ID.String()+"/download").Want(t, http.StatusGone, "gone")
}
