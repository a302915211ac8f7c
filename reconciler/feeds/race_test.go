//go:build race

package feeds

// raceEnabled says the race detector is on: it slows parsing about tenfold,
// so the large generated streams shrink.
const raceEnabled = true
