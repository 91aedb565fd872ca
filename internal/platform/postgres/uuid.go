package postgres

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// registerUUID teaches a connection's type map to send uuid.UUID as PostgreSQL's 16-byte binary
// uuid. Without it pgx goes through uuid.UUID's driver.Valuer: a string is formatted, fails a
// binary encode (which builds an error with fmt.Errorf) and is then parsed back, on every
// argument of every query, about a twentieth of the CPU of a single-row read.
//
// It also reads a binary uuid into a *uuid.UUID by copying its 16 bytes. pgx would go through
// uuid.UUID's sql.Scanner: the bytes formatted as a string, which Scan parses back, with three
// allocations per value and one more to plan each column of each query.
func registerUUID(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{wrapUUID}, m.TryWrapEncodePlanFuncs...)
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
}

// uuidCodec is pgx's uuid codec with plans of its own for a uuid.UUID in binary: sent and
// scanned as its 16 bytes. (A uuid.UUID sent as a parameter of another type, say text, goes
// through wrapUUID.)
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return encodeUUID{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

// encodeUUID sends a uuid.UUID as its 16 bytes, as uuidPlan would through pgx's own plan,
// without boxing a pgtype.UUID for it.
type encodeUUID struct{}

func (encodeUUID) Encode(value any, buf []byte) ([]byte, error) {
	u := value.(uuid.UUID)
	return append(buf, u[:]...), nil
}

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return scanUUID{}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

// scanUUID reads a binary uuid into a *uuid.UUID. NULL leaves it as it is, as uuid.UUID's own
// Scan does.
type scanUUID struct{}

func (scanUUID) Scan(src []byte, target any) error {
	if src == nil {
		return nil
	}
	if len(src) != len(uuid.UUID{}) {
		return fmt.Errorf("postgres: a binary uuid of %d bytes", len(src))
	}
	copy(target.(*uuid.UUID)[:], src)
	return nil
}

func wrapUUID(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if u, ok := value.(uuid.UUID); ok {
		return &uuidPlan{}, pgtype.UUID{Bytes: u, Valid: true}, true
	}
	return nil, nil, false
}

// uuidPlan hands a uuid.UUID on as the pgtype.UUID that pgx's own codec encodes.
type uuidPlan struct{ next pgtype.EncodePlan }

func (p *uuidPlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidPlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(pgtype.UUID{Bytes: value.(uuid.UUID), Valid: true}, buf)
}
