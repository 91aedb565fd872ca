package servertest

import (
	"net/http"
	"testing"
)

// UserPassword is the password of the users AddUser creates.
const UserPassword = "another long enough password"

// TokenPair is the answer of POST /v1/auth/token.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Me is the answer of GET /v1/me: the caller, a user or an API key.
type Me struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// PasswordGrant asks for a token pair with a password, and answers whatever came back.
func (s *Server) PasswordGrant(t testing.TB, slug, email, password string) *Response {
	t.Helper()
	return s.Do(t, Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "password", "tenant": slug, "email": email, "password": password,
	}})
}

// RefreshGrant asks for a token pair with a refresh token, and answers whatever came back.
func (s *Server) RefreshGrant(t testing.TB, refresh string) *Response {
	t.Helper()
	return s.Do(t, Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "refresh_token", "refresh_token": refresh,
	}})
}

// Login is a PasswordGrant that must succeed.
func (s *Server) Login(t testing.TB, slug, email, password string) TokenPair {
	t.Helper()
	return decodePair(t, s.PasswordGrant(t, slug, email, password))
}

// Refresh is a RefreshGrant that must succeed.
func (s *Server) Refresh(t testing.TB, refresh string) TokenPair {
	t.Helper()
	return decodePair(t, s.RefreshGrant(t, refresh))
}

func decodePair(t testing.TB, res *Response) TokenPair {
	t.Helper()
	res.Want(t, http.StatusOK, "")
	var p TokenPair
	res.Decode(t, &p)
	if p.AccessToken == "" || p.RefreshToken == "" || p.TokenType != "Bearer" {
		t.Fatalf("not a token pair: %s", res.Body)
	}
	return p
}

// AddUser creates a user of role in the tenant, as its owner, with UserPassword and an
// email of its own.
func (s *Server) AddUser(t testing.TB, ten Tenant, role string) (id, email string) {
	t.Helper()
	email = role + "-" + RandomSuffix() + "@" + ten.Slug + ".example.com"
	id = s.Create(t, ten.Token, "/v1/users", map[string]string{"email": email, "password": UserPassword, "role": role})
	return id, email
}

// LoginNewUser creates a user of role (AddUser) and logs it in.
func (s *Server) LoginNewUser(t testing.TB, ten Tenant, role string) (id string, pair TokenPair) {
	t.Helper()
	id, email := s.AddUser(t, ten, role)
	return id, s.Login(t, ten.Slug, email, UserPassword)
}

// Me GETs /v1/me as token, which must be accepted.
func (s *Server) Me(t testing.TB, token string) Me {
	t.Helper()
	res := s.Get(t, token, "/v1/me")
	res.Want(t, http.StatusOK, "")
	var me Me
	res.Decode(t, &me)
	return me
}

// APIKey is the answer of POST /v1/api-keys, the only one that carries Key, the secret.
type APIKey struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	CreatedBy string  `json:"created_by"`
	Key       *string `json:"key"`
	CreatedAt string  `json:"created_at"`
}

// CreateAPIKey creates an API key of role as token, which must be allowed to.
func (s *Server) CreateAPIKey(t testing.TB, token, name, role string) APIKey {
	t.Helper()
	res := s.Do(t, Request{Method: "POST", Path: "/v1/api-keys", Token: token, Body: map[string]string{"name": name, "role": role}})
	res.Want(t, http.StatusCreated, "")
	var k APIKey
	res.Decode(t, &k)
	if k.Key == nil || k.ID == "" {
		t.Fatalf("created key without key or id: %s", res.Body)
	}
	return k
}
