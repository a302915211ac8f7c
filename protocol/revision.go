package protocol

// ShortRevision abbreviates a policy revision (a Git commit hash) for
// people to read: its first 12 hex digits, enough to be unique in a fleet
// repo and short enough for a table column. A shorter string, "" included,
// is returned as it is; callers choose what a missing revision reads as.
func ShortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
