package postgres

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestUUIDPlan: with registerUUID, pgx plans a uuid.UUID argument of a uuid parameter through
// encodeUUID, and of another type through uuidPlan, not through driver.Valuer's string; the
// bytes sent for a uuid are the uuid's own 16.
func TestUUIDPlan(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.New()
	plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, u)
	if _, ok := plan.(encodeUUID); !ok {
		t.Fatalf("uuid.UUID is planned as %T, want encodeUUID", plan)
	}
	buf, err := plan.Encode(u, []byte{1})
	if err != nil || !bytes.Equal(buf, append([]byte{1}, u[:]...)) {
		t.Errorf("binary encoding: %x, %v; want 01%x", buf, err, u[:])
	}
	var v any = u // as pgx holds an argument
	if n := testing.AllocsPerRun(100, func() { plan.Encode(v, buf[:0]) }); n != 0 {
		t.Errorf("encoding allocates %v times", n)
	}
	if plan := m.PlanEncode(pgtype.TextOID, pgtype.TextFormatCode, u); plan == nil {
		t.Error("uuid.UUID as text: no plan")
	} else if _, ok := plan.(*uuidPlan); !ok {
		t.Errorf("uuid.UUID as text is planned as %T, want *uuidPlan", plan)
	}
}

// TestUUIDScanPlan: with registerUUID, a binary uuid is read into a *uuid.UUID by scanUUID,
// not through sql.Scanner's string, and NULL leaves the target as it was, as uuid.UUID.Scan
// does.
func TestUUIDScanPlan(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	var got uuid.UUID
	plan := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got)
	if _, ok := plan.(scanUUID); !ok {
		t.Fatalf("*uuid.UUID is planned as %T, want scanUUID", plan)
	}
	u := uuid.New()
	if err := plan.Scan(u[:], &got); err != nil || got != u {
		t.Errorf("scan: %v, %v; want %v", got, err, u)
	}
	if err := plan.Scan(nil, &got); err != nil || got != u {
		t.Errorf("NULL: %v, %v; want %v unchanged", got, err, u)
	}
	if err := plan.Scan(u[:15], &got); err == nil {
		t.Error("15 bytes scanned without an error")
	}
	if _, ok := m.PlanScan(pgtype.UUIDOID, pgtype.TextFormatCode, &got).(scanUUID); ok {
		t.Error("text is planned as binary")
	}
}
