package stripetest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake is a stateful fake of the Stripe API for exactly-once, retry and decline tests:
// an httptest.Server that speaks the subset of the API our billing code uses, the way
// stripe-go sends it (form-encoded), and answers the way Stripe does:
//
//	POST /v1/payment_intents                   create (and confirm, and decline)
//	GET  /v1/payment_intents/{id}              retrieve
//	GET  /v1/payment_intents/search?query=...  search: metadata['k']:'v', status:, customer:, currency:, joined by AND
//	POST /v1/refunds                           refund a succeeded PaymentIntent, capped at what is left
//	GET  /v1/refunds/{id}
//	POST /v1/billing/meter_events              record usage; identifiers are unique for 24 hours
//	POST /v1/customers, GET /v1/customers/{id}
//
// Every POST goes through Stripe's idempotency layer: a repeated Idempotency-Key with the
// same path and parameters answers the first status and body again (header
// Idempotent-Replayed: true) and does nothing; with other parameters or on another path
// it answers 400 idempotency_error; while the first request runs, 409
// idempotency_key_in_use. Keys are forgotten after IdempotencyRetention. Requests need an
// "Authorization: Bearer sk_test_..." header, or get a 401.
//
// Set the exported fields between requests, not during one; to move time, make Now read
// a clock the test controls. The methods are safe for concurrent use.
type Fake struct {
	// URL is the base URL of the fake, for stripe.BackendConfig.URL.
	URL string

	// Now is the fake's clock: creation times, key retention, meter identifier window
	// and search lag. Default time.Now.
	Now func() time.Time
	// IdempotencyRetention is how long an idempotency key is remembered. Stripe keeps
	// keys for at least 24 hours (the default).
	IdempotencyRetention time.Duration
	// MeterIdentifierWindow is how long a meter event identifier is unique. Stripe
	// enforces uniqueness "within a rolling period of at least 24 hours" (the default).
	MeterIdentifierWindow time.Duration
	// SearchLag hides PaymentIntents younger than this from search. Stripe's search is
	// eventually consistent (new objects can take a minute to show up); the default, 0,
	// shows them at once.
	SearchLag time.Duration

	srv *httptest.Server
	mux *http.ServeMux

	mu          sync.Mutex
	mode        Mode
	failNext    int
	failStatus  int
	afterCreate func()

	requests map[string]int // by path, every request that arrived
	versions []string       // distinct Stripe-Version headers, in order of first sight
	piKeys   []string       // Idempotency-Key of every POST /v1/payment_intents
	keys     map[string]*idemEntry

	intents    []*paymentIntent
	intentByID map[string]*paymentIntent
	creates    int
	refunds    []*refund
	events     []MeterEvent
	eventSeen  map[string]time.Time // meter event identifier → when it was accepted
	customers  []*customer
	customerID map[string]*customer
}

// Mode is how the fake answers, for outage tests.
type Mode int

const (
	// ModeUp answers normally.
	ModeUp Mode = iota
	// ModeRefuse reads each request and closes the connection without an answer: the
	// client sees an error from the transport (EOF), not a Stripe error, and cannot know
	// whether Stripe acted. Nothing is acted on.
	//
	// Beware: net/http resends a request that has an Idempotency-Key header (stripe-go
	// always sets one on POST) once by itself when a reused keep-alive connection is
	// closed without an answer. So one client call can arrive twice; count with care.
	ModeRefuse
	// Mode503 answers every request 503 with an api_error body.
	Mode503
)

