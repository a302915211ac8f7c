package sqlite

import (
	"strings"
	"testing"
)

// TestSnapshotQueriesUseIndexes checks the query plans behind snapshots: a
// client's or an endpoint's snapshot reads only its rows (no table scan),
// and no snapshot query sorts, so one endpoint's snapshot costs the same in
// a fleet of ten or ten thousand.
func TestSnapshotQueriesUseIndexes(t *testing.T) {
	db, _ := openTest(t)
	type query func(scope) (string, []any)
	queries := map[string]query{
		"endpoints": scope.endpointsQuery,
		"updates":   scope.updatesQuery,
		"attempts":  scope.attemptsQuery,
		"in-flight": func(s scope) (string, []any) { return s.inFlightQuery(t0) },
	}
	for _, sc := range []struct {
		name      string
		s         scope
		scanFleet bool
	}{
		{"whole fleet", scope{}, true},
		{"one client", scope{client: "acme"}, false},
		{"one endpoint", scope{endpoint: "ep-1"}, false},
	} {
		for name, q := range queries {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				sqlText, args := q(sc.s)
				rows, err := db.read.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				for _, step := range plan {
					if strings.Contains(step, "TEMP B-TREE") || (!sc.scanFleet && strings.HasPrefix(step, "SCAN")) {
						t.Errorf("query plan step %q; plan:\n%s", step, strings.Join(plan, "\n"))
					}
				}
			})
		}
	}
}
