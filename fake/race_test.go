//go:build race

package fake_test

// raceEnabled reports that the race detector is on: it allocates on its
// own account, so allocation budgets allow for it.
const raceEnabled = true
