package payments

// SetAfterStripe installs a fault between Stripe's answer and the commit of its outcome.
func SetAfterStripe(p *Payments, fn func() error) { p.afterStripe = fn }
