//go:build !unix

package loader

import "os/exec"

// isolate leaves the child as it is: without Unix process groups, the
// context's end kills the child alone (exec's default), which starts no
// process of its own.
func isolate(cmd *exec.Cmd) {}
