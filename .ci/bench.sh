#!/usr/bin/env bash
# Go benchmarks of BENCHMARKS.md, COUNT runs each, then a table of medians.
# Usage: bash .ci/bench.sh [COUNT]   (env: BENCH picks benchmarks, default all; BENCHTIME, default 1s)
set -euo pipefail
count=${1:-5}
bench=${BENCH:-.}
benchtime=${BENCHTIME:-1s}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
go test -run '^$' -bench "$bench" -benchmem -benchtime="$benchtime" -count "$count" -timeout 60m \
	./schema/loader/ ./reconciler/ ./reconciler/plan/ ./reconciler/api/ ./reconciler/store/sqlite/ \
	./protocol/ ./reconciler/source/ ./reconciler/feeds/ ./cmd/patchctl/ | tee "$raw"
echo
echo "Medians of $count runs:"
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i += 2) {
		unit = $(i + 1)
		if (!((name, unit) in units)) { units[name, unit] = 1; ulist[name] = ulist[name] " " unit }
		k = ++cnt[name, unit]; val[name, unit, k] = $i
	}
}
function median(name, unit,   m, i, j, t, a) {
	m = cnt[name, unit]
	for (i = 1; i <= m; i++) a[i] = val[name, unit, i] + 0
	for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
	printf "%-58s %16s %14s %12s  %s\n", "benchmark", "time/op", "B/op", "allocs/op", "other"
	for (x = 1; x <= n; x++) {
		name = order[x]; other = ""
		split(substr(ulist[name], 2), us, " ")
		t = ""; b = ""; a = ""
		for (u in us) {
			unit = us[u]; v = median(name, unit)
			if (unit == "ns/op") t = (v >= 1e6) ? sprintf("%.2f ms", v / 1e6) : sprintf("%.1f µs", v / 1e3)
			else if (unit == "B/op") b = sprintf("%d", v)
			else if (unit == "allocs/op") a = sprintf("%d", v)
			else other = other sprintf("%.4g %s  ", v, unit)
		}
		printf "%-58s %16s %14s %12s  %s\n", name, t, b, a, other
	}
}' "$raw"
