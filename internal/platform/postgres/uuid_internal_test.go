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
