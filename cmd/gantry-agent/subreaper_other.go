//go:build !linux

package main

// becomeSubreaper is Linux-only; elsewhere the agent reaps orphans only
// as PID 1.
func becomeSubreaper() bool { return false }
