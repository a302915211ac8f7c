#!/usr/bin/env bash
# Runs every Fuzz target in the module briefly (go test -fuzz takes one
# target of one package at a time).
set -euo pipefail
fuzztime=${1:-5s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $fn ($fuzztime)"
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/patchline-fuzz.log 2>&1 || { cat /tmp/patchline-fuzz.log; exit 1; }
	done
done
