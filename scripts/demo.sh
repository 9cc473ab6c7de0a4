#!/usr/bin/env bash
# tandem demo: a throw-away fleet of three hosts on 127.0.0.1, driven by the real CLI.
#
#   scripts/demo.sh [--build DIR] [--dir DIR]
#
#   --build DIR   build directory holding tandem, tandem-updater, tandem-agent
#                 (default: $TANDEM_BUILD, else ./build); `make release` builds into it
#   --dir DIR     where the whole fleet lives (default: a new mktemp directory); must
#                 not exist, be empty, or be an earlier demo directory (then replaced)
#
# `make demo` installs the dependencies, builds, and runs this script. Everything it
# creates (master home, bundles, install dirs, logs, release tarballs) is under DIR.
# Every process it starts is recorded in DIR/pids ("updater NAME PID" when started, then
# "agent NAME PID", and "stray - PID" for any other process running from DIR, at shutdown)
# and stopped at the end, on an error and on Ctrl-C; the file is then renamed pids.stopped.
# Exit status: 0 when every step behaved as expected, 1 otherwise, 130 when interrupted.

set -u -o pipefail
# shellcheck disable=SC2317 # functions called from traps

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TANDEM_BUILD:-$ROOT/build}
DIR=
HOSTS=(host1 host2 host3)
DEADLINE=${DEMO_DEADLINE:-60}   # seconds allowed for any one daemon to come up or go away

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=${2:?--build needs a directory}; shift 2 ;;
	--dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "demo: no build directory '$BUILD' (run make)" >&2; exit 1; }
