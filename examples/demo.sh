#!/usr/bin/env bash
# `make demo`: a fleet repo, the controller on its embedded defaults and a
# handful of simulated endpoints, converging. Everything runs on loopback
# and lives under the directory given as $1 (default .demo); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${1:-.demo}
# DEMO_BIN is where the binaries are: bin/ of `make build` unless a test
# built them elsewhere.
bin=${DEMO_BIN:-$PWD/bin}
port=${DEMO_PORT:-8420}
metrics_port=${DEMO_METRICS_PORT:-9420}
url=http://127.0.0.1:$port
author="Demo Technician <demo@msp.example>"

# port_owner PORT describes the program listening on 127.0.0.1:PORT, as
# ss shows it to this user.
port_owner() {
	if ! command -v ss >/dev/null; then
		echo "ss, of iproute2, is not installed to tell which"
		return
	fi
	local users
	users=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n 1)
	if [ -z "$users" ]; then
		echo "one this user cannot see"
		return
	fi
	# users:(("name",pid=1234 -> pid 1234, name
	echo "$users" | sed -E 's/users:\(\("([^"]*)",pid=([0-9]+)/pid \2, \1/'
}
# check_port VAR PORT WHAT stops the demo when PORT is taken: patchd could
# not listen there, and patchctl would talk to whatever does.
check_port() {
	if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null; then
		echo "make demo: port $2 ($3) is in use by another program ($(port_owner "$2")): set $1 to a free port, e.g. $1=$(($2 + 10)) make demo" >&2
		exit 1
	fi
}
check_port DEMO_PORT "$port" "patchd's API"
check_port DEMO_METRICS_PORT "$metrics_port" "patchd's metrics"

rm -rf "$demo"
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A fleet repo, as 'patchctl init' lays it down (here from examples/demo/fleet)"
"$bin/patchctl" init "$demo/fleet" --from examples/demo/fleet --author "$author"

step "2. patchctl vet: every client's policy checks out"
"$bin/patchctl" vet "$demo/fleet"

step "3. patchctl plan on the realistic example fleet against examples/state.json (a Monday 22:30 in Chicago)"
"$bin/patchctl" plan --repo examples/fleet --state examples/state.json --now 2026-11-24T04:30:00Z

step "4. patchctl why: the chain of rules behind one decision"
"$bin/patchctl" why --repo examples/fleet --state examples/state.json --now 2026-11-24T04:30:00Z --endpoint acme-ws-002 --update KB5034441

step "5. Start patchd on $url, following $demo/fleet, SQLite in $demo/data"
# 32 random bytes, in hex, per secret (patchd wants at least 16 characters).
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
(
	umask 077
	secret >"$demo/admin-token"
	secret >"$demo/acme.secret"
	secret >"$demo/globex.secret"
	cat >"$demo/secrets.json" <<JSON
{"adminToken": "$(cat "$demo/admin-token")", "webhookSecret": "$(secret)",
 "enrollment": {"acme": "$(cat "$demo/acme.secret")", "globex": "$(cat "$demo/globex.secret")"}}
JSON
)
"$bin/patchd" serve --repo-dir "$demo/fleet" --data-dir "$demo/data" --secrets "$demo/secrets.json" \
	--listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics_port" >"$demo/patchd.log" 2>&1 &
patchd=$!
pids+=("$patchd")
up=
for _ in $(seq 50); do
	if ! kill -0 "$patchd" 2>/dev/null; then
		break
	fi
	if "$bin/patchctl" status --controller "$url" --token-file "$demo/admin-token" >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 0.2
done
if [ -z "$up" ]; then
	echo "make demo: patchd is not answering on $url; the end of $demo/patchd.log:" >&2
	tail -n 20 "$demo/patchd.log" >&2
	exit 1
fi

step "6. Eight simulated endpoints (the sim backend: a simulation, not real patches) enrol across rings"
n=0
for client in acme globex; do
	os=windows
	[ "$client" = globex ] && os=linux
	for ring in canary pilot broad broad; do
		n=$((n + 1))
		host=$(printf '%s-%s-%02d' "$client" "$ring" "$n")
		"$bin/patch-agent" run --controller "$url" --client "$client" --enroll-token-file "$demo/$client.secret" \
			--state-dir "$demo/agents/$host" --labels "ring=$ring" --hostname "$host" \
			--backend sim --sim-os "$os" --report-interval 20s >"$demo/agent-$host.log" 2>&1 &
		pids+=($!)
	done