// NewFake starts a Fake, closed when the test ends.
func NewFake(t testing.TB) *Fake {
	f := &Fake{
		Now:                   time.Now,
		IdempotencyRetention:  24 * time.Hour,
		MeterIdentifierWindow: 24 * time.Hour,
		mux:                   http.NewServeMux(),
		requests:              map[string]int{},
		keys:                  map[string]*idemEntry{},
		intentByID:            map[string]*paymentIntent{},
		eventSeen:             map[string]time.Time{},
		customerID:            map[string]*customer{},
	}
	f.mux.HandleFunc("POST /v1/payment_intents", f.post(f.createPaymentIntent))
	f.mux.HandleFunc("GET /v1/payment_intents/search", f.searchPaymentIntents)
	f.mux.HandleFunc("GET /v1/payment_intents/{id}", f.getPaymentIntent)
	f.mux.HandleFunc("POST /v1/refunds", f.post(f.createRefund))
	f.mux.HandleFunc("GET /v1/refunds/{id}", f.getRefund)
	f.mux.HandleFunc("POST /v1/billing/meter_events", f.post(f.createMeterEvent))
	f.mux.HandleFunc("POST /v1/customers", f.post(f.createCustomer))
	f.mux.HandleFunc("GET /v1/customers/{id}", f.getCustomer)
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, errReply(http.StatusNotFound, "invalid_request_error", "", "",
			fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path)))
	})
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// SetMode switches between answering, hanging up and answering 503.
func (f *Fake) SetMode(m Mode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

// SetDown(true) is SetMode(ModeRefuse), SetDown(false) is SetMode(ModeUp).
func (f *Fake) SetDown(down bool) {
	if down {
		f.SetMode(ModeRefuse)
	} else {
		f.SetMode(ModeUp)
	}
}

// FailNext answers the next n requests (in ModeUp) with status and a Stripe error body,
// without acting on them: as if a proxy or Stripe's edge failed before the API ran, so
// nothing is stored under their idempotency keys either.
func (f *Fake) FailNext(n, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext, f.failStatus = n, status
}

// AfterCreate sets fn (nil: none) to run after a PaymentIntent is created, declined ones
// included, and before the answer is written: the PaymentIntent exists and its answer is
// stored under the idempotency key, as at Stripe, but the client has heard nothing yet.
// fn may call the Fake's methods; it runs on the request's goroutine, so the client
// waits for it, and it must return before the test ends (the server's Close waits too).
func (f *Fake) AfterCreate(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterCreate = fn
}

// Creates is how many PaymentIntents were created, declined ones included; idempotent
// replays and refused requests do not count.
func (f *Fake) Creates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

// Requests is how many requests arrived for path ("/v1/payment_intents"), whatever
// became of them: replays, failures and refusals included.
func (f *Fake) Requests(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

// IdempotencyKeys are the Idempotency-Key headers of the POST /v1/payment_intents
// requests that arrived, in order, one per request ("" when absent), replays and failed
// attempts included: a retry that reused its key shows up twice.
func (f *Fake) IdempotencyKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.piKeys)
}

// StripeVersions are the distinct Stripe-Version headers received, in order of first
// sight ("" for requests without one).
func (f *Fake) StripeVersions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.versions)
}

// PaymentIntent is a PaymentIntent as the fake holds it.
type PaymentIntent struct {
	ID             string
	Amount         int64
	AmountRefunded int64
	Currency       string
	Status         string // requires_payment_method, requires_confirmation, requires_capture or succeeded
	Customer       string
	PaymentMethod  string // as sent, also when declined (Stripe's object then has none)
	Description    string
	Metadata       map[string]string
	IdempotencyKey string // of the request that created it
	Created        time.Time
}

// PaymentIntents are the PaymentIntents created, in order.
func (f *Fake) PaymentIntents() []PaymentIntent {
	return snapshot(f, &f.intents, func(p *paymentIntent) PaymentIntent { return p.PaymentIntent.clone() })
}

func (p PaymentIntent) clone() PaymentIntent {
	p.Metadata = maps.Clone(p.Metadata)
	return p
}

// Refund is a refund as the fake holds it.
type Refund struct {
	ID             string
	PaymentIntent  string
	Amount         int64
	Currency       string
	Status         string // always succeeded
	Reason         string
	Metadata       map[string]string
	IdempotencyKey string
	Created        time.Time
}

// Refunds are the refunds made, in order.
func (f *Fake) Refunds() []Refund {
	return snapshot(f, &f.refunds, func(r *refund) Refund { return r.Refund.clone() })
}

func (r Refund) clone() Refund {
	r.Metadata = maps.Clone(r.Metadata)
	return r
}

// MeterEvent is an accepted billing meter event.
type MeterEvent struct {
	Identifier     string // as sent, or generated like Stripe does when absent
	EventName      string
	Customer       string // payload[stripe_customer_id]
	Value          string // payload[value], a string as in Stripe's API
	Payload        map[string]string
	Timestamp      time.Time // timestamp, or the time of the request when absent
	IdempotencyKey string
}

