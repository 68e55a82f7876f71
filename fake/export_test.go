package fake

// Removing reports whether a Remove is under way for the container.
func (rt *Runtime) Removing(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	return err == nil && c.removing
}
