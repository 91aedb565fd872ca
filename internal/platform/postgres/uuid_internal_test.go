package postgres

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestUUIDPlan: with registerUUID, pgx plans a uuid.UUID argument through uuidPlan, not
// through driver.Valuer's string, and the bytes it sends are the uuid's own 16.
func TestUUIDPlan(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.New()
	plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, u)
	if _, ok := plan.(*uuidPlan); !ok {
		t.Fatalf("uuid.UUID is planned as %T, want *uuidPlan", plan)
	}
	buf, err := plan.Encode(u, nil)
	if err != nil || !bytes.Equal(buf, u[:]) {
		t.Errorf("binary encoding: %x, %v; want %x", buf, err, u[:])
	}
}
