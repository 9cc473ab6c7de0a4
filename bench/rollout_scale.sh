#!/bin/sh
# Rollout scale benchmark: the master's cost per host with registries of 1 000
# and 10 000 hosts (see bench/rollout_scale.py). Results go to wiki/Performance.md.
#   BUILD=/abs/build bench/rollout_scale.sh     SIZES=1000,10000 RUNS=3
set -eu
exec /usr/bin/python3 "$(dirname "$0")/rollout_scale.py"
