// Package selfupdate is the end-to-end test of the agent's signed
// self-update (issue 18): agent builds of different versions, a
// controller serving signed releases and following a real fleet repo, a
// loopback proxy that can make a new binary never check in, and a
// supervisor standing in for the service manager that restarts the agent
// when it exits with status 3.
package selfupdate
