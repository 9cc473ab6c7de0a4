#!/bin/sh
# Install the Debian packages tandem needs to build and test. Idempotent:
# prints nothing and touches nothing when everything is already present.
set -eu
PKGS="build-essential pkg-config libmicrohttpd-dev libmbedtls-dev libarchive-dev
libcjson-dev libsqlite3-dev libhttp-parser-dev libzstd-dev libcmocka-dev python3-pytest
python3-pytest-xdist curl openssl cppcheck clang libclang-rt-14-dev lld iproute2 procps"
# the zstd CLI: the e2e tests make patches with it (--patch-from) to check the updater's reader
PKGS="$PKGS zstd"
# packaging: systemd-analyze verify, dpkg-shlibdeps for make deb
PKGS="$PKGS systemd dpkg-dev"
# real hosts: the Debian 12 container test (systemd-nspawn, debootstrap), lintian on
# the packages, man pages generated from --help
PKGS="$PKGS systemd-container debootstrap lintian help2man"
# metrics: promtool (in Debian's prometheus package) checks GET /metrics
PKGS="$PKGS prometheus"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
