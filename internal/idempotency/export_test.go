package idempotency

import "context"

// ClaimForTest claims req and records point, as a request that then died would leave it.
func ClaimForTest(ctx context.Context, s *Store, req Request, point string) (Record, error) {
	_, rec, err := s.Claim(ctx, req)
	if err != nil || point == Started {
		return rec, err
	}
	return rec, s.Advance(ctx, &rec, point, nil, nil)
}
