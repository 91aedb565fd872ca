package events

// SetAfterPublish installs a fault between publishing a batch and marking it published.
func SetAfterPublish(r *Relay, fn func([]Event) error) { r.afterPublish = fn }
