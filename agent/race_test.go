//go:build race

package agent

// raceEnabled scales the byte-heavy tests down under the race detector,
// which slows every copy about tenfold.
const raceEnabled = true
