package postgres

import (
	"fmt"
	"net/url"
	"strings"
)

// withUser rewrites the user of a postgres:// URL or a key=value DSN, dropping the password.
func withUser(dsn, user string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("postgres: parse url: %w", err)
		}
		u.User = url.User(user)
		q := u.Query()
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	var kept []string
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "user=") || strings.HasPrefix(f, "password=") {
			continue
		}
		kept = append(kept, f)
	}
	return strings.Join(append(kept, "user="+user), " "), nil
}

// WithDatabase returns dsn pointed at another database.
func WithDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("postgres: want a postgres:// url, got %q", redact(dsn))
	}
	u.Path = "/" + db
	return u.String(), nil
}

// redact hides a password in a URL for error messages and logs.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
