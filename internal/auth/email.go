package auth

import (
	"net/mail"
	"strings"
)

// NormalizeEmail is the form emails are stored and looked up in: trimmed and lowercased, so
// Ada@Example.com and ada@example.com are one account.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ValidEmail accepts a bare address (no display name), at most 254 characters.
func ValidEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " <>") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}
