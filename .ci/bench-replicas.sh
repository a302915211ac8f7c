#!/usr/bin/env bash
# Three patchd replicas on one PostgreSQL against one patchd on SQLite, on
# the same machine in the same minutes (BENCHMARKS.md, "Three replicas on
# PostgreSQL against one on SQLite"). Each run does both setups back to
# back, alternating which goes first, with the same fleet size:
#
#   postgres: a throwaway PostgreSQL cluster (initdb in a temporary directory
#             on the ordinary disk, a Unix socket, run as the postgres user
#             when root), three patchd replicas r1, r2, r3 on it with one
#             signing key, and `patchctl sim` with all three URLs (agent i
#             starts at replica i mod 3, the status and webhooks go to r1,
#             which starts first and so leads);
#   sqlite:   one patchd on embedded SQLite, as .ci/bench-macro.sh runs it.
#
# After each setup it prints the simulator's summary, each patchd's peak
# resident memory (VmHWM) and CPU time, and PostgreSQL's CPU time and
# memory (PSS, shared buffers counted once).
#
# Usage: bash .ci/bench-replicas.sh [RUNS]
#   env: ENDPOINTS (10000), CLIENTS (100), UPDATES (5), COMMITS (30),
#        PG_FSYNC (on: PostgreSQL syncs its WAL as in production; off as
#        the tests run it), PORT (18520, the first of 12 ports used),
#        ONLY (postgres or sqlite: run one setup),
#        PG_POOL=N: each replica's connections to PostgreSQL (pgx's
#        pool_max_conns; its default is the larger of 4 and the CPUs),
#        PG_STATEMENTS=1: load pg_stat_statements and print the statements
#        that took the database's time,
#        PROFILE=DIR: CPU profiles of every patchd over the first
#        PROFILE_SECONDS (10) as DIR/<setup>-runN-<replica>.pprof.
set -euo pipefail
runs=${1:-1}
endpoints=${ENDPOINTS:-10000}
clients=${CLIENTS:-100}
updates=${UPDATES:-5}
commits=${COMMITS:-30}
pg_fsync=${PG_FSYNC:-on}
port=${PORT:-18520}
only=${ONLY:-}
pg_pool=${PG_POOL:-}
pg_statements=${PG_STATEMENTS:-}
profile=${PROFILE:-}
bin=$(pwd)/bin
work=$(mktemp -d /tmp/patchline-replicas-XXXXXX)
chmod 711 "$work"   # PostgreSQL's user reaches its directory through it
ulimit -n "$(ulimit -Hn)"
go build -o "$bin/" ./cmd/patchd ./cmd/patchctl
state_dir=/tmp
[ -d /dev/shm ] && state_dir=/dev/shm

pg_bin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$pg_bin/initdb" ] || { echo "no PostgreSQL server binaries (initdb): install Debian's postgresql package (.ci/systools.sh does)" >&2; exit 1; }
# PostgreSQL refuses to run as root: run it as postgres (or nobody).
as_pg=()
if [ "$(id -u)" = 0 ]; then
	pg_user=postgres
	id -u postgres >/dev/null 2>&1 || pg_user=nobody
	as_pg=(setpriv --reuid "$pg_user" --regid "$(id -g "$pg_user")" --clear-groups)
fi

pids=()
pg_pid=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

wait_metrics() {
	for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "no metrics at $1" >&2
	return 1
}

# cpu_seconds PID: user+system CPU of a process (and its reaped children).
cpu_seconds() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
}

