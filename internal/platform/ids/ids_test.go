package ids_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/ids"
)

func TestAppendUUID(t *testing.T) {
	for _, id := range []uuid.UUID{uuid.Nil, uuid.Max, uuid.New(), uuid.Must(uuid.NewV7())} {
		if got := string(ids.AppendUUID([]byte("x:"), id)); got != "x:"+id.String() {
			t.Errorf("AppendUUID(%s) = %q", id, got)
		}
	}
	var buf [36]byte
	id := uuid.New()
	if n := testing.AllocsPerRun(100, func() { ids.AppendUUID(buf[:0], id) }); n != 0 {
		t.Errorf("AppendUUID into room enough allocates %v times", n)
	}
}
