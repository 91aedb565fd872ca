package metering

import (
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/idempotency"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves meters, usage ingestion, usage queries and entitlements.
type Handler struct {
	Usage  *Usage
	Meters *Meters
	Quotas *Quotas
}

// Routes mounts metering: operators define meters; members send and read usage. A usage
// batch may be retried under its Idempotency-Key up to the batch's own size limit.
func (h *Handler) Routes(rs httpx.Routers, keys *idempotency.Middleware) {
	rs.Operator.Method(http.MethodPut, "/v1/admin/meters/{key}", httpx.HandlerFunc(h.PutMeter))
	rs.Member.Method(http.MethodGet, "/v1/meters", httpx.HandlerFunc(h.ListMeters))
	rs.Member.Method(http.MethodGet, "/v1/meters/{key}/usage", httpx.HandlerFunc(h.Query))
	rs.Member.With(keys.Handler(idempotency.Options{MaxBody: MaxUsageBody, Fingerprint: BindingFingerprint})).
		Method(http.MethodPost, "/v1/usage/events", httpx.HandlerFunc(h.Ingest))
	rs.Member.Method(http.MethodGet, "/v1/entitlements", httpx.HandlerFunc(h.Entitlements))
}

// usageContentTypes are the media types of the JSON, structured and batch content modes.
// Binary mode takes any: there the Content-Type is the data's.
var usageContentTypes = map[string]bool{
	"application/json":                   true,
	"application/cloudevents+json":       true,
	"application/cloudevents-batch+json": true,
}

// Ingest is POST /v1/usage/events: one CloudEvent or an array of up to 1000, in any of the
// CloudEvents HTTP binding's content modes.
func (h *Handler) Ingest(w http.ResponseWriter, r *http.Request) error {
	binary := IsBinary(r.Header)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (!binary && !usageContentTypes[mt]) {
			return errs.Field("Content-Type", "must be application/json, application/cloudevents+json or application/cloudevents-batch+json, or the data's media type in binary mode (ce-* headers)")
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxUsageBody+1))
	if err != nil {
		return err
	}
	if len(body) > MaxUsageBody {
		return errs.E(errs.TooLarge, "payload_too_large", "the request body is larger than %d bytes", MaxUsageBody)
	}
	meters, err := h.Meters.List(r.Context())
	if err != nil {
		return err
	}
	var evs []UsageEvent
	if binary {
		evs, err = ParseBinary(r.Header, body, meters, h.Usage.Clock.Now())
	} else {
		evs, err = ParseEvents(body, meters, h.Usage.Clock.Now())
	}
	if err != nil {
		return err
	}
	res, err := h.Usage.Ingest(r.Context(), auth.TenantOf(r), evs)
	if err != nil {
		return err
	}
	if res.Accepted > 0 {
		// Quota thresholds are news, not part of the ingestion: a failure here is logged.
		if err := h.Quotas.CheckQuotas(r.Context(), auth.TenantOf(r), metersOf(meters, evs)); err != nil {
			httpx.Logger(r.Context()).WarnContext(r.Context(), "quota thresholds", "error", err.Error())
		}
	}
	httpx.JSON(w, http.StatusOK, res)
	return nil
}

// ListMeters is GET /v1/meters.
func (h *Handler) ListMeters(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.Meters.List(r.Context())
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.List[Meter]{Data: ms})
	return nil
}

// PutMeter is PUT /v1/admin/meters/{key}.
func (h *Handler) PutMeter(w http.ResponseWriter, r *http.Request) error {
	var in MeterInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	m, created, err := h.Meters.Put(r.Context(), chi.URLParam(r, "key"), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.JSON(w, status, m)
	return nil
}

// Query is GET /v1/meters/{key}/usage?from=&to=&window=&tz=&group_by=.
func (h *Handler) Query(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	var f errs.Fields
	q := UsageQuery{Meter: chi.URLParam(r, "key"), Window: v.Get("window"), GroupBy: v.Get("group_by"), Loc: time.UTC}
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		t, err := time.Parse(time.RFC3339Nano, v.Get(name))
		if err != nil {
			f.Add(name, "is required, an RFC 3339 time")
		}
		*dst = t.UTC()
	}
	if tz := v.Get("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			f.Add("tz", "must be an IANA time zone such as Asia/Kolkata")
		} else {
			q.Loc = loc
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	rep, err := h.Usage.Query(r.Context(), auth.TenantOf(r), q)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, rep)
	return nil
}

// Entitlements is GET /v1/entitlements.
func (h *Handler) Entitlements(w http.ResponseWriter, r *http.Request) error {
	es, err := h.Quotas.Entitlements(r.Context(), auth.TenantOf(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"data": es})
	return nil
}

// metersOf lists the meters that events of evs feed.
func metersOf(meters []Meter, evs []UsageEvent) []string {
	types := map[string]bool{}
	for _, e := range evs {
		types[e.Type] = true
	}
	var out []string
	for _, m := range meters {
		if types[m.EventType] {
			out = append(out, m.Key)
		}
	}
	return out
}
