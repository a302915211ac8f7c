#!/usr/bin/env bash
# The end-to-end suite's long mode: make test-long. The whole log goes to
# test-long.log; the terminal gets each test's verdict and duration.
set -euo pipefail
log=${1:-test-long.log}
go test -count=1 -timeout 90m -v ./internal/e2e/ -long 2>&1 | tee "$log" | grep -E '^(--- |ok|FAIL|panic)'
