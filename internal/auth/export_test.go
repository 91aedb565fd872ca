package auth

// Hold takes one of p's slots, as a password in progress does, until release is called, so
// that a test fills the bound without racing a real hash.
func (p *Passwords) Hold() (release func()) {
	p.slots <- struct{}{}
	return func() { <-p.slots }
}
