//go:build !race

package feeds

// raceEnabled says the race detector is on.
const raceEnabled = false
