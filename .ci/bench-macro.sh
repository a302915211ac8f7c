#!/usr/bin/env bash
# The macro benchmark of BENCHMARKS.md: one patchd (embedded SQLite, data on
# the ordinary disk) following a generated fleet repo through webhooks, and
# `patchctl sim` running ENDPOINTS real agents against it on loopback until
# the fleet is compliant, then timing COMMITS pushes to their first job.
# Usage: bash .ci/bench-macro.sh [RUNS]   (env: ENDPOINTS, CLIENTS, UPDATES, COMMITS)
# PROFILE=DIR also saves a CPU profile of patchd over the first wave
# (PROFILE_SECONDS, default 10) as DIR/cpu-runN.pprof, and one of the
# simulator's whole run as DIR/sim-runN.pprof.
set -euo pipefail
runs=${1:-3}
endpoints=${ENDPOINTS:-10000}
clients=${CLIENTS:-100}
updates=${UPDATES:-5}
commits=${COMMITS:-50}
port=${PORT:-18420}
profile=${PROFILE:-}
debug_port=$((port + 1))
metrics_port=$((port + 2))
bin=$(pwd)/bin
work=$(mktemp -d /tmp/patchline-macro-XXXXXX)
# Every agent holds a connection: both processes need file descriptors.
ulimit -n "$(ulimit -Hn)"
go build -o "$bin/" ./cmd/patchd ./cmd/patchctl
state_dir=/tmp
[ -d /dev/shm ] && state_dir=/dev/shm   # the agents' disks are not under test
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for run in $(seq 1 "$runs"); do
	dir=$work/run$run
	"$bin/patchctl" fleet generate --clients "$clients" --endpoints 0 --out "$dir" >/dev/null
	debug=()
	[ -n "$profile" ] && debug=(--debug-listen "127.0.0.1:$debug_port")
	"$bin/patchd" serve --repo "file://$dir/fleet" --poll 1h --secrets "$dir/secrets.json" \
		--data-dir "$dir/patchd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics_port" --log-level warn \
		--enroll-rate 100000 "${debug[@]}" 2>"$dir/patchd.log" &
	pid=$!
	for _ in $(seq 50); do curl -fs "http://127.0.0.1:$metrics_port/metrics" >/dev/null 2>&1 && break; sleep 0.2; done
	echo "== run $run: $endpoints agents, $clients clients, $updates updates each"
	simprof=()
	if [ -n "$profile" ]; then
		mkdir -p "$profile"
		simprof=(--cpu-profile "$profile/sim-run$run.pprof")
		curl -fs -o "$profile/cpu-run$run.pprof" \
			"http://127.0.0.1:$debug_port/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" &
	fi
	"$bin/patchctl" sim --controller "http://127.0.0.1:$port" --metrics "http://127.0.0.1:$metrics_port/metrics" \
		--secrets "$dir/secrets.json" \
		--clients "$clients" --endpoints "$endpoints" --updates "$updates" \
		--repo-dir "$dir/fleet" --commits "$commits" --duration 5m --state-dir "$state_dir" "${simprof[@]}" || true
	kill "$pid"; wait "$pid" || true; pid=
	rm -rf "$dir"
done
