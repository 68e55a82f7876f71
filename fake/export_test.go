package fake

import "github.com/gantryhq/gantry"

// Waiting reports whether a Wait for cond is parked on the container, so
// that tests can order a wait before the event it waits for.
func (rt *Runtime) Waiting(id string, cond gantry.WaitCondition) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup("waiting", id)
	if err != nil {
		return false
	}
	if cond == gantry.WaitRemoved {
		return c.removedWait != nil
	}
	return c.exitWait != nil
}

// Removing reports whether a Remove is under way for the container.
func (rt *Runtime) Removing(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup("removing", id)
	return err == nil && c.removing
}