// MeterEvents are the accepted meter events, in order.
func (f *Fake) MeterEvents() []MeterEvent {
	return snapshot(f, &f.events, MeterEvent.clone)
}

func (e MeterEvent) clone() MeterEvent {
	e.Payload = maps.Clone(e.Payload)
	return e
}

// Customer is a customer as the fake holds it.
type Customer struct {
	ID, Email, Name, Description string
	Metadata                     map[string]string
	IdempotencyKey               string
}

// Customers are the customers created, in order.
func (f *Fake) Customers() []Customer {
	return snapshot(f, &f.customers, func(c *customer) Customer { return c.Customer.clone() })
}

func (c Customer) clone() Customer {
	c.Metadata = maps.Clone(c.Metadata)
	return c
}

// snapshot copies the records of one kind, which f.mu guards, through clone: the caller
// gets values it may keep and change while the fake goes on serving. clone must copy
// every map a record holds, for the fake keeps writing to its own. records is a pointer so
// that the slice itself is read under the lock too.
func snapshot[R, T any](f *Fake, records *[]R, clone func(R) T) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]T, len(*records))
	for i, r := range *records {
		out[i] = clone(r)
	}
	return out
}

// serve counts the request, applies the fault controls and the API key check, and hands
// the request to the API.
func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.URL.Path]++
	if v := r.Header.Get("Stripe-Version"); !slices.Contains(f.versions, v) {
		f.versions = append(f.versions, v)
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents" {
		f.piKeys = append(f.piKeys, r.Header.Get("Idempotency-Key"))
	}
	mode, failStatus := f.mode, 0
	if mode == ModeUp && f.failNext > 0 {
		f.failNext--
		failStatus = f.failStatus
	}
	f.mu.Unlock()

	switch {
	case mode == ModeRefuse:
		hangUp(w, r)
	case mode == Mode503:
		writeReply(w, injectedFailure(http.StatusServiceUnavailable))
	case failStatus != 0:
		writeReply(w, injectedFailure(failStatus))
	case !authorized(r):
		writeReply(w, unauthorized(r))
	default:
		f.mux.ServeHTTP(w, r)
	}
}

// hangUp reads the request and closes the connection without a word. Reading first makes
// the client see a clean EOF rather than, at times, a reset.
func hangUp(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // also ends the connection without an answer
	}
	conn.Close()
}

func injectedFailure(status int) reply {
	switch {
	case status == http.StatusTooManyRequests:
		return errReply(status, "invalid_request_error", "rate_limit", "", "Request rate limit exceeded. (injected by stripetest.Fake)")
	case status >= 500:
		return errReply(status, "api_error", "", "", fmt.Sprintf("%d %s (injected by stripetest.Fake)", status, http.StatusText(status)))
	default:
		return errReply(status, "invalid_request_error", "", "", fmt.Sprintf("%d %s (injected by stripetest.Fake)", status, http.StatusText(status)))
	}
}

func authorized(r *http.Request) bool {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && strings.HasPrefix(key, "sk_test_") && len(key) > len("sk_test_")
}

