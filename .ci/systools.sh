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
# dpkg-parsechangelog is the reference the apt backend's changelog test
# compares with.
have dpkg-parsechangelog || need+=(dpkg-dev)
# Debian's prometheus package ships both prometheus and promtool.
have prometheus && have promtool || need+=(prometheus)
# actionlint checks the fleet template's workflow scripts with shellcheck.
have shellcheck || need+=(shellcheck)
# The PostgreSQL store's tests start throwaway clusters (initdb, postgres).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have initdb || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
	echo "installing system tools for tests: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
	echo "WARNING: missing system tools for tests: ${need[*]} (install them; tests needing them fail under CI=true)" >&2
fi
