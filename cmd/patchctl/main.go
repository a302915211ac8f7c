// Command patchctl is the technician's tool for a Patchline fleet repo:
// init, vet, plan (the pull-request preview), why, and the commands that
// talk to a running controller.
package main

import "os"

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }
