#!/bin/sh
# Updater benchmarks (push-to-healthy, 200 MB push vs tar -xzf, RSS):
# see bench/updater_push.py. Results go to wiki/Performance.md ("Updater").
#   BUILD=/abs/build bench/updater_push.sh     RUNS=5 BIG_MB=200
set -eu
exec /usr/bin/python3 "$(dirname "$0")/updater_push.py"