done
echo "started $n agents; logs in $demo/agent-*.log"

step "7. The fleet converges: canary first, then pilot, then broad (patchctl status every 5 s; the canary soaks 1 minute)"
for i in $(seq 40); do
	sleep 5
	out=$("$bin/patchctl" status --controller "$url" --token-file "$demo/admin-token")
	echo "--- after $((i * 5))s"
	echo "$out" | sed -n '/^CLIENT/,/^$/p'
	# Converged: every client runs a revision and has no drifting endpoint.
	if echo "$out" | awk '/^CLIENT/{t=1;next} t&&NF>=9{if($2=="(not"||$5!=0||$4==0)bad=1; n++} /^$/{t=0} END{exit !(n==2&&!bad)}'; then
		echo
		echo "Every endpoint is compliant."
		break
	fi
done

step "8. The broad ring asks before it restarts (reboot: prompt): what each simulated endpoint recorded"
# sim_prompts FILE prints the prompts and notices in a sim backend's
# sim-state.json (written indented, a field a line), then a summary.
sim_prompts() {
	awk -F'"' '
		function n(k, what) { return k " " what (k == 1 ? "" : "s") }
		/^  "prompts": \[/ { inside = 1; next }
		inside && /^  \]/ { inside = 0; next }
		inside && /^    \{/ { at = title = answer = "" }
		inside && /^      "at":/ { at = substr($4, 12, 8) }
		inside && /^      "title":/ { title = $4 }
		inside && /^      "answer":/ { answer = $4 }
		inside && /^    \}/ {
			if (answer == "") {
				printf "    %s UTC  notice  %s\n", at, title
			} else {
				printf "    %s UTC  prompt  %-15s answered %s\n", at, title, answer
				asked++
				if (answer == "postpone" || answer == "no-answer") postponed++
			}
		}
		/^  "rebootPending": true/ { pending = 1 }
		/^  "reboots":/ { reboots = $3; gsub(/[^0-9]/, "", reboots) }
		END {
			printf "    %s, %d postponed, %s%s\n", n(asked + 0, "prompt"), postponed + 0, n(reboots + 0, "simulated reboot"),
				pending ? "; a reboot is pending" : ""
		}
	' "$1"
}
for dir in "$demo"/agents/*-broad-*; do
	echo "$(basename "$dir"):"
	if [ -f "$dir/sim-state.json" ]; then
		sim_prompts "$dir/sim-state.json"
	else
		echo "    no job yet"
	fi
done
echo "An endpoint is asked only when its job leaves a reboot pending. Each postponement moves the restart"
echo "15 seconds on, twice at most; \"restart now\" restarts it at once; the deadline is 2 minutes after the job."

step "9. A change is a commit: approve moderate-severity security updates for globex"
cat >>"$demo/fleet/clients/globex/policy.cue" <<'CUE'

baseline: approve: [
	{name: "security", category: ["security", "critical"], minSeverity: "moderate"},
	{name: "exploited", knownExploited: true},
]
CUE
"$bin/patchctl" state export --controller "$url" --token-file "$demo/admin-token" --out "$demo/state.json"
echo "What the pull request would show (patchctl plan --base HEAD against the live state):"
"$bin/patchctl" plan --repo "$demo/fleet" --base HEAD --state "$demo/state.json" | head -25
# In real life this is a reviewed pull request; here, a commit with git.
if command -v git >/dev/null; then
	git -C "$demo/fleet" -c user.name="Demo Technician" -c user.email=demo@msp.example \
		commit -qam "Approve moderate security updates for globex (#2)"
	echo "Committed; patchd notices the new revision through fsnotify and rolls it out to the canary."
	sleep 8
	"$bin/patchctl" status --controller "$url" --token-file "$demo/admin-token"
else
	echo "(git is not installed: skipping the commit)"
fi

step "Done. Metrics: curl http://127.0.0.1:$metrics_port/metrics | grep ^patchline_   (stopping everything now)"