# report_process NAME PID: its peak RSS and CPU time so far.
report_process() {
	local hwm
	hwm=$(awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$2/status")
	printf '%-22s peak RSS %5d MiB  CPU %6.1f s\n' "$1" "$hwm" "$(cpu_seconds "$2")"
}

# report_postgres: the cluster's CPU (the postmaster's reaped children
# and the live processes) and memory (PSS summed: shared memory once).
report_postgres() {
	local cpu=0 pss=0 p
	cpu=$(cpu_seconds "$pg_pid")
	for p in $(pgrep -P "$pg_pid"); do
		cpu=$(awk -v a="$cpu" -v b="$(cpu_seconds "$p")" 'BEGIN { print a + b }')
		pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$pg_pid/smaps_rollup")))
	printf '%-22s PSS now  %5d MiB  CPU %6.1f s  (%d processes)\n' "postgresql" $((pss / 1024)) "$cpu" $(($(pgrep -c -P "$pg_pid") + 1))
}

start_postgres() {
	local dir=$1
	mkdir -p "$dir"
	chmod 711 "$(dirname "$dir")"
	if [ ${#as_pg[@]} -gt 0 ]; then chown "$pg_user" "$dir"; fi
	"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U patchline --auth=trust --encoding=UTF8 --locale=C --no-sync >/dev/null
	pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# Production-like durability by default (PG_FSYNC=on); shared
	# buffers sized for a small dedicated database.
	local extra=()
	[ -n "$pg_statements" ] && extra=(-c shared_preload_libraries=pg_stat_statements)
	"${as_pg[@]}" "$pg_bin/postgres" -D "$dir/data" -k "$dir" -h '' -p "$pg_port" \
		-c fsync="$pg_fsync" -c max_connections=300 -c shared_buffers=256MB "${extra[@]}" \
		>"$dir/postgres.log" 2>&1 &
	pg_pid=$!
	for _ in $(seq 100); do pg_isready -q -h "$dir" -p "$pg_port" && break; sleep 0.1; done
	createdb -h "$dir" -p "$pg_port" -U patchline patchline
	database="host=$dir port=$pg_port user=patchline dbname=patchline sslmode=disable"
	[ -n "$pg_pool" ] && database+=" pool_max_conns=$pg_pool"
	if [ -n "$pg_statements" ]; then
		psql -q -h "$dir" -p "$pg_port" -U patchline -d patchline -c 'CREATE EXTENSION pg_stat_statements'
	fi
	return 0
}

# report_statements: the statements that took PostgreSQL's time.
report_statements() {
	[ -n "$pg_statements" ] || return 0
	psql -h "$1" -p "$pg_port" -U patchline -d patchline -P pager=off -c \
		"SELECT calls, round(total_exec_time) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
		        left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
		   FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12"
}

stop_postgres() {
	kill -INT "$pg_pid"
	wait "$pg_pid" || true
	pg_pid=
}

run_postgres() {
	local dir=$1 run=$2
	start_postgres "$dir/pg"
	"$bin/patchctl" keys generate --out "$dir/signing-key.pem" >/dev/null
	local urls=() metrics=() names=(r1 r2 r3) k
	pids=()
	for k in 0 1 2; do
		local p=$((port + 4 * k))
		local debug=()
		[ -n "$profile" ] && debug=(--debug-listen "127.0.0.1:$((p + 2))")
		"$bin/patchd" serve --database "$database" --signing-key "$dir/signing-key.pem" --replica-name "${names[$k]}" \
			--repo "file://$dir/fleet" --poll 1h --secrets "$dir/secrets.json" \
			--data-dir "$dir/patchd-${names[$k]}" --listen "127.0.0.1:$p" --metrics-listen "127.0.0.1:$((p + 1))" \
			--log-level warn --enroll-rate 100000 "${debug[@]}" 2>"$dir/patchd-${names[$k]}.log" &
		pids+=($!)
		urls+=("http://127.0.0.1:$p")
		metrics+=("http://127.0.0.1:$((p + 1))/metrics")
		# r1 starts first and takes the lease.
		wait_metrics "http://127.0.0.1:$((p + 1))/metrics"
	done
	echo "== run $run, postgres: three replicas, $endpoints agents, $clients clients, $updates updates each (fsync=$pg_fsync${pg_pool:+, pool $pg_pool})"
	if [ -n "$profile" ]; then
		mkdir -p "$profile"
		for k in 0 1 2; do
			curl -fs -o "$profile/postgres-run$run-${names[$k]}.pprof" \
				"http://127.0.0.1:$((port + 4 * k + 2))/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" &
		done
	fi
	"$bin/patchctl" sim --controller "$(IFS=,; echo "${urls[*]}")" --metrics "$(IFS=,; echo "${metrics[*]}")" \
		--secrets "$dir/secrets.json" --clients "$clients" --endpoints "$endpoints" --updates "$updates" \
		--repo-dir "$dir/fleet" --commits "$commits" --duration 5m --state-dir "$state_dir" || true
	curl -fs "${metrics[0]}" | grep '^patchline_leader' || true
	for k in 0 1 2; do report_process "patchd ${names[$k]}" "${pids[$k]}"; done
	report_postgres
	report_statements "$dir/pg"
	for p in "${pids[@]}"; do kill "$p"; wait "$p" || true; done
	pids=()
	stop_postgres
}

run_sqlite() {
	local dir=$1 run=$2
	local debug=()
	[ -n "$profile" ] && debug=(--debug-listen "127.0.0.1:$((port + 2))")
	"$bin/patchd" serve --repo "file://$dir/fleet" --poll 1h --secrets "$dir/secrets.json" \
		--data-dir "$dir/patchd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
		--log-level warn --enroll-rate 100000 "${debug[@]}" 2>"$dir/patchd.log" &
	pids=($!)
	wait_metrics "http://127.0.0.1:$((port + 1))/metrics"
	echo "== run $run, sqlite: one patchd, $endpoints agents, $clients clients, $updates updates each"
	if [ -n "$profile" ]; then
		mkdir -p "$profile"
		curl -fs -o "$profile/sqlite-run$run.pprof" \
			"http://127.0.0.1:$((port + 2))/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" &
	fi
	"$bin/patchctl" sim --controller "http://127.0.0.1:$port" --metrics "http://127.0.0.1:$((port + 1))/metrics" \
		--secrets "$dir/secrets.json" --clients "$clients" --endpoints "$endpoints" --updates "$updates" \
		--repo-dir "$dir/fleet" --commits "$commits" --duration 5m --state-dir "$state_dir" || true
	report_process "patchd (sqlite)" "${pids[0]}"
	kill "${pids[0]}"; wait "${pids[0]}" || true
	pids=()
}

for run in $(seq 1 "$runs"); do
	order=(postgres sqlite)
	[ $((run % 2)) = 0 ] && order=(sqlite postgres)
	for setup in "${order[@]}"; do
		[ -n "$only" ] && [ "$only" != "$setup" ] && continue
		dir=$work/run$run-$setup
		"$bin/patchctl" fleet generate --clients "$clients" --endpoints 0 --out "$dir" >/dev/null
		"run_$setup" "$dir" "$run"
		wait   # a profile download still under way
		rm -rf "$dir"
	done
done
