#!/bin/sh
# Fleet push benchmark: `tandem swarm update --all` for 1, 10 and 50 hosts on
# loopback (see bench/swarm_update.py). Results go to wiki/Performance.md.
#   BUILD=/abs/build bench/swarm_update.sh     SIZES=1,10,50 RUNS=3 PARALLEL=8
set -eu
exec /usr/bin/python3 "$(dirname "$0")/swarm_update.py"
