// Package ids writes the service's identifiers without allocating, for the paths every
// request takes (a rate limit's scope, the tenant setting of a read, a flag's bucket).
package ids

import "github.com/google/uuid"

// AppendUUID appends id's canonical text, as uuid.UUID.String writes it, to dst.
func AppendUUID(dst []byte, id uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[b>>4], hex[b&0x0f])
	}
	return dst
}
