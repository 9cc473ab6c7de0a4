#!/bin/sh
# SHA-256 throughput of common/digest's implementations side by side in one
# run (mbedTLS's portable C, and the x86 SHA extensions when the CPU has
# them): RUNS rounds of MB megabytes each, medians of wall and CPU MB/s. The
# measuring is bench/digest.c. Results go to wiki/Performance.md ("SHA-256").
#
#   BUILD=/abs/build bench/digest.sh        (make bench-digest sets BUILD)
#   RUNS=5 MB=200 bench/digest.sh
set -eu
BUILD=${BUILD:-$(pwd)/build}
BIN=$BUILD/bench/digest
[ -x "$BIN" ] || { echo "digest.sh: $BIN not built (make BUILD=... bench-digest)" >&2; exit 1; }
echo "== machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" --mb "${MB:-200}" --runs "${RUNS:-5}"
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
