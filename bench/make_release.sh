#!/bin/sh
# `make release` cost: five releases as the e2e suites build them (new
# versions, two broken agent kinds, a broken updater kind) into a build that
# is already made. Prints wall, user and system seconds per release.
# Results go to wiki/Performance.md (Build and test).
#   BUILD=/abs/build bench/make_release.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# A fresh set of versions each run, so nothing is cached from an earlier one.
v=$(date +%s)
for args in "VERSION=$v.1" "VERSION=$v.2" "VERSION=$v.3 RELEASE_KIND=exit-at-once" \
	"VERSION=$v.3 RELEASE_KIND=never-ready" "VERSION=$v.4 RELEASE_UPDATER_KIND=hang"; do
	# shellcheck disable=SC2086
	/usr/bin/time -f "%e s wall  %U s user  %S s sys   $args" \
		make -s -j2 -C "$root" BUILD="$build" $args RELEASE_OUT="$out/r.tar.gz" release >/dev/null
done
