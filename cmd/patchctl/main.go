// Command patchctl is the technician's tool for a Patchline fleet repo:
// init, vet, plan (the pull-request preview), why, and the commands that
// talk to a running controller.
package main

import (
	"os"

	"github.com/patchline/patchline/schema/loader"
)

func main() {
	// patchctl runs itself to evaluate each client's policy in a child
	// process it can kill (schema/loader): such a child does only that.
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
