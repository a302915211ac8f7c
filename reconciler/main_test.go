package reconciler

import (
	"os"
	"testing"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/schema/loader"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: the tests that evaluate policy in child processes
// (loader.SelfEvaluator) run this binary again with loader.EvaluatorArg.
// Otherwise it runs the tests, and stops the PostgreSQL cluster the tests
// of the PostgreSQL store started, if any.
func TestMain(m *testing.M) {
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Main(m))
}
