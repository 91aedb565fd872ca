package stripetest

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the Fake's endpoints. Each runs its checks, then takes f.mu and acts.

// paymentIntent is a PaymentIntent with what only its JSON shows.
type paymentIntent struct {
	PaymentIntent
	clientSecret  string
	captureMethod string
	latestCharge  string
	lastError     map[string]any // last_payment_error, after a decline
}

// decline is how Stripe declines one of its test payment methods.
type decline struct{ code, declineCode, message string }

// declines are keyed by what follows "chargeDeclined" in the test payment method's name:
// pm_card_chargeDeclined, pm_card_visa_chargeDeclined (generic), and
// pm_card_[visa_]chargeDeclinedInsufficientFunds and so on.
var declines = map[string]decline{
	"":                  {"card_declined", "generic_decline", "Your card was declined."},
	"InsufficientFunds": {"card_declined", "insufficient_funds", "Your card has insufficient funds."},
	"LostCard":          {"card_declined", "lost_card", "Your card was declined."},
	"StolenCard":        {"card_declined", "stolen_card", "Your card was declined."},
	"ExpiredCard":       {"expired_card", "expired_card", "Your card has expired."},
	"IncorrectCvc":      {"incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."},
	"ProcessingError":   {"processing_error", "processing_error", "An error occurred while processing your card. Try again in a little bit."},
}

func declineFor(pm string) (decline, bool) {
	rest, ok := strings.CutPrefix(pm, "pm_card_")
	if !ok {
		return decline{}, false
	}
	reason, ok := strings.CutPrefix(strings.TrimPrefix(rest, "visa_"), "chargeDeclined")
	if !ok {
		return decline{}, false
	}
	d, ok := declines[reason]
	return d, ok
}

