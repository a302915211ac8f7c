#!/usr/bin/env bash
# Installs the system tools the test suite needs (real Git for git daemon,
# ...) with apt-get when running as root on Debian. Elsewhere it only reports
# what is missing; tests that need a missing tool fail under CI=true.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have git || need+=(git)
# ssh-keygen signs the SSH-signed commits of the signature tests.
have ssh-keygen || need+=(openssh-client)
# systemd-analyze checks the unit files of examples/systemd.
have systemd-analyze || need+=(systemd)
have apt-ftparchive || need+=(apt-utils)
# ss names the program holding a port in make demo's refusal (its test).
have ss || need+=(iproute2)
# dpkg-parsechangelog is the reference the apt backend's changelog test
# compares with.
have dpkg-parsechangelog || need+=(dpkg-dev)
# Debian's prometheus package ships both prometheus and promtool.
have prometheus && have promtool || need+=(prometheus)
# actionlint checks the fleet template's workflow scripts with shellcheck.
have shellcheck || need+=(shellcheck)
# yamllint checks the fleet template's workflow and GitLab CI files.
have yamllint || need+=(yamllint)
# internal/packaging checks the .debs with lintian, the .rpms with rpmlint
# and lists them with rpm.
have lintian || need+=(lintian)
have rpmlint || need+=(rpmlint)
have rpm || need+=(rpm)
# The PostgreSQL store's tests start throwaway clusters (initdb, postgres).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have initdb || need+=(postgresql)
# The upstream cue command, at the version of cuelang.org/go in go.mod: a
# test checks that a fleet repo made by patchctl init works with cue vet,
# cue eval and cue fmt. go install puts it in GOBIN (or GOPATH/bin).
go=${GO:-go}
cue_version=$("$go" list -m -f '{{.Version}}' cuelang.org/go)
gobin=$("$go" env GOBIN)
[ -n "$gobin" ] || gobin="$("$go" env GOPATH)/bin"
if [ "$("$gobin/cue" version 2>/dev/null | head -n 1)" != "cue version $cue_version" ]; then
	echo "installing cue $cue_version for tests"
	"$go" install "cuelang.org/go/cmd/cue@$cue_version" ||
		echo "WARNING: could not install cue $cue_version (tests needing it fail under CI=true)" >&2
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
	echo "installing system tools for tests: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
	echo "WARNING: missing system tools for tests: ${need[*]} (install them; tests needing them fail under CI=true)" >&2
fi
