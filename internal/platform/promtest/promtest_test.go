package promtest

import (
	"slices"
	"testing"
)

func TestMetricNamesIn(t *testing.T) {
	for expr, want := range map[string][]string{
		`up{job="saasbase"} == 0`: {"up"},
		`sum by (job, instance) (rate(http_request_duration_seconds_count{status=~"5.."}[5m])) / sum by (job) (rate(http_request_duration_seconds_count[5m])) > 0.05`: {"http_request_duration_seconds_count"},
		`histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{route!~"/metrics|unmatched"}[$__rate_interval])))`:                                                {"x_bucket"},
		`max by (job, instance) (db_pool_acquired_conns / db_pool_max_conns) >= 0.9 and on (job) y`:                                                                   {"db_pool_acquired_conns", "db_pool_max_conns", "y"},
		`sum without (instance) (increase(a_total[1h])) or vector(0)`:                                                                                                 {"a_total"},
	} {
		if got := MetricNamesIn(expr); !slices.Equal(got, want) {
			t.Errorf("MetricNamesIn(%s) = %v, want %v", expr, got, want)
		}
	}
}
