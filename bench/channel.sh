#!/bin/bash
# Secure-channel benchmarks (not tests): mTLS handshakes per second, upload
# throughput through tandem-testd (raw and multipart, 200 MB) and the
# server's peak RSS during that upload. Several runs, medians printed.
# Results and the machine go to wiki/Performance.md ("Secure channel").
#
#   BUILD=/abs/build bench/channel.sh        (make bench sets BUILD)
#   RUNS=5 HS_SECONDS=4 UPLOAD_MB=200 bench/channel.sh
#   PART=resume bench/channel.sh             only full vs resumed handshakes
#                                            (bench/tls_resume.sh, make bench-tls)
set -euo pipefail

BUILD=${BUILD:-$(pwd)/build}
RUNS=${RUNS:-5}
HS_RUNS=${HS_RUNS:-3}
HS_SECONDS=${HS_SECONDS:-4}
UPLOAD_MB=${UPLOAD_MB:-200}
PART=${PART:-all}
TESTD=$BUILD/tests/tandem-testd
TESTC=$BUILD/tests/tandem-testc
HS=$BUILD/bench/channel_hs
for b in "$TESTD" "$TESTC" "$HS"; do
	[ -x "$b" ] || { echo "channel.sh: $b not built (make BUILD=... all bench)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-bench-channel.XXXXXX")
