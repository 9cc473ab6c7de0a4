#!/bin/sh
# Planned (delta) push vs full push of a ~200 MB release of real binaries:
# see bench/delta.py. Results go to wiki/Performance.md ("Planned pushes").
#   BUILD=/abs/build bench/delta.sh     RUNS=3 BIG_MB=200 CHANGED=7
set -eu
exec /usr/bin/python3 "$(dirname "$0")/delta.py"
