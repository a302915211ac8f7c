package reconciler

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

// TestStatusShowsTheRevisionOfItsFigures: a client's status names the
// revision its figures hold for. A commit that leaves the client's policy
// as it was moves it to the new revision at once (it is not re-planned);
// one that changes it shows the old revision until the re-plan at the new
// one is done, so nobody reads the old policy's figures as the new one's.
func TestStatusShowsTheRevisionOfItsFigures(t *testing.T) {
	tests := []struct {
		name string
		// planned is the digest the summary was planned with; running
		// what the client runs now (absent: no policy).
		planned string
		running *runningPolicy
		want    string
	}{
		{"policy unchanged by the new commit", "d1", &runningPolicy{revision: "new", digest: "d1"}, "new"},
		{"policy changed, not re-planned yet", "d1", &runningPolicy{revision: "new", digest: "d2"}, "old"},
		{"re-planned at the new revision", "d2", &runningPolicy{revision: "new", digest: "d2"}, "new"},
		{"refused at start: no policy to compare", "", &runningPolicy{revision: "new"}, "new"},
		{"client the repo does not have", "", nil, "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &replanner{summaries: map[string]protocol.ClientStatus{"acme": {Client: "acme", Revision: "old"}},
				planned: map[string]string{"acme": tt.planned}}
			running := map[string]runningPolicy{}
			if tt.running != nil {
				running["acme"] = *tt.running
			}
			got := r.statusesAt(running)
			if diff := cmp.Diff([]protocol.ClientStatus{{Client: "acme", Revision: tt.want}}, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}
}
