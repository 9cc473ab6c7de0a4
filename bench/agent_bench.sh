#!/bin/bash
# tandem-agent benchmarks (not tests): idle RSS of a freshly started agent,
# GET /health requests per second over keep-alive mutual TLS (1 and 4
# client connections), and the agent's RSS after that load. Several runs,
# medians printed. Results and the machine go to wiki/Performance.md ("Agent").
#
#   BUILD=/abs/build bench/agent_bench.sh       (make bench sets BUILD)
#   RUNS=5 SECONDS_PER_RUN=5 bench/agent_bench.sh
set -euo pipefail

BUILD=${BUILD:-$(pwd)/build}
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
AGENT=$BUILD/tandem-agent
CLIENT=$BUILD/bench/agent_health
for b in "$AGENT" "$CLIENT"; do
	[ -x "$b" ] || { echo "agent_bench.sh: $b not built (make BUILD=... all bench)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-bench-agent.XXXXXX")
AGENT_PID=
cleanup() {
	if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
	if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- a throw-away PKI (openssl CLI, ECDSA P-256 like `tandem pki init`) ---
leaf() {
	local d=$WORK/pki name=$1 subj=$2 eku=$3 san=$4
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$name.key" 2>/dev/null
	openssl req -new -key "$d/$name.key" -out "$d/$name.csr" -subj "$subj" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[ -n "$san" ] && echo "subjectAltName=$san"
	} >"$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-days 30 -sha256 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
}
mkdir -p "$WORK/pki"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/pki/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/pki/ca.key" -out "$WORK/pki/ca.crt" -days 30 -subj "/CN=Bench CA" \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
leaf host1 "/CN=host1/OU=agent" "serverAuth,clientAuth" "DNS:localhost,IP:127.0.0.1"
leaf updater "/CN=updater@host1/OU=updater" "clientAuth" ""
cat >"$WORK/agent.conf" <<CONF
ca = pki/ca.crt
cert = pki/host1.crt
key = pki/host1.key
listen = 127.0.0.1:0
log_level = warn
log_file = agent.log
max_conns_per_ip = 64
CONF

# --- the agent: started as a coprocess, its --ready-fd line read (no polling) ---
PORT=
start_agent() {
	coproc AGENT_CO { exec "$AGENT" --config "$WORK/agent.conf" --ready-fd 1; }
	AGENT_PID=$AGENT_CO_PID
	local line
	if ! read -r -t 10 -u "${AGENT_CO[0]}" line || [[ $line != READY\ port=* ]]; then
		echo "agent_bench.sh: tandem-agent did not start:" >&2; tail -5 "$WORK/agent.log" >&2; exit 1
	fi
	PORT=${line#READY port=}
}
stop_agent() {
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

echo "machine: $(nproc) cores, $(awk '/model name/ { $1=$2=$3=""; print; exit }' /proc/cpuinfo | sed 's/^ *//'), $(uname -r)"
echo "agent: $("$AGENT" --version)"

idle=() ; anon=() ; rps1=() ; rps4=() ; after=() ; hwm=()
for i in $(seq 1 "$RUNS"); do
	start_agent
	idle+=("$(status_kb "$AGENT_PID" VmRSS)")
	anon+=("$(status_kb "$AGENT_PID" RssAnon)")
	out1=$("$CLIENT" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/updater.crt" --key "$WORK/pki/updater.key" \
		--threads 1 --seconds "$SECONDS_PER_RUN" "127.0.0.1:$PORT")
	out4=$("$CLIENT" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/updater.crt" --key "$WORK/pki/updater.key" \
		--threads 4 --seconds "$SECONDS_PER_RUN" "127.0.0.1:$PORT")
	echo "run $i: idle ${idle[-1]} kB (anon ${anon[-1]} kB); 1 conn: $out1; 4 conns: $out4"
	rps1+=("$(sed -E 's/.*rate=([0-9.]+).*/\1/' <<<"$out1")")
	rps4+=("$(sed -E 's/.*rate=([0-9.]+).*/\1/' <<<"$out4")")
	after+=("$(status_kb "$AGENT_PID" VmRSS)")
	hwm+=("$(status_kb "$AGENT_PID" VmHWM)")
	stop_agent
done
echo "== medians of $RUNS runs"
echo "idle RSS after start:            $(printf '%s\n' "${idle[@]}" | median) kB"
echo "  of which anonymous (RssAnon):  $(printf '%s\n' "${anon[@]}" | median) kB"
echo "GET /health, 1 keep-alive conn:  $(printf '%s\n' "${rps1[@]}" | median) req/s"
echo "GET /health, 4 keep-alive conns: $(printf '%s\n' "${rps4[@]}" | median) req/s"
echo "RSS after the load (idle again): $(printf '%s\n' "${after[@]}" | median) kB"
echo "peak RSS (VmHWM):                $(printf '%s\n' "${hwm[@]}" | median) kB"
