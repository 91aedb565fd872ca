// Package scale holds the scale study, `make scale`: the same measurements at a small and a
// large size of the data (tenants, projects, usage events, flag overrides, the outbox), and a
// table of the two with their ratio. It is a test behind the build tag "scale", so `make test`
// does not run it; see docs/scale.md.
package scale
