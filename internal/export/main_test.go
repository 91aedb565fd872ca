package export_test

import (
	"testing"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
