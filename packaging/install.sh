#!/bin/sh
# Installs patch-agent on a Mac from this archive: copies the binary beside
# this script to /usr/local/bin and registers the launchd daemon with
# `patch-agent service install`, which takes the arguments given here.
# Run as root:
#   sudo ./install.sh --controller https://patchd.msp.example:8420 --client acme ...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root: sudo $0 $*" >&2
	exit 1
fi
mkdir -p /usr/local/bin
cp "$here/patch-agent" /usr/local/bin/patch-agent.new
chmod 0755 /usr/local/bin/patch-agent.new
# A binary from a downloaded archive carries Gatekeeper's quarantine flag,
# which would stop launchd from running it.
xattr -d com.apple.quarantine /usr/local/bin/patch-agent.new 2>/dev/null || true
mv -f /usr/local/bin/patch-agent.new /usr/local/bin/patch-agent
exec /usr/local/bin/patch-agent service install "$@"