// createPaymentIntent creates a PaymentIntent. Its status is requires_payment_method
// without a payment_method, requires_confirmation with one but without confirm=true, and
// when confirmed succeeded (requires_capture with capture_method=manual). A confirmed
// test payment method that declines (see declines) answers 402 card_error with the
// PaymentIntent, now requires_payment_method with a last_payment_error, in the error, as
// Stripe does: the PaymentIntent is created all the same.
//
// Any customer and payment_method is accepted (Stripe checks they exist, and turns a test
// token like pm_card_visa into a new pm_ id); parameters the fake does not know are
// ignored.
func (f *Fake) createPaymentIntent(form url.Values, key string) reply {
	amount, bad := positiveInt(form, "amount", true)
	if bad != nil {
		return *bad
	}
	currency := form.Get("currency")
	if currency == "" {
		return missingParam("currency")
	}
	if !currencyCode.MatchString(currency) {
		return errReply(http.StatusBadRequest, "invalid_request_error", "", "currency", "Invalid currency: "+currency+".")
	}
	pm, confirm := form.Get("payment_method"), form.Get("confirm") == "true"
	if confirm && pm == "" {
		return errReply(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "",
			"You cannot confirm this PaymentIntent because it's missing a payment method.")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	p := &paymentIntent{PaymentIntent: PaymentIntent{
		ID:             newID("pi_", 24),
		Amount:         amount,
		Currency:       currency,
		Customer:       form.Get("customer"),
		PaymentMethod:  pm,
		Description:    form.Get("description"),
		Metadata:       subMap(form, "metadata"),
		IdempotencyKey: key,
		Created:        f.Now(),
	}, captureMethod: "automatic"}
	p.clientSecret = p.ID + "_secret_" + newID("", 25)
	if form.Get("capture_method") == "manual" {
		p.captureMethod = "manual"
	}
	d, declined := declineFor(pm)
	switch {
	case pm == "":
		p.Status = "requires_payment_method"
	case !confirm:
		p.Status = "requires_confirmation"
	case declined:
		p.Status = "requires_payment_method"
		p.latestCharge = newID("ch_", 24)
		p.lastError = map[string]any{
			"type": "card_error", "code": d.code, "decline_code": d.declineCode, "message": d.message,
			"doc_url": "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(d.code, "_", "-"),
			"charge":  p.latestCharge, "payment_method": paymentMethodObject(pm),
		}
	case p.captureMethod == "manual":
		p.Status = "requires_capture"
		p.latestCharge = newID("ch_", 24)
	default:
		p.Status = "succeeded"
		p.latestCharge = newID("ch_", 24)
	}
	f.intents = append(f.intents, p)
	f.intentByID[p.ID] = p
	f.creates++

	rep := jsonReply(http.StatusOK, p.object())
	if p.lastError != nil {
		e := maps.Clone(p.lastError)
		e["payment_intent"] = p.object()
		rep = jsonReply(http.StatusPaymentRequired, map[string]any{"error": e})
	}
	rep.store, rep.createdPI = true, true
	return rep
}

// object is the PaymentIntent's JSON, with the fields our code and stripe-go read.
func (p *paymentIntent) object() map[string]any {
	var received, capturable int64
	switch p.Status {
	case "succeeded":
		received = p.Amount
	case "requires_capture":
		capturable = p.Amount
	}
	pm := nullable(p.PaymentMethod)
	if p.lastError != nil {
		pm = nil // Stripe detaches the payment method that failed
	}
	var lastError any
	if p.lastError != nil {
		lastError = p.lastError
	}
	return map[string]any{
		"id": p.ID, "object": "payment_intent",
		"amount": p.Amount, "amount_capturable": capturable, "amount_received": received,
		"currency": p.Currency, "status": p.Status, "client_secret": p.clientSecret,
		"customer": nullable(p.Customer), "description": nullable(p.Description),
		"metadata": p.Metadata, "payment_method": pm, "payment_method_types": []string{"card"},
		"capture_method": p.captureMethod, "confirmation_method": "automatic",
		"latest_charge": nullable(p.latestCharge), "last_payment_error": lastError,
		"created": p.Created.Unix(), "livemode": false,
	}
}

func paymentMethodObject(id string) map[string]any {
	return map[string]any{"id": id, "object": "payment_method", "type": "card"}
}

func (f *Fake) getPaymentIntent(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	p := f.intentByID[r.PathValue("id")]
	rep := noSuch("payment_intent", "id", r.PathValue("id"))
	if p != nil {
		rep = jsonReply(http.StatusOK, p.object())
	}
	f.mu.Unlock()
	writeGet(w, rep)
}

var (
	currencyCode   = regexp.MustCompile(`^[a-z]{3}$`)
	metadataClause = regexp.MustCompile(`^metadata\[['"](.+)['"]\]:['"](.*)['"]$`)
	fieldClause    = regexp.MustCompile(`^(status|customer|currency):['"](.*)['"]$`)
)

// searchPaymentIntents answers Stripe's search query language, the part of it needed to
// find a PaymentIntent by our ids: exact matches on metadata['key'], status, customer and
// currency, joined by AND. Results come newest first, all on one page (limit and page are
// ignored). PaymentIntents younger than SearchLag are not found yet.
func (f *Fake) searchPaymentIntents(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query().Get("query")
	if query == "" {
		writeGet(w, missingParam("query"))
		return
	}
	var match []func(*paymentIntent) bool
	for _, clause := range strings.Split(query, " AND ") {
		clause = strings.TrimSpace(clause)
		if m := metadataClause.FindStringSubmatch(clause); m != nil {
			match = append(match, func(p *paymentIntent) bool {
				v, ok := p.Metadata[m[1]]
				return ok && v == m[2]
			})
		} else if m := fieldClause.FindStringSubmatch(clause); m != nil {
			match = append(match, func(p *paymentIntent) bool {
				return map[string]string{"status": p.Status, "customer": p.Customer, "currency": p.Currency}[m[1]] == m[2]
			})
		} else {
			writeGet(w, errReply(http.StatusBadRequest, "invalid_request_error", "", "query",
				"stripetest.Fake cannot search by "+clause+" (it knows metadata['k'], status, customer and currency, joined by AND)."))
			return
		}
	}

	f.mu.Lock()
	visibleBefore := f.Now().Add(-f.SearchLag)
	data := []any{}
	for _, p := range slices.Backward(f.intents) {
		if p.Created.After(visibleBefore) {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && m(p)
		}
		if ok {
			data = append(data, p.object())
		}
	}
	f.mu.Unlock()
	writeGet(w, jsonReply(http.StatusOK, map[string]any{
		"object": "search_result", "data": data, "has_more": false, "next_page": nil,
		"url": "/v1/payment_intents/search",
	}))
}

type refund struct{ Refund }

// createRefund refunds a succeeded PaymentIntent by payment_intent; without amount, all
// that is left. It never refunds more than the amount minus what was refunded already:
// nothing left answers 400 charge_already_refunded, asking for more than is left 400
// amount_too_large (param amount). A PaymentIntent that has not succeeded answers 400.
func (f *Fake) createRefund(form url.Values, key string) reply {
	id := form.Get("payment_intent")
	if id == "" {
		return errReply(http.StatusBadRequest, "invalid_request_error", "", "",
			"One of the following params should be provided for this request: payment_intent or charge (stripetest.Fake takes payment_intent).")
	}
	amount, bad := positiveInt(form, "amount", false)
	if bad != nil {
		return *bad
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.intentByID[id]
	if p == nil {
		return noSuch("payment_intent", "payment_intent", id)
	}
	if p.Status != "succeeded" {
		return errReply(http.StatusBadRequest, "invalid_request_error", "", "payment_intent",
			fmt.Sprintf("This PaymentIntent (%s) does not have a successful charge to refund.", id))
	}
	left := p.Amount - p.AmountRefunded
	if left == 0 {
		return errReply(http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "",
			fmt.Sprintf("Charge %s has already been refunded.", p.latestCharge))
	}
	if amount == 0 {
		amount = left
	}
	if amount > left {
		return errReply(http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount",
			fmt.Sprintf("Refund amount (%d %s) is greater than unrefunded amount on charge (%d %s).", amount, p.Currency, left, p.Currency))
	}
	p.AmountRefunded += amount
	re := &refund{Refund{
		ID: newID("re_", 24), PaymentIntent: id, Amount: amount, Currency: p.Currency, Status: "succeeded",
		Reason: form.Get("reason"), Metadata: subMap(form, "metadata"), IdempotencyKey: key, Created: f.Now(),
	}}
	f.refunds = append(f.refunds, re)
	rep := jsonReply(http.StatusOK, re.object(p.latestCharge))
	rep.store = true
	return rep
}

func (re *refund) object(charge string) map[string]any {
	return map[string]any{
		"id": re.ID, "object": "refund", "amount": re.Amount, "currency": re.Currency,
		"payment_intent": re.PaymentIntent, "charge": nullable(charge), "status": re.Status,
		"reason": nullable(re.Reason), "metadata": re.Metadata, "created": re.Created.Unix(),
	}
}

func (f *Fake) getRefund(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	rep := noSuch("refund", "id", r.PathValue("id"))
	for _, re := range f.refunds {
		if re.ID == r.PathValue("id") {
			rep = jsonReply(http.StatusOK, re.object(f.intentByID[re.PaymentIntent].latestCharge))
		}
	}
	f.mu.Unlock()
	writeGet(w, rep)
}

// createMeterEvent records a billing meter event. An identifier accepted in the last
// MeterIdentifierWindow is refused the way Stripe refuses it: 400 invalid_request_error,
// no code, message "An event already exists with identifier <id>.", header
// Stripe-Should-Retry: false. (Stripe documents only that it enforces uniqueness for at
// least 24 hours; the answer is as integrators report it.) That is independent of the
// Idempotency-Key: the same key with the same parameters replays the first answer, 200.
//
// The timestamp must be within Stripe's documented window (35 days back, 5 minutes
// ahead); the fake refuses others with a 400 so that a timestamp in milliseconds fails in
// tests. The payload is not checked against a meter: Stripe does that asynchronously.
func (f *Fake) createMeterEvent(form url.Values, key string) reply {
	name := form.Get("event_name")
	if name == "" {
		return missingParam("event_name")
	}
	payload := subMap(form, "payload")
	if len(payload) == 0 {
		return missingParam("payload")
	}
	var ts int64
	if s := form.Get("timestamp"); s != "" {
		var err error
		if ts, err = strconv.ParseInt(s, 10, 64); err != nil {
			return errReply(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "timestamp", "Invalid integer: "+s)
		}
	}
	identifier := form.Get("identifier")
	if identifier == "" {
		identifier = newID("", 24)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	at := now
	if ts != 0 {
		at = time.Unix(ts, 0)
	}
	if at.Before(now.AddDate(0, 0, -35)) || at.After(now.Add(5*time.Minute)) {
		return errReply(http.StatusBadRequest, "invalid_request_error", "", "timestamp",
			fmt.Sprintf("Timestamp %d must be within the past 35 days and at most 5 minutes in the future (seconds since the epoch).", at.Unix()))
	}
	if seen, ok := f.eventSeen[identifier]; ok && now.Before(seen.Add(f.MeterIdentifierWindow)) {
		rep := errReply(http.StatusBadRequest, "invalid_request_error", "", "",
			fmt.Sprintf("An event already exists with identifier %s.", identifier))
		rep.header = http.Header{"Stripe-Should-Retry": {"false"}}
		return rep
	}
	f.eventSeen[identifier] = now
	f.events = append(f.events, MeterEvent{
		Identifier: identifier, EventName: name, Customer: payload["stripe_customer_id"], Value: payload["value"],
		Payload: payload, Timestamp: at, IdempotencyKey: key,
	})
	rep := jsonReply(http.StatusOK, map[string]any{
		"object": "billing.meter_event", "event_name": name, "identifier": identifier, "payload": payload,
		"timestamp": at.Unix(), "created": now.Unix(), "livemode": false,
	})
	rep.store = true
	return rep
}

type customer struct {
	Customer
	created time.Time
}

// createCustomer creates a customer from email, name, description and metadata.
func (f *Fake) createCustomer(form url.Values, key string) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &customer{Customer{
		ID: newID("cus_", 14), Email: form.Get("email"), Name: form.Get("name"), Description: form.Get("description"),
		Metadata: subMap(form, "metadata"), IdempotencyKey: key,
	}, f.Now()}
	f.customers = append(f.customers, c)
	f.customerID[c.ID] = c
	rep := jsonReply(http.StatusOK, c.object())
	rep.store = true
	return rep
}

func (c *customer) object() map[string]any {
	return map[string]any{
		"id": c.ID, "object": "customer", "email": nullable(c.Email), "name": nullable(c.Name),
		"description": nullable(c.Description), "metadata": c.Metadata, "created": c.created.Unix(), "livemode": false,
	}
}

func (f *Fake) getCustomer(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	rep := noSuch("customer", "id", r.PathValue("id"))
	if c := f.customerID[r.PathValue("id")]; c != nil {
		rep = jsonReply(http.StatusOK, c.object())
	}
	f.mu.Unlock()
	writeGet(w, rep)
}

// writeGet writes the answer to a GET, which has no idempotency layer.
func writeGet(w http.ResponseWriter, rep reply) {
	w.Header().Set("Request-Id", newID("req_", 14))
	writeReply(w, rep)
}

// positiveInt reads an integer parameter that must be 1 or more; 0 when absent and not
// required.
func positiveInt(form url.Values, name string, required bool) (int64, *reply) {
	s := form.Get(name)
	if s == "" {
		if required {
			rep := missingParam(name)
			return 0, &rep
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		rep := errReply(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", name, "Invalid integer: "+s)
		return 0, &rep
	}
	if n < 1 {
		rep := errReply(http.StatusBadRequest, "invalid_request_error", "", name, "This value must be greater than or equal to 1.")
		return 0, &rep
	}
	return n, nil
}
