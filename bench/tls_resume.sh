#!/bin/bash
# TLS session resumption (not a test): CPU per connection of the server and of
# the master's client, full handshake vs resumed session, side by side in one
# run, medians. The measuring part lives in bench/channel.sh (one PKI and
# server set-up for both). Results go to wiki/Performance.md.
#
#   BUILD=/abs/build bench/tls_resume.sh     (make bench-tls)
#   HS_RUNS=5 HS_SECONDS=4 bench/tls_resume.sh
set -euo pipefail
PART=resume exec "$(dirname "$0")/channel.sh"
