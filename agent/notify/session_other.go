//go:build !windows

package notify

// consoleSession is nil off Windows: there is no user session to start a
// dialog in, and the Windows notifier shows notices only.
var consoleSession SessionRunner
