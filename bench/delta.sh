#!/bin/sh
# Planned (delta) push vs full push of a ~200 MB release of real binaries,
# through `tandem swarm update`, on loopback and on a rate-limited link in a
# network namespace of its own: see bench/delta.py. Results go to
# wiki/Performance.md ("Planned pushes").
#   BUILD=/abs/build bench/delta.sh     RUNS=3 BIG_MB=200 CHANGED=7 LINKS=loopback,shaped RATE=100mbit
set -eu
NETNS=tandem-bench-delta-$$
export NETNS
# The namespace goes whatever happens to the benchmark (delta.py deletes it too).
cleanup() { ip netns del "$NETNS" 2>/dev/null || true; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
/usr/bin/python3 "$(dirname "$0")/delta.py"
