package reconciler

import (
	"os"
	"testing"

	"github.com/patchline/patchline/schema/loader"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: the tests that evaluate policy in child processes
// (loader.SelfEvaluator) run this binary again with loader.EvaluatorArg.
func TestMain(m *testing.M) {
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
