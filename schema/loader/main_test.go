package loader

import (
	"os"
	"testing"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: the tests that load with a child evaluator (SelfEvaluator) run this
// binary again with EvaluatorArg.
func TestMain(m *testing.M) {
	if IsEvaluator(os.Args[1:]) {
		os.Exit(ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