TESTD_PID=
cleanup() {
	if [ -n "$TESTD_PID" ]; then kill "$TESTD_PID" 2>/dev/null || true; wait "$TESTD_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
	if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_ns() { date +%s%N; }

# --- a throw-away PKI (openssl CLI, ECDSA P-256 like `tandem pki init`) ---
pki() {
	local d=$WORK/pki
	mkdir -p "$d"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -out "$d/ca.crt" -days 30 -subj "/CN=Bench CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	leaf server "/CN=localhost/OU=agent" "serverAuth,clientAuth" "DNS:localhost,IP:127.0.0.1"
	leaf master "/CN=tandem-master/OU=master" "clientAuth" ""
}
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

# --- tandem-testd: started as a coprocess, its READY line read (no polling) ---
PORT=
start_testd() {
	coproc TESTD_CO { exec env "$TESTD" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/server.crt" \
		--key "$WORK/pki/server.key" --max-conns 512 --max-per-ip 512 2>>"$WORK/testd.log"; }
	TESTD_PID=$TESTD_CO_PID
	local line
	if ! read -r -t 10 -u "${TESTD_CO[0]}" line || [[ $line != READY\ port=* ]]; then
		echo "channel.sh: tandem-testd did not start:" >&2; tail -5 "$WORK/testd.log" >&2; exit 1
	fi
	PORT=${line#READY port=}
}
stop_testd() {
	kill -TERM "$TESTD_PID"
	wait "$TESTD_PID" 2>/dev/null || true
	TESTD_PID=
}
# CPU seconds (user+system) used so far by process $1.
cpu_s() {
	awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / tck }' "/proc/$1/stat"
}
testc() {
	"$TESTC" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/master.crt" --key "$WORK/pki/master.key" "$@"
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "== $(uname -sr), $(dpkg-query -W -f='mbedTLS ${Version}' libmbedtls-dev 2>/dev/null || true)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every number)"
pki

# --- full vs resumed handshakes, side by side: runs alternate, medians ---
# The client is the master's (common/httpc + common/tls): without --resume its
# context keeps no session; with it the context keeps the ticket per peer as
# the master does for a command, so every connection after the first resumes.
# Each connection also sends one GET /whoami, like a request of the master.
start_testd
declare -A RS_S RS_C RS_R
for _ in $(seq "$HS_RUNS"); do
	for mode in full resumed; do
		flag=()
		[ "$mode" = resumed ] && flag=(--resume)
		c0=$(cpu_s "$TESTD_PID")
		out=$("$HS" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/master.crt" --key "$WORK/pki/master.key" \
			--threads 1 --seconds "$HS_SECONDS" --get /whoami "${flag[@]}" "127.0.0.1:$PORT")
		c1=$(cpu_s "$TESTD_PID")
		n=$(sed -n 's/.*handshakes=\([0-9]*\).*/\1/p' <<<"$out")
		RS_S[$mode]+="$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }') "
		RS_C[$mode]+="$(sed -n 's/.*client_cpu_ms_per_hs=\([0-9.]*\).*/\1/p' <<<"$out") "
		RS_R[$mode]+="$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$out") "
		echo "   $mode: $out server_cpu_ms_per_conn=$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')"
	done
done
for mode in full resumed; do
	echo "connection + GET, $mode handshake: median $(tr ' ' '\n' <<<"${RS_R[$mode]}" | grep . | median)/s," \
		"CPU per connection: server $(tr ' ' '\n' <<<"${RS_S[$mode]}" | grep . | median) ms," \
		"client (master) $(tr ' ' '\n' <<<"${RS_C[$mode]}" | grep . | median) ms"
done
stop_testd
if [ "$PART" = resume ]; then
	echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# --- handshakes ---
start_testd
for threads in 1 2; do
	rates=()
	cpus=()
	ccpus=()
	for _ in $(seq "$HS_RUNS"); do
		c0=$(cpu_s "$TESTD_PID")
		out=$("$HS" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/master.crt" --key "$WORK/pki/master.key" \
			--threads "$threads" --seconds "$HS_SECONDS" "127.0.0.1:$PORT")
		c1=$(cpu_s "$TESTD_PID")
		n=$(sed -n 's/.*handshakes=\([0-9]*\).*/\1/p' <<<"$out")
		rates+=("$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$out")")
		cpus+=("$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.2f\n", (b - a) * 1000 / n }')")
		ccpus+=("$(sed -n 's/.*client_cpu_ms_per_hs=\([0-9.]*\).*/\1/p' <<<"$out")")
		echo "   threads=$threads: $out server_cpu_ms_per_hs=${cpus[-1]}"
	done
	echo "handshakes full, our client, $threads thread(s): median $(printf '%s\n' "${rates[@]}" | median)/s," \
		"CPU per handshake: server $(printf '%s\n' "${cpus[@]}" | median) ms," \
		"client $(printf '%s\n' "${ccpus[@]}" | median) ms"
done
# openssl s_time, for comparison: the same server, another client.
for mode in new reuse; do
	rates=()
	for _ in $(seq "$HS_RUNS"); do
		out=$(openssl s_time -connect "127.0.0.1:$PORT" -cert "$WORK/pki/master.crt" \
			-key "$WORK/pki/master.key" -CAfile "$WORK/pki/ca.crt" "-$mode" -time "$HS_SECONDS" 2>&1 </dev/null |
			sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real seconds.*/\1 \2/p')
		rates+=("$(awk '{ printf "%.1f\n", $1 / $2 }' <<<"$out")")
	done
	echo "handshakes $mode, openssl s_time client: median $(printf '%s\n' "${rates[@]}" | median)/s (runs: ${rates[*]})"
done
stop_testd

# --- uploads: a fresh server per run so VmHWM is this upload's peak ---
FILE=$WORK/upload.bin
head -c "$((UPLOAD_MB * 1024 * 1024))" /dev/urandom >"$FILE"
WANT=$(sha256sum "$FILE" | cut -d' ' -f1)
for kind in raw multipart; do
	rates=()
	rss=()
	scpu=()
	ccpu=()
	for _ in $(seq "$RUNS"); do
		start_testd
		s0=$(cpu_s "$TESTD_PID")
		t0=$(now_ns)
		TIMEFORMAT='%U %S'
		if [ "$kind" = raw ]; then
			{ time testc --data-file "$FILE" "127.0.0.1:$PORT" /upload >"$WORK/out" ; } 2>"$WORK/ctime"
		else
			{ time testc --multipart-file "$FILE" --field sha=bench "127.0.0.1:$PORT" /form >"$WORK/out" ; } 2>"$WORK/ctime"
		fi
		t1=$(now_ns)
		s1=$(cpu_s "$TESTD_PID")
		out=$(cat "$WORK/out")
		scpu+=("$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f\n", b - a }')")
		ccpu+=("$(awk '{ printf "%.2f\n", $1 + $2 }' "$WORK/ctime")")
		grep -q "^status=200" <<<"$out" && grep -q "$WANT" <<<"$out" ||
			{ echo "channel.sh: $kind upload failed or digest mismatch: $out" >&2; exit 1; }
		hwm=$(testc "127.0.0.1:$PORT" /stats | sed -n 's/.*"vmhwm_kb":\([0-9]*\).*/\1/p')
		stop_testd
		rates+=("$(awk -v ns="$((t1 - t0))" -v mb="$UPLOAD_MB" 'BEGIN { printf "%.1f\n", mb / (ns / 1e9) }')")
		rss+=("$hwm")
		echo "   $kind: ${rates[-1]} MiB/s, server VmHWM ${hwm} kB, CPU s: server ${scpu[-1]} client ${ccpu[-1]}"
	done
	echo "upload $kind ${UPLOAD_MB} MiB: median $(printf '%s\n' "${rates[@]}" | median) MiB/s," \
		"server peak RSS median $(printf '%s\n' "${rss[@]}" | median) kB (max $(printf '%s\n' "${rss[@]}" | sort -n | tail -1) kB)," \
		"CPU s per upload: server $(printf '%s\n' "${scpu[@]}" | median), client $(printf '%s\n' "${ccpu[@]}" | median)"
done
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