func unauthorized(r *http.Request) reply {
	if r.Header.Get("Authorization") == "" {
		return errReply(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
	}
	return errReply(http.StatusUnauthorized, "invalid_request_error", "", "", "Invalid API Key provided (stripetest.Fake takes Bearer sk_test_...).")
}

// idemEntry is what Stripe's idempotency layer remembers of a key.
type idemEntry struct {
	path      string
	params    string // the form, canonically encoded
	at        time.Time
	inFlight  bool
	requestID string
	reply     reply
}

// reply is an answer, built under f.mu and written after.
type reply struct {
	status int
	body   []byte
	header http.Header // extra headers
	// store says whether the idempotency layer keeps this answer. Stripe keeps the
	// result of every request whose endpoint began executing, errors included (a 402
	// decline is replayed), but not of one refused by validation before it ran: a retry
	// with that key runs again.
	store bool
	// createdPI runs the AfterCreate hook.
	createdPI bool
}

// post wraps a POST endpoint in Stripe's idempotency layer (see Fake). The answer is
// stored under the key before the AfterCreate hook runs and the answer is written, so a
// client that gave up meanwhile gets a replay when it retries, as from Stripe.
//
// Without a key every request runs. stripe-go sends a random key on every POST when the
// caller sets none, so only raw HTTP reaches that case.
func (f *Fake) post(endpoint func(form url.Values, key string) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeReply(w, errReply(http.StatusBadRequest, "invalid_request_error", "", "", "Invalid request body: "+err.Error()))
			return
		}
		form, path := r.PostForm, r.URL.Path
		params := form.Encode() // sorted by key, so field order does not matter
		key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		requestID := newID("req_", 14)

		f.mu.Lock()
		var entry *idemEntry
		if key != "" {
			if e := f.keys[key]; e != nil && !f.Now().Before(e.at.Add(f.IdempotencyRetention)) {
				delete(f.keys, key) // expired: the key is new again
			}
			if e := f.keys[key]; e != nil {
				rep, original := reuse(e, key, path, params), e.requestID
				f.mu.Unlock()
				if rep.header.Get("Idempotent-Replayed") != "" {
					w.Header().Set("Original-Request", original)
				}
				w.Header().Set("Idempotency-Key", key)
				w.Header().Set("Request-Id", requestID)
				writeReply(w, rep)
				return
			}
			entry = &idemEntry{path: path, params: params, at: f.Now(), inFlight: true, requestID: requestID}
			f.keys[key] = entry
		}
		f.mu.Unlock()

		rep := endpoint(form, key)

		f.mu.Lock()
		if entry != nil {
			if rep.store {
				entry.inFlight, entry.reply = false, rep
			} else {
				delete(f.keys, key)
			}
		}
		hook := f.afterCreate
		f.mu.Unlock()
		if rep.createdPI && hook != nil {
			hook()
		}
		if key != "" {
			w.Header().Set("Idempotency-Key", key)
		}
		w.Header().Set("Request-Id", requestID)
		writeReply(w, rep)
	}
}

// reuse answers a request that brings a key the fake remembers.
func reuse(e *idemEntry, key, path, params string) reply {
	switch {
	case e.inFlight:
		return errReply(http.StatusConflict, "idempotency_error", "idempotency_key_in_use", "", fmt.Sprintf(
			"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): %s. Please try again later.", key))
	case e.path != path:
		return errReply(http.StatusBadRequest, "idempotency_error", "", "", fmt.Sprintf(
			"Keys for idempotent requests can only be used for the same endpoint they were first used for ('%s' vs '%s'). Try using a key other than '%s' if you meant to execute a different request.",
			path, e.path, key))
	case e.params != params:
		return errReply(http.StatusBadRequest, "idempotency_error", "", "", fmt.Sprintf(
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.",
			key))
	default:
		rep := e.reply
		rep.header = rep.header.Clone()
		if rep.header == nil {
			rep.header = http.Header{}
		}
		rep.header.Set("Idempotent-Replayed", "true")
		return rep
	}
}

func writeReply(w http.ResponseWriter, rep reply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

func jsonReply(status int, v any) reply {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own maps are marshalled
	}
	return reply{status: status, body: body}
}

// errReply is Stripe's error body: {"error": {"type", "code", "param", "message", ...}}.
func errReply(status int, typ, code, param, msg string) reply {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if param != "" {
		e["param"] = param
	}
	return jsonReply(status, map[string]any{"error": e})
}

func missingParam(name string) reply {
	return errReply(http.StatusBadRequest, "invalid_request_error", "parameter_missing", name, "Missing required param: "+name+".")
}

func noSuch(kind, param, id string) reply {
	return errReply(http.StatusNotFound, "invalid_request_error", "resource_missing", param, fmt.Sprintf("No such %s: '%s'", kind, id))
}

// subMap collects name[key]=value form fields (metadata, payload) into a map.
func subMap(form url.Values, name string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if inner, ok := strings.CutPrefix(k, name+"["); ok && strings.HasSuffix(inner, "]") && len(v) > 0 {
			m[strings.TrimSuffix(inner, "]")] = v[0]
		}
	}
	return m
}

// newID is prefix plus n random letters and digits, like Stripe's ids.
func newID(prefix string, n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// nullable is nil for "", which Stripe sends as null.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
