package purge_test

import (
	"testing"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, stripetest.StopMock) }
