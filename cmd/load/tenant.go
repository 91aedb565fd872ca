package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// A tenant is one tenant signed up for the run, with the projects it has.
type tenant struct {
	id      string
	slug    string
	plan    string
	session *session

	mu       sync.Mutex
	projects []string // grows as the mix creates projects
}

func (t *tenant) addProject(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.projects = append(t.projects, id)
}

// project picks one of the tenant's projects; setup gives every tenant some.
func (t *tenant) project(r *rand.Rand) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.projects[r.IntN(len(t.projects))]
}

// tokenPair is what signup and the token endpoint answer.
type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// A session holds a tenant owner's tokens, shared by every worker acting for the tenant.
// Each request reads the access token without a lock: a mutex taken by every request of 16
// workers acting for one tenant (the baseline rounds) made them queue on it, a cost of the
// load generator's that only the service's requests paid.
type session struct {
	access atomic.Pointer[string] // replaced under mu

	mu      sync.Mutex // held by renew, across its request
	refresh string
}

func newSession(p tokenPair) *session {
	s := &session{refresh: p.RefreshToken}
	s.access.Store(&p.AccessToken)
	return s
}

func (s *session) accessToken() string { return *s.access.Load() }

// renew trades the refresh token for new tokens and answers the new access token, unless
// stale, the token that was refused, has already been replaced by another worker. Refresh
// tokens rotate on use and reusing a spent one revokes its whole family, so the workers of
// one tenant must not refresh at once: they take turns under mu, across the request.
func (s *session) renew(ctx context.Context, c *client, stale string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if access := s.accessToken(); access != stale {
		return access, nil
	}
	var p tokenPair
	a, err := c.do(ctx, call{
		route: routeToken,
		body:  map[string]string{"grant_type": "refresh_token", "refresh_token": s.refresh},
		out:   &p,
	})
	if err != nil {
		return "", err
	}
	if a.status != 200 || p.AccessToken == "" {
		return "", errors.New("refresh: " + a.String())
	}
	s.access.Store(&p.AccessToken)
	s.refresh = p.RefreshToken
	return p.AccessToken, nil
}
