package protocol

import (
	"fmt"
	"slices"
)

// MaxDeferrals bounds RebootState.DeferralsUsed as the controller accepts
// it.
const MaxDeferrals = 1000

// Validate checks what an agent says of its reboot state: a known mode
// (or none) and a deferral count within bounds. Errors name the field,
// "mode: ...". Times are the caller's to bound.
func (r *RebootState) Validate() error {
	if r.Mode != "" && !slices.Contains(RebootModes, r.Mode) {
		return fmt.Errorf("mode: unknown reboot mode %.40q (want %s)", r.Mode, oneOf(RebootModes))
	}
	if r.DeferralsUsed < 0 || r.DeferralsUsed > MaxDeferrals {
		return fmt.Errorf("deferralsUsed: %d is outside 0 to %d", r.DeferralsUsed, MaxDeferrals)
	}
	return nil
}