T=$BUILD/tandem
# How a binary of the build is shown in commands: relative to the working directory when under it.
case $BUILD/ in "$PWD"/*) BUILD_SHOWN=${BUILD#"$PWD"/}/ ;; *) BUILD_SHOWN=$BUILD/ ;; esac
for b in tandem tandem-updater tandem-agent; do
	[ -x "$BUILD/$b" ] || { echo "demo: $BUILD/$b is not built (run make)" >&2; exit 1; }
done

# ---- output helpers ----
if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B='' G='' R='' N=''; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s==> %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
ok() { printf '    %sok:%s %s\n' "$G" "$N" "$*"; }
fail() { printf '%sdemo: FAILED: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

# Print a command as run (with the master home shortened to $H), run it with its
# output shown and kept in $OUT; its exit status is in $RC.
OUT=
RC=0
show() {
	local shown="\$" a
	for a in "${@:1:1}"; do shown+=" ${a/#"$BUILD"\//$BUILD_SHOWN}"; done
	for a in "${@:2}"; do
		a=${a//"$HOME_DIR"/\$H}
		a=${a//"$DIR"/\$D}
		shown+=" $a"
	done
	printf '    %s\n' "$shown"
	OUT=$DIR/out.$STEP.log
	# Shown as it comes (progress lines); its informational log lines stay in the file.
	"$@" 2>&1 | tee "$OUT" | awk '!/^tandem: / || /^tandem: (error|warn): / { print; fflush() }' |
		sed -u 's/^/      /'
	RC=${PIPESTATUS[0]}
}
expect_rc() { [ "$RC" -eq "$1" ] || fail "step $STEP: exit status $RC, expected $1"; }
expect_out() { grep -Eq -- "$1" "$OUT" || fail "step $STEP: output lacks /$1/"; }
# The table row of each host (first column) must match REGEX.
expect_rows() {
	local rx=$1 h
	shift
	for h in "$@"; do
		grep -Eq -- "^${h}[[:space:]].*$rx" "$OUT" || fail "step $STEP: the row of $h does not match /$rx/"
	done
}

# The version of the release an updater has active, from its install dir (wiki/Updater.md).
active_version() {
	local f=$DIR/$1/install/releases/active/release.json
	[ -f "$f" ] || { echo none; return; }
	sed -n 's/.*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$f"
}
expect_version() {
	local h v
	v=$1; shift
	for h in "$@"; do
		[ "$(active_version "$h")" = "$v" ] || fail "step $STEP: $h has $(active_version "$h") active, expected $v"
	done
	ok "$* active: $v (from each install dir's releases/active/release.json)"
}

# ---- the demo directory ----
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/tandem-demo.XXXXXX") || exit 1
elif [ -e "$DIR" ]; then
	if [ -e "$DIR/.tandem-demo" ]; then
		if [ -f "$DIR/pids" ]; then
			echo "demo: $DIR holds an earlier demo whose processes may still run ($DIR/pids); remove it first" >&2
			exit 1
		fi
		rm -rf "$DIR"
	elif [ -n "$(ls -A "$DIR")" ]; then
		echo "demo: $DIR exists and is not empty (and not an earlier demo)" >&2
		exit 1
	fi
fi
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd) || exit 1
: >"$DIR/.tandem-demo"
HOME_DIR=$DIR/master
PIDS=$DIR/pids
declare -A UPD_PID=() AGENT_PORT=() UPD_PORT=()

# ---- stopping everything we started ----
# Each updater runs in its own session (setsid), so its pid is its process group.
# It leaves its agent running on exit unless its configuration says
# stop_agent_on_exit; the agent runs in a session of its own, recorded by the
# updater in INSTALL_DIR/state/agent.json with its start time, so we stop it by
# that record, checking the start time so a reused pid is never signalled.
proc_start() { # starttime (field 22 of /proc/PID/stat) or nothing
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	# shellcheck disable=SC2086 # split the fields on purpose
	set -- $s
	echo "${20}"
}
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
stop_group() { # PGID: SIGTERM the group, poll until it is gone, SIGKILL at the deadline
	local pg=$1 end
	kill -TERM -- "-$pg" 2>/dev/null || return 0
	end=$((SECONDS + DEADLINE))
	while group_alive "$pg" && [ $SECONDS -lt $end ]; do sleep 0.1; done # poll interval
	if group_alive "$pg"; then
		echo "demo: process group $pg did not stop within ${DEADLINE}s; SIGKILL" >&2
		kill -KILL -- "-$pg" 2>/dev/null
	fi
}
stop_pid() { # PID: like stop_group, for a process that may not lead a group
	local pid=$1 end
	kill -TERM "$pid" 2>/dev/null || return 0
	end=$((SECONDS + DEADLINE))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done # poll interval
	kill -KILL "$pid" 2>/dev/null
	return 0
}
agent_of() { # NAME -> "PID" of the agent its updater started, if that process still exists
	local rec pid st
	rec=$(cat "$DIR/$1/install/state/agent.json" 2>/dev/null) || return 0
	pid=$(printf '%s' "$rec" | sed -n 's/.*"pid"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
	st=$(printf '%s' "$rec" | sed -n 's/.*"start_time"[[:space:]]*:[[:space:]]*"\([0-9]*\)".*/\1/p')
	[ -n "$pid" ] && [ -n "$st" ] && [ "$(proc_start "$pid")" = "$st" ] && echo "$pid"
}
under_dir() { # pids of live processes whose executable lies under $DIR (the agents run from there)
	# One find reads every process's link (a readlink per process forked twice:
	# seconds of CPU on a busy machine); a process that exits meanwhile is skipped.
	local p exe
	while read -r p exe; do
		case $exe in "$DIR"/*) echo "${p#/proc/}" ;; esac
	done < <(find /proc/[0-9]*/exe -maxdepth 0 -printf '%h %l\n' 2>/dev/null)
}
CLEANED=0
cleanup() {
	local h pid left st bad=0
	[ $CLEANED -eq 1 ] && return
	CLEANED=1
	trap '' INT TERM PIPE
	[ ${#UPD_PID[@]} -gt 0 ] || return 0
	printf '\n%s==> stopping the fleet%s\n' "$B" "$N"
	# The updaters first (in-flight requests get their grace), so none starts an agent afterwards.
	for h in "${!UPD_PID[@]}"; do kill -TERM -- "-${UPD_PID[$h]}" 2>/dev/null; done
	for h in "${!UPD_PID[@]}"; do
		stop_group "${UPD_PID[$h]}"
		wait "${UPD_PID[$h]}" 2>/dev/null
		st=$?
		if [ $st -ne 0 ]; then
			echo "demo: the updater of $h exited with status $st (see $DIR/$h/updater.err)" >&2
			bad=1
		fi
	done
	# Then the agent each one recorded (the bundle's updater.conf leaves it running on exit).
	for h in "${HOSTS[@]}"; do
		pid=$(agent_of "$h")
		[ -n "$pid" ] || continue
		echo "agent $h $pid" >>"$PIDS"
		stop_group "$pid"
	done
	# Anything else still running from the demo directory (an agent spawned but not yet recorded).
	for pid in $(under_dir); do
		echo "stray - $pid" >>"$PIDS"
		stop_pid "$pid"
	done
	left=$(under_dir)
	if [ -n "$left" ]; then
		echo "demo: still running from $DIR: pids" $left >&2
		return 1
	fi
	say "every updater and agent started by the demo has stopped (recorded in $PIDS.stopped)"
	mv "$PIDS" "$PIDS.stopped"
	return $bad
}
on_exit() {
	local rc=$?
	cleanup || rc=1
	if [ $rc -eq 0 ]; then
		printf '\n%sdemo: every step behaved as expected.%s Files, logs and outputs: %s\n' "$G" "$N" "$DIR"
	else
		printf '\n%sdemo: exit status %d.%s Files, logs and outputs: %s\n' "$R" "$rc" "$N" "$DIR" >&2
	fi
	exit $rc
}
trap on_exit EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM HUP

free_ports() { # N distinct currently free TCP ports on 127.0.0.1
	/usr/bin/python3 - "$1" <<-'EOF'
	import socket, sys
	socks = []
	for _ in range(int(sys.argv[1])):
	    s = socket.socket()
	    s.bind(("127.0.0.1", 0))
	    socks.append(s)
	print(" ".join(str(s.getsockname()[1]) for s in socks))
	EOF
}

release() { # VERSION KIND OUT: make release into our build, quietly; prints "SHA256  FILE"
	local san=0
	grep -q __asan_ "$BUILD/libtandem.a" && san=1
	say "\$ make release VERSION=$1$([ "$2" = good ] || echo " RELEASE_KIND=$2") RELEASE_OUT=${3/#"$DIR"/\$D}"
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		make -s -C "$ROOT" BUILD="$BUILD" SAN=$san VERSION="$1" RELEASE_KIND="$2" \
		RELEASE_OUT="$3" release >"$DIR/make-release-$1.log" 2>&1 ||
		{ cat "$DIR/make-release-$1.log" >&2; fail "make release VERSION=$1 RELEASE_KIND=$2"; }
	say "$(tail -1 "$DIR/make-release-$1.log" | sed "s|$DIR|\$D|")"
}

printf '%standem demo%s: a throw-away fleet of %d hosts on 127.0.0.1\n' "$B" "$N" ${#HOSTS[@]}
say "D=$DIR      (everything lives here)"
say "H=$HOME_DIR  (the master's home: CA, registry, bundles)"
say "binaries: $BUILD"

# ---------------------------------------------------------------- 1. PKI
step "Create the fleet's certificate authority and the master's client certificate."
show "$T" --home "$HOME_DIR" pki init
expect_rc 0

# ---------------------------------------------------------------- 2. enroll
step "Enroll ${#HOSTS[@]} hosts: each gets an agent and an updater certificate and a bundle with ready configs."
read -r -a PORTS <<<"$(free_ports $((2 * ${#HOSTS[@]})))" || fail "no free ports"
i=0
for h in "${HOSTS[@]}"; do
	AGENT_PORT[$h]=${PORTS[$i]}
	UPD_PORT[$h]=${PORTS[$((i + 1))]}
	i=$((i + 2))
	mkdir -p "$DIR/$h"
	show "$T" --home "$HOME_DIR" swarm enroll "$h" --address 127.0.0.1 \
		--agent-port "${AGENT_PORT[$h]}" --updater-port "${UPD_PORT[$h]}" --updater \
		--out "$DIR/$h/bundle"
	expect_rc 0
	[ -f "$DIR/$h/bundle/updater.conf" ] || fail "no updater.conf in $h's bundle ($DIR/$h/bundle)"
done
show "$T" --home "$HOME_DIR" swarm list
expect_rc 0

# ---------------------------------------------------------------- 3. start the hosts
step "Start each host's tandem-updater from its bundle (it will run the agent once a release is installed)."
for h in "${HOSTS[@]}"; do
	say "\$ setsid ${BUILD_SHOWN}tandem-updater --config \$D/$h/bundle/updater.conf --install-dir \$D/$h/install &"
	mkdir -p "$DIR/$h/install"
	setsid "$BUILD/tandem-updater" --config "$DIR/$h/bundle/updater.conf" \
		--install-dir "$DIR/$h/install" \
		</dev/null >"$DIR/$h/updater.out" 2>"$DIR/$h/updater.err" &
	UPD_PID[$h]=$!
	echo "updater $h ${UPD_PID[$h]}" >>"$PIDS"
done
for h in "${HOSTS[@]}"; do
	end=$((SECONDS + DEADLINE))
	until grep -q '^LISTENING port=' "$DIR/$h/updater.out" 2>/dev/null; do
		if ! kill -0 "${UPD_PID[$h]}" 2>/dev/null; then
			cat "$DIR/$h/updater.err" >&2
			fail "the updater of $h exited before listening"
		fi
		[ $SECONDS -lt $end ] || fail "the updater of $h did not listen within ${DEADLINE}s"
		sleep 0.1 # poll interval
	done
	ok "$h: updater pid ${UPD_PID[$h]} listening on 127.0.0.1:${UPD_PORT[$h]} (log: \$D/$h/updater.err)"
done

# ---------------------------------------------------------------- 4. release 1.0.0
step "Build and pack release 1.0.0 of the agent (make release: a deterministic tarball and its sha256)."
mkdir -p "$DIR/releases"
R1=$DIR/releases/tandem-agent-1.0.0.tar.gz
release 1.0.0 good "$R1"

step "Push 1.0.0 to every host: each updater installs it, starts the agent and probes it."
show "$T" --home "$HOME_DIR" swarm update --all --release "$R1"
expect_rc 0
expect_rows 'updated.*1\.0\.0' "${HOSTS[@]}"
expect_version 1.0.0 "${HOSTS[@]}"

step "Fleet status: every host reachable, 1.0.0 active, agent running."
show "$T" --home "$HOME_DIR" swarm status --all
expect_rc 0
expect_rows '[[:space:]]1\.0\.0[[:space:]]' "${HOSTS[@]}"

step "The same from the wire, as wiki/Operations.md shows: host1's updater /health, asked with curl and the master's certificate."
show curl -sS --max-time 30 --cacert "$HOME_DIR/ca/ca.crt" --cert "$HOME_DIR/master/master.crt" \
	--key "$HOME_DIR/master/master.key" "https://127.0.0.1:${UPD_PORT[host1]}/health"
expect_rc 0
expect_out '"status":"ok"'
expect_out '"role":"updater"'

# ---------------------------------------------------------------- 5. broken release
step "Build release 2.0.0 deliberately broken: its agent exits as soon as it starts (RELEASE_KIND=exit-at-once)."
R2=$DIR/releases/tandem-agent-2.0.0-exit-at-once.tar.gz
release 2.0.0 exit-at-once "$R2"

step "Push the broken 2.0.0 to every host. Every update is a rollout: one canary host first; its probe fails, its updater restores 1.0.0 by itself, and the rollout halts before any other host gets 2.0.0 (exit status 1)."
show "$T" --home "$HOME_DIR" swarm update --all --release "$R2"
expect_rc 1
expect_out 'halted \(0 of 3 updated\)'
[ "$(grep -Ec '^host[0-9]+[[:space:]].*rolled_back' "$OUT")" -eq 1 ] ||
	fail "step $STEP: not exactly one host (the canary) rolled back"
[ "$(grep -Ec '^host[0-9]+[[:space:]].*pending' "$OUT")" -eq 2 ] ||
	fail "step $STEP: the two other hosts were not left untouched (pending)"
ok "the canary rolled back, the two other hosts never got 2.0.0"
# The canary is the first host of the rollout's own pseudo-random order.
CANARY=$(grep -E '^host[0-9]+[[:space:]].*rolled_back' "$OUT" | awk '{print $1; exit}')
expect_version 1.0.0 "${HOSTS[@]}"
ROLLOUT=$(sed -n 's/^rollout \([0-9a-f]\{16\}\): halted.*/\1/p' "$OUT" | head -n 1)
[ -n "$ROLLOUT" ] || fail "step $STEP: no rollout id in the output"

step "The halted rollout keeps its plan and hosts until the operator decides: look at it, then end it."
show "$T" --home "$HOME_DIR" swarm rollout status "$ROLLOUT"
expect_rc 0
expect_out 'state: halted'
show "$T" --home "$HOME_DIR" swarm rollout abort "$ROLLOUT"
expect_rc 0
expect_out 'aborted'

step "Fleet status after the failed push: still 1.0.0 everywhere."
show "$T" --home "$HOME_DIR" swarm status --all
expect_rc 0
expect_rows '[[:space:]]1\.0\.0[[:space:]]' "${HOSTS[@]}"

# ---------------------------------------------------------------- 6. manual rollback
step "Build a good release 1.1.0 and push it to host1 only."
R3=$DIR/releases/tandem-agent-1.1.0.tar.gz
release 1.1.0 good "$R3"
show "$T" --home "$HOME_DIR" swarm update --host host1 --release "$R3"
expect_rc 0
expect_rows 'updated.*1\.1\.0' host1
expect_version 1.1.0 host1
expect_version 1.0.0 host2 host3

step "Roll host1 back by hand: the updater swaps in its previous release (1.0.0) and probes it."
show "$T" --home "$HOME_DIR" swarm rollback --host host1
expect_rc 0
expect_version 1.0.0 host1

step "host1's history: the install of 1.0.0, 1.1.0 and the manual rollback."
show "$T" --home "$HOME_DIR" swarm history --host host1
expect_rc 0
expect_out '1\.1\.0'
expect_out 'rollback'

step "The canary's history ($CANARY): the failed 2.0.0, rolled back by its own updater."
show "$T" --home "$HOME_DIR" swarm history --host "$CANARY"
expect_rc 0
expect_out '2\.0\.0'
expect_out 'rolled_back'

step "Fleet status at the end."
show "$T" --home "$HOME_DIR" swarm status --all
expect_rc 0
expect_rows '[[:space:]]1\.0\.0[[:space:]]' "${HOSTS[@]}"
exit 0
