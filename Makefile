# tandem — one entry point: build, check, lint, fuzz, bench.
#
#   make deps        install the Debian packages we need (idempotent, quiet)
#   make             libtandem + binaries into build/
#   make check       deps, build, unit + e2e tests, the ASan/UBSan run, lint, fuzz smoke
#   make check-asan  unit + e2e tests built with ASan+UBSan, without ASAN_E2E_SKIP
#                    (make check-asan-full: every e2e test)
#   make check-tsan  the threaded unit tests + e2e paths under ThreadSanitizer (build-tsan/)
#   make chaos       the chaos test (random pushes, rollbacks, kill -9) for CHAOS_SECONDS (600)
#   make lint        cppcheck + banned-function check
#   make fuzz        libFuzzer harnesses (clang) into build-fuzz/
#   make bench       benchmarks (results belong in wiki/Performance.md)
#   make bench-rollout  the rollout scale benchmark alone (1 000 and 10 000 hosts)
#   make bench-tls   TLS session resumption: full vs resumed handshake CPU
#   make bench-delta planned (delta) push vs full push of a ~200 MB release
#   make bench-digest SHA-256 MB/s of each implementation (mbedTLS, SHA-NI) side by side
#   make demo        a demo fleet of three hosts on 127.0.0.1 (scripts/demo.sh)
#   make release     an agent release tarball: VERSION=x [RELEASE_KIND=...] (wiki/Agent.md)
#                    [RELEASE_UPDATER_KIND=...] (wiki/Self-Update.md)

DEFAULT_VERSION := 0.1.0
VERSION ?= $(DEFAULT_VERSION)
SAN     ?= 0
# pytest with bytecode caching on even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE): otherwise every pytest-xdist worker of every e2e
# run parses and rewrites all test modules again (about 1.1 s of CPU per
# process; __pycache__/ is ignored by git).
PYTEST  ?= env PYTHONDONTWRITEBYTECODE= /usr/bin/python3 -m pytest
JOBS    ?= 2

# SAN=1: ASan+UBSan into build-asan/; SAN=thread: ThreadSanitizer into build-tsan/.
ifeq ($(SAN),1)
BUILD   ?= build-asan
else ifeq ($(SAN),thread)
BUILD   ?= build-tsan
else
BUILD   ?= build
endif
# One spelling per tree: the tests pass BUILD=$PWD/build, the gate BUILD=build.
# Objects name their target in their .d files, so two spellings of one tree
# would be two sets of targets over the same files (recompiles, stale headers):
# a BUILD inside this directory is made relative, one elsewhere stays absolute.
override BUILD := $(patsubst $(CURDIR)/%,%,$(abspath $(BUILD)))

CC      ?= cc
# Parse-time cost: every make reads this file (the gate starts ~235 makes,
# `make release` two: the one that takes the lock and the one under it), and
# on a VM each process started costs milliseconds. So what needs a process is computed when a goal first needs
# it and once per make ($(call once,...) below): pkg-config when a recipe
# compiles or links, git for the packages' dates, grep for a broken release
# kind and for VERSION in the make that builds a release or a package. The
# rest is make's own ($(wildcard), string functions), no process.
# $(call once,VAR,TEXT): define VAR (recursive) as TEXT, expanded on first use
# and kept as a simple variable from then on.
once = $(eval $(1) = $$(eval $(1) := $(2))$$($(1)))
# A make whose only goal is `release` only takes the release lock and runs
# the make that does the work (see release:): it needs no dependency file.
RELEASE_OUTER := $(if $(filter-out release,$(MAKECMDGOALS)),,$(filter release,$(MAKECMDGOALS)))
# $(call deps_in,DIRS): the .d files up to four levels below DIRS (an object
# mirrors its source's path: tests/unit/x.c -> obj/tests/unit/x.d,
# kind/agent-KIND/agent/x.d), read by make's $(wildcard), no find.
deps_in = $(wildcard $(foreach l,* */* */*/* */*/*/*,$(addsuffix /$(l).d,$(1))))
# $(call on_path,PROGRAM): PROGRAM's path when it is in $PATH (as `command -v`).
on_path = $(firstword $(wildcard $(addsuffix /$(1),$(subst :, ,$(PATH)))))
PKGS    := libmicrohttpd libarchive libcjson sqlite3 libzstd
$(call once,PKG_CFLAGS,$$(shell pkg-config --cflags $$(PKGS) 2>/dev/null))
$(call once,PKG_LIBS,$$(shell pkg-config --libs $$(PKGS) 2>/dev/null))
# mbedTLS 2.28 and http-parser ship no .pc file on Debian 12.
EXTRA_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto -lhttp_parser -lpthread

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wmisleading-indentation -Wnull-dereference \
	-Wconversion -Wno-sign-conversion -Wvla -Wpointer-arith -Wundef \
	-Wcast-align -Wwrite-strings -Wold-style-definition
HARDEN := -fstack-protector-strong -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now

CPPFLAGS += -D_GNU_SOURCE -I. $(PKG_CFLAGS)
# The sanitizer trees keep line tables and inline frames (-g1: what their
# reports print, file:line of every frame) and leave out the types and
# locals (-g) that only a debugger reads. They link with gold (binutils)
# where it is installed: a unit test with the ASan runtime linked in takes
# 0.15 s of CPU to link instead of 0.37 s with ld.bfd. The normal tree's
# programs, which make release and make deb link again and ship, keep -g and
# the default linker.
# wiki/Development.md#build-trees
FAST_LD := $(if $(call on_path,ld.gold),-fuse-ld=gold)
ifeq ($(SAN),1)
CFLAGS  ?= -O1 -g1 -fno-omit-frame-pointer
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The runtimes linked in, not as libasan.so + libubsan.so: the leak check at
# exit scans every loaded module's writable data, and the two shared runtimes
# bring 11.5 MB of their own (page faults on every page, in every process);
# the checks are the same. wiki/Development.md
LDFLAGS += -fsanitize=address,undefined -static-libasan -static-libubsan $(FAST_LD)
else ifeq ($(SAN),thread)
CFLAGS  ?= -O1 -g1 -fno-omit-frame-pointer
CFLAGS  += -fsanitize=thread
LDFLAGS += -fsanitize=thread $(FAST_LD)
else
CFLAGS  ?= -O2 -g
CPPFLAGS += -D_FORTIFY_SOURCE=2
# Its unit tests and test tools, never shipped, link with gold too.
$(BUILD)/tests/%: LDFLAGS += $(FAST_LD)
endif
CFLAGS  += -std=c11 $(WARN) $(HARDEN) -MMD -MP
LDFLAGS += $(HARDEN_LD)
LDLIBS  += $(PKG_LIBS) $(EXTRA_LIBS)

LIB_SRCS   := $(filter-out common/testhook.c,$(wildcard common/*.c pki/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libtandem.a

# Test points (common/testhook.h) live only in test builds: testhook.c is
# compiled twice and every link names one of the two objects, never both;
# libtandem.a holds neither. The trees tests use (build/, build-asan/, ...)
# link TESTHOOK_ON; what `make install`, `make deb` and `make release` ship
# links TESTHOOK_OFF.
TESTHOOK_ON  := $(BUILD)/obj/common/testhook.o
TESTHOOK_OFF := $(BUILD)/obj-shipped/common/testhook.o

# The version (common/version.h) comes from a generated object linked last
# into every program: another VERSION relinks, never recompiles. The programs
# of $(BUILD) link gen/version.o, rewritten only when VERSION differs from
# the one it holds (so they relink exactly then); releases and installed
# binaries link gen/version-VERSION.o, one per version, and leave the
# programs of $(BUILD) alone.
VERSION_RE  := [A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}
# $(call matches,S,ERE): S when all of S matches the extended regular
# expression ERE (one grep, run where a goal asks for the check), else empty.
matches = $(shell printf '%s' '$(1)' | grep -Ex '$(2)')
BUILD_VERSION_OBJ := $(BUILD)/gen/version.o
VERSION_OBJ := $(BUILD)/gen/version-$(VERSION).o
# $(call version_c,VERSION): print the generated source.
version_c = printf '%s' '$(1)' | grep -Eqx '$(VERSION_RE)' || { echo "VERSION=$(1): use 1-64 \
	characters of A-Z a-z 0-9 . + ~ _ -, starting alphanumeric" >&2; exit 1; }; \
	printf '/* Generated by the Makefile for VERSION=%s (common/version.h). */\n\#include %s\n\n%s\n%s\n{\n\treturn "%s";\n}\n' \
	'$(1)' '"common/version.h"' 'const char *' 'tandem_version(void)' '$(1)'

# Objects that concurrent makes may build at the same time (parallel tests
# each running `make release`): compiled under a temporary name, renamed.
# $(1): extra preprocessor flags.
compile_atomic = $(CC) $(CPPFLAGS) $(1) $(CFLAGS) -MF $(@:.o=.d).$$$$.tmp -MT $@ \
	-c -o $@.$$$$.tmp $< && mv -f $(@:.o=.d).$$$$.tmp $(@:.o=.d) && mv -f $@.$$$$.tmp $@

MASTER_SRCS  := $(wildcard master/*.c)
AGENT_SRCS   := $(wildcard agent/*.c)
UPDATER_SRCS := $(wildcard updater/*.c)
LAUNCHER_SRCS := $(wildcard launcher/*.c)

# Each program's modules (everything but its main.c) also form a static
# library, so unit tests can link e.g. updater/store.c without main().
MASTER_LIB   := $(BUILD)/libtandem-master.a
AGENT_LIB    := $(BUILD)/libtandem-agent.a
UPDATER_LIB  := $(BUILD)/libtandem-updater.a
MASTER_MODS  := $(filter-out master/main.c,$(MASTER_SRCS))
AGENT_MODS   := $(filter-out agent/main.c,$(AGENT_SRCS))
UPDATER_MODS := $(filter-out updater/main.c,$(UPDATER_SRCS))

# The launcher (self-update probation, wiki/Self-Update.md) links the updater's modules.
BINS := $(BUILD)/tandem $(BUILD)/tandem-agent $(BUILD)/tandem-updater $(BUILD)/tandem-launcher
PROG_LIBS := $(MASTER_LIB) $(AGENT_LIB) $(UPDATER_LIB)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

# Keep objects of tools and tests: make would otherwise delete them as
# intermediates and relink every run. Named, not every target: a missing
# secondary file does not make its target out of date, which must not happen
# to the version object.
.SECONDARY: $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.o) $(BUILD)/obj/tests/unit/tmpdir.o \
	$(TOOL_SRCS:tests/tools/%.c=$(BUILD)/obj/tests/tools/%.o) \
	$(BENCH_SRCS:bench/%.c=$(BUILD)/obj/bench/%.o)
# Concurrent `make release` runs may compile one version's source at once.
.PRECIOUS: $(BUILD)/gen/version-%.c

.PHONY: all deps check test unit unit-threaded unit-bins e2e check-asan check-asan-full check-tsan lint fuzz fuzz-run bench clean tools
.DEFAULT_GOAL := all
# Every rule here is written out: make's built-in rules only cost time (for
# every header a .d file names, make would look for RCS, SCCS, yacc, ...
# sources to make it from).
MAKEFLAGS += --no-builtin-rules

all: $(LIB) $(BINS) tools

tools: $(TOOL_BINS)

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(TESTHOOK_ON): common/testhook.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DTANDEM_TEST_HOOKS $(CFLAGS) -c -o $@ $<

$(TESTHOOK_OFF): common/testhook.c
	@mkdir -p $(dir $@)
	$(call compile_atomic,)

$(BUILD)/gen/version-%.c:
	@mkdir -p $(dir $@)
	@$(call version_c,$*) > $@.$$$$.tmp && mv -f $@.$$$$.tmp $@

$(BUILD)/gen/version.c: FORCE
	@mkdir -p $(dir $@)
	@$(call version_c,$(VERSION)) > $@.$$$$.tmp && \
	if cmp -s $@.$$$$.tmp $@; then rm -f $@.$$$$.tmp; else mv -f $@.$$$$.tmp $@; fi

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(call compile_atomic,)

FORCE:

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(MASTER_LIB): $(MASTER_MODS:%.c=$(BUILD)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(AGENT_LIB): $(AGENT_MODS:%.c=$(BUILD)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(UPDATER_LIB): $(UPDATER_MODS:%.c=$(BUILD)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/tandem: $(MASTER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB) $(BUILD_VERSION_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-agent: $(AGENT_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB) $(BUILD_VERSION_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-updater: $(UPDATER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB) $(BUILD_VERSION_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-launcher: $(LAUNCHER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(UPDATER_LIB) $(LIB) $(BUILD_VERSION_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the program module libraries before libtandem.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(BUILD)/obj/tests/unit/tmpdir.o $(TESTHOOK_ON) $(PROG_LIBS) $(LIB) $(BUILD_VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(TESTHOOK_ON) $(LIB) $(BUILD_VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TESTHOOK_ON) $(LIB) $(BUILD_VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit-bins: $(UNIT_BINS)

# Unit tests: every test_* binary, JOBS at a time (the crash sweeps fork and
# wait); each one's output is printed whole when it ends (make -O), and any
# failure fails the target.
UNIT_RUNS := $(UNIT_BINS:$(BUILD)/tests/%=unit-run-%)
unit: $(UNIT_BINS)
	@$(MAKE) --no-print-directory -j$(JOBS) -O $(UNIT_RUNS)

unit-run-%: $(BUILD)/tests/%
	@echo "== $<"; $<

# The unit tests that can start a thread: their binary links pthread_create
# (our threads) or MHD_start_daemon (libmicrohttpd's). Read from the linked
# binaries, so a new test lands here by what it links. The others have one
# thread, where ThreadSanitizer has nothing to check.
THREADED_SYMS := pthread_create|MHD_start_daemon
# $(call threaded_tests,BINARIES): the names (test_x) of those that link one.
threaded_tests = for b in $(1); do \
	nm -u $$b | grep -qE ' U ($(THREADED_SYMS))(@|$$)' && echo $${b\#\#*/}; done
unit-threaded: $(UNIT_BINS)
	@runs=$$($(call threaded_tests,$(UNIT_BINS)) | sed 's/^/unit-run-/'); \
	echo "unit-threaded: $$(echo $$runs | wc -w) of $(words $(UNIT_BINS)):" $$(echo $$runs | sed 's/unit-run-//g'); \
	$(MAKE) --no-print-directory -j$(JOBS) -O $$runs

# The e2e tests mostly wait for daemons (deadlines, probes, stability windows),
# so E2E_JOBS pytest-xdist workers run the test files side by side; a file's
# tests stay on one worker in file order, each test has its own tmp_path and
# ports, and the files that share a build-tree output (make deb) are one
# xdist_group (tests/e2e/conftest.py). E2E_JOBS=1: one process. The sanitizer
# runs use E2E_SAN_JOBS: their daemons need more CPU, and fewer workers keep
# the timing-bound tests (probe and stability windows) far from their limits.
E2E_JOBS     ?= 4
E2E_SAN_JOBS ?= 3
e2e_args = -q -p no:cacheprovider --durations=12 \
	$(if $(filter-out 0 1,$(1)),-n $(1) --dist loadgroup)

# E2E_DESELECT: node ids (prefixes) left out of this run.
E2E_DESELECT ?=
e2e: all
	TANDEM_BUILD=$(abspath $(BUILD)) $(PYTEST) $(call e2e_args,$(E2E_JOBS)) \
		$(E2E_DESELECT:%=--deselect %) tests/e2e

# The master's whole rollout crash sweep (make check runs a bounded set of its points).
.PHONY: rollout-sweep
rollout-sweep: all
	TANDEM_BUILD=$(abspath $(BUILD)) TANDEM_ROLLOUT_SWEEP=full $(PYTEST) -q -p no:cacheprovider \
		tests/e2e/test_rollout_crash.py

# The chaos test for longer than make check's 60 s: CHAOS_SECONDS of random
# pushes, rollbacks and kill -9 of the updater and the agent, recovery checked
# after each step and timed; prints the summary (CHAOS_SEED=N replays a
# sequence, CHAOS_REPORT=FILE writes it as JSON). wiki/Updater.md#chaos-test
.PHONY: chaos
CHAOS_SECONDS ?= 600
chaos: all
	TANDEM_BUILD=$(abspath $(BUILD)) CHAOS_SECONDS=$(CHAOS_SECONDS) \
		$(if $(CHAOS_SEED),CHAOS_SEED=$(CHAOS_SEED)) $(if $(CHAOS_REPORT),CHAOS_REPORT=$(CHAOS_REPORT)) \
		$(PYTEST) -q -s -p no:cacheprovider tests/e2e/test_chaos.py

test: unit e2e

# The whole gate, as a newcomer (and CI) runs it. After the normal build its
# stages run CHECK_JOBS at a time, in this order: the ASan stage is the
# longest, so it starts first, beside the normal e2e suite (which starts its
# longest group, make deb + the systemd container, first); the e2e suites
# mostly wait on daemons, so the ASan tree compiles while e2e runs. Each
# stage's output is printed whole when it ends (make -O); any failure fails
# the gate.
CHECK_JOBS ?= 2
CHECK_STAGES := check-asan e2e unit check-tsan lint fuzz-run
# The gate's fuzz stage is a smoke run: every harness replays its corpus and
# mutates for CHECK_FUZZ_SECONDS. Longer campaigns: make fuzz-run
# FUZZ_SECONDS=N (10 by default).
CHECK_FUZZ_SECONDS ?= 2
check: deps
	@t0=$$(date +%s); $(MAKE) -j$(JOBS) all unit-bins && \
	echo "check: build done in $$(( $$(date +%s) - t0 )) s"
	@t0=$$(date +%s); $(MAKE) --no-print-directory -j$(CHECK_JOBS) -O \
		$(CHECK_STAGES:%=check-stage-%) && \
	echo "check: all gates passed; the stages took $$(( $$(date +%s) - t0 )) s"

# One stage of the gate, with its wall time (the numbers in wiki/Performance.md).
check-stage-%:
	@t0=$$(date +%s); $(MAKE) --no-print-directory FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) $* || \
		{ echo "check: $* FAILED after $$(( $$(date +%s) - t0 )) s"; exit 1; }; \
	echo "check: $* passed in $$(( $$(date +%s) - t0 )) s"

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The gate's ASan stage leaves out (the normal e2e stage runs all of it;
# make check-asan-full runs it under ASan; wiki/Development.md says why each):
# - the long crash campaigns and the demo run: they check durability (kill
#   at every step, restart, compare) and the demo script, not memory use;
#   of the other crash sweeps (tests marked sweep) it runs the first and the
#   last point (TANDEM_E2E_SWEEP=smoke): the crash and recovery code runs
#   under ASan on both sides of the commit;
# - the files that test the CLI's tables and the docs (test_cli.py,
#   test_wiki_api.py, test_layout.py): help walks, wiki examples and the
#   layout table; the unit test test_cli walks the tables and the parser in
#   one process under ASan in this same stage;
# - the long scenarios that repeat, many times over, paths other ASan tests
#   run once: the chaos run (pushes, rollbacks, kill -9), the push through a
#   connection flood, the CA rotation and the CRL push across a fleet;
# - test_rollout.py: ten ASan updater+agent pairs for the whole file, the
#   largest piece of the stage's CPU; the rollout's plan and records run
#   under ASan in the unit tests test_rollout_plan and test_registry_rollout,
#   and rollouts over real hosts in test_rollout_idempotent.py and
#   test_rollout_lost.py.
# Every other e2e file, and every file added later, runs under ASan.
ASAN_E2E_SKIP := \
	tests/e2e/test_rollout.py \
	tests/e2e/test_demo.py::test_demo_runs_to_the_end_and_leaves_nothing \
	tests/e2e/test_rollout_crash.py::test_crash_sweep_resume_gives_the_same_rows \
	tests/e2e/test_signing.py::test_crash_sweep_keyring_and_floor \
	tests/e2e/test_cli.py \
	tests/e2e/test_wiki_api.py \
	tests/e2e/test_layout.py \
	tests/e2e/test_chaos.py \
	tests/e2e/test_hostile.py::test_push_through_a_flood \
	tests/e2e/test_certs_ca.py::test_ca_rotation_keeps_the_fleet_working_and_retires_the_old_ca \
	tests/e2e/test_certs_renew.py::test_crl_push_reaches_updater_and_agent

check-asan:
	$(MAKE) -j$(JOBS) SAN=1 BUILD=build-asan all unit-bins
	$(ASAN_ENV) TANDEM_E2E_SWEEP=smoke $(MAKE) SAN=1 BUILD=build-asan E2E_JOBS=$(E2E_SAN_JOBS) \
		E2E_DESELECT="$(ASAN_E2E_SKIP)" test

check-asan-full:
	$(MAKE) -j$(JOBS) SAN=1 BUILD=build-asan all unit-bins
	$(ASAN_ENV) $(MAKE) SAN=1 BUILD=build-asan E2E_JOBS=$(E2E_SAN_JOBS) test

# ThreadSanitizer: the unit tests that can start a thread, and the e2e tests
# of the threaded paths:
# the httpd server under concurrent clients, limits, resets and a graceful
# stop; the updater serving /health during an upload and an install, the
# supervisor restarting a crashing agent, adopting it after a restart, a
# self-update; the master's parallel swarm push; the agent stopping with a
# request in flight. Reports go to files (a daemon's stderr is not always
# read by its test) and any report fails the target. No suppressions: add
# tests/tsan.supp only for a library-internal false positive, with the reason.
TSAN_BUILD := build-tsan
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
	log_path=$(abspath $(TSAN_BUILD))/tsan-report$(if $(wildcard tests/tsan.supp), \
	suppressions=$(abspath tests/tsan.supp))"
TSAN_E2E := \
	tests/e2e/test_channel.py::test_concurrent_clients \
	tests/e2e/test_channel.py::test_graceful_sigterm_finishes_request_in_flight \
	tests/e2e/test_channel.py::test_client_reset_mid_upload \
	tests/e2e/test_channel.py::test_per_ip_connection_limit \
	tests/e2e/test_channel.py::test_total_connection_limit \
	tests/e2e/test_channel.py::test_big_multipart_upload_intact \
	tests/e2e/test_updater.py::test_update_rollback_history \
	tests/e2e/test_updater.py::test_concurrent_push_gets_503 \
	tests/e2e/test_updater.py::test_crash_loop_reported \
	tests/e2e/test_updater.py::test_probe_failure_rolls_back \
	tests/e2e/test_updater.py::test_restart_adopts_agent \
	tests/e2e/test_selfupdate.py::test_good_self_update_keeps_agent \
	tests/e2e/test_swarm.py::test_fleet_update_flow \
	tests/e2e/test_agent.py::test_sigterm_with_request_in_flight
tsan_reports = if ls $(TSAN_BUILD)/tsan-report.* >/dev/null 2>&1; then \
	cat $(TSAN_BUILD)/tsan-report.*; echo "check-tsan: ThreadSanitizer reports above"; exit 1; fi

# It builds only what it runs: the programs and tools the e2e tests start, and
# the unit tests that can start a thread, read (as make unit-threaded does)
# from the normal tree's binaries, which make check has built before its
# stages: the same sources link the same symbols, and the other unit tests
# are never compiled with -fsanitize=thread.
check-tsan:
	$(MAKE) -j$(JOBS) unit-bins
	@tests=$$($(call threaded_tests,$(UNIT_BINS))); \
	echo "check-tsan: $$(echo $$tests | wc -w) of $(words $(UNIT_BINS)) unit tests:" $$tests; \
	$(MAKE) -j$(JOBS) SAN=thread BUILD=$(TSAN_BUILD) all $$(printf '$(TSAN_BUILD)/tests/%s ' $$tests) && \
	rm -f $(TSAN_BUILD)/tsan-report.* && \
	{ $(TSAN_ENV) $(MAKE) --no-print-directory SAN=thread BUILD=$(TSAN_BUILD) -j$(JOBS) -O \
		$$(printf 'unit-run-%s ' $$tests) || { $(tsan_reports); exit 1; }; }
	$(TSAN_ENV) TANDEM_BUILD=$(abspath $(TSAN_BUILD)) $(PYTEST) $(call e2e_args,$(E2E_SAN_JOBS)) \
		$(TSAN_E2E) || { $(tsan_reports); exit 1; }
	@$(tsan_reports)
	@echo "check-tsan: no ThreadSanitizer report"

# Static analysis and the banned-function rule (wiki/Development.md).
BANNED := sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets|system|tmpnam|mktemp
lint:
	cppcheck -j $(JOBS) --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem -D__GNUC__ \
		-I. common pki master agent updater launcher tests/tools
	@if grep -nE '\b($(BANNED))\s*\(' $$(find common pki master agent updater launcher tests bench -name '*.[ch]') \
		| grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'; then \
		echo "lint: banned function used (wiki/Development.md)"; exit 1; fi
	@# mbedTLS stays behind common/tls, common/digest and pki/ (a library change stays local).
	@# tests/unit/test_pki.c, pki/'s test, reads the certificates and keys pki/ wrote with
	@# mbedTLS's own X.509 and key parsers; every other unit test uses the modules.
	@if grep -nE '^\s*#\s*include\s*[<"]mbedtls/' $$(find common master agent updater launcher tests/unit tests/tools bench -name '*.[ch]') \
		| grep -vE '^(common/(tls|digest)\.c|tests/unit/test_pki\.c):'; then \
		echo "lint: mbedTLS included outside common/tls.c, common/digest.c, pki/ and pki/'s test"; exit 1; fi
	@echo "lint: ok"

# libFuzzer harnesses: tests/fuzz/fuzz_<name>.c, corpus in tests/fuzz/corpus/<name>/.
# Corpus paths are absolute: a harness may chdir() into a private directory.
# The library is compiled with the fuzz flags into $(BUILD_FUZZ)/libtandem.a
# (coverage-instrumented, no libFuzzer main) and every harness links it, plus
# the program modules (updater/, master/, agent/) whose headers it includes.
# Only what some harness links is compiled (38 of the 72 library and
# module sources today): scripts/fuzz-objs.sh follows the harnesses' undefined
# symbols through the symbol tables of the $(BUILD) tree's objects, as the
# linker would through the archives, and make fuzz builds the archives from
# that list (FUZZ_NEED; empty: every source). A module a harness starts to
# call is found with no edit here. Debug info: line tables only (what the
# reports print), as the sanitizer trees.
BUILD_FUZZ  := build-fuzz
FUZZ_CC     := clang
FUZZ_CFLAGS  = -gline-tables-only -O1 -fsanitize=fuzzer-no-link,address,undefined -std=c11 -D_GNU_SOURCE -I. \
	$(PKG_CFLAGS) -MMD -MP
# clang's runtimes make gold warn about every ASan check it cannot export
# (3 000 lines per build): the harnesses link with lld where it is installed
# (make deps installs it), 8.4 s of CPU for the 23 links against 13.8 s with ld.bfd.
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined $(if $(call on_path,ld.lld),-fuse-ld=lld)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD_FUZZ)/%)
FUZZ_HARNESS_OBJS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD_FUZZ)/obj/tests/fuzz/%.o)
FUZZ_NEED   ?=
# $(call fuzz_need,SRCS): those of SRCS a harness links (all without FUZZ_NEED).
fuzz_need = $(if $(strip $(FUZZ_NEED)),$(filter $(FUZZ_NEED),$(1)),$(1))
FUZZ_LIB    := $(BUILD_FUZZ)/libtandem.a
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD_FUZZ)/obj/%.o,$(call fuzz_need,$(LIB_SRCS))) \
	$(BUILD_FUZZ)/obj/common/testhook.o $(BUILD_FUZZ)/gen/version-fuzz.o
FUZZ_SECONDS ?= 10
# Each program's modules also form a fuzz-flavoured static archive: a harness
# links all of them and the linker takes only the members it needs, so a
# module that starts to call another (agent.c → logcap.c) needs no edit here.
FUZZ_PROG_LIBS := $(BUILD_FUZZ)/libtandem-updater.a $(BUILD_FUZZ)/libtandem-master.a \
	$(BUILD_FUZZ)/libtandem-agent.a
# The list is also a file, rewritten only when it changes: an archive is
# made again when its list changes, not only when one of its objects does.
FUZZ_NEED_FILE := $(BUILD_FUZZ)/fuzz-need.txt
FUZZ_NEED_DEP := $(if $(strip $(FUZZ_NEED)),$(FUZZ_NEED_FILE))
$(BUILD_FUZZ)/libtandem-updater.a: $(patsubst %.c,$(BUILD_FUZZ)/obj/%.o,$(call fuzz_need,$(UPDATER_MODS))) \
	$(FUZZ_NEED_DEP)
$(BUILD_FUZZ)/libtandem-master.a: $(patsubst %.c,$(BUILD_FUZZ)/obj/%.o,$(call fuzz_need,$(MASTER_MODS))) \
	$(FUZZ_NEED_DEP)
$(BUILD_FUZZ)/libtandem-agent.a: $(patsubst %.c,$(BUILD_FUZZ)/obj/%.o,$(call fuzz_need,$(AGENT_MODS))) \
	$(FUZZ_NEED_DEP)
$(FUZZ_PROG_LIBS):
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $(filter %.o,$^)

# The objects scripts/fuzz-objs.sh reads, in the harness link's archive order.
FUZZ_SCAN_ROOTS := $(TESTHOOK_ON)
FUZZ_SCAN_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(UPDATER_MODS) $(MASTER_MODS) $(AGENT_MODS) $(LIB_SRCS))
fuzz_need_cmd = sh scripts/fuzz-objs.sh $(BUILD)/obj/ $(FUZZ_HARNESS_OBJS) $(FUZZ_SCAN_ROOTS) \
	-- $(FUZZ_SCAN_OBJS) | tr '\n' ' '
.PHONY: fuzz-need
fuzz-need: $(FUZZ_HARNESS_OBJS) $(FUZZ_SCAN_ROOTS) $(FUZZ_SCAN_OBJS)

fuzz: fuzz-need
	@need=$$($(fuzz_need_cmd)) && [ -n "$$need" ] || \
		{ echo "fuzz: scripts/fuzz-objs.sh found no source the harnesses link" >&2; exit 1; }; \
	mkdir -p $(BUILD_FUZZ) && \
	echo "$$need" > $(FUZZ_NEED_FILE).tmp && \
	{ cmp -s $(FUZZ_NEED_FILE).tmp $(FUZZ_NEED_FILE) && rm -f $(FUZZ_NEED_FILE).tmp || \
	  mv -f $(FUZZ_NEED_FILE).tmp $(FUZZ_NEED_FILE); } && \
	echo "fuzz: the harnesses link $$(echo $$need | wc -w) of $(words $(FUZZ_SCAN_OBJS)) sources" && \
	$(MAKE) --no-print-directory FUZZ_NEED="$$need" fuzz-bins
.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_BINS)

$(BUILD_FUZZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(BUILD_FUZZ)/gen/version-fuzz.c:
	@mkdir -p $(dir $@)
	printf '#include "common/version.h"\n\nconst char *\ntandem_version(void)\n{\n\treturn "fuzz";\n}\n' > $@

$(BUILD_FUZZ)/gen/version-fuzz.o: $(BUILD_FUZZ)/gen/version-fuzz.c
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS) $(FUZZ_NEED_DEP)
	rm -f $@
	ar rcs $@ $(filter %.o,$^)

define fuzz_harness
$(BUILD_FUZZ)/$(1): $(BUILD_FUZZ)/obj/tests/fuzz/$(1).o $(FUZZ_PROG_LIBS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach h,$(FUZZ_SRCS:tests/fuzz/%.c=%),$(eval $(call fuzz_harness,$(h))))

-include $(if $(RELEASE_OUTER),,$(call deps_in,$(BUILD_FUZZ)/obj $(BUILD_FUZZ)/gen))

# Every harness for FUZZ_SECONDS, JOBS harnesses at a time (each is one
# single-threaded process), output printed per harness when it ends. The
# list of sources is the one make fuzz has just written ($(FUZZ_NEED_FILE)).
FUZZ_RUNS := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=fuzz-run-%)
fuzz-run: fuzz
	@$(MAKE) --no-print-directory -j$(JOBS) -O FUZZ_NEED="$$(cat $(FUZZ_NEED_FILE))" $(FUZZ_RUNS)

fuzz-run-%: $(BUILD_FUZZ)/fuzz_%
	@mkdir -p tests/fuzz/corpus/$* $(BUILD_FUZZ)/corpus-$*
	@echo "== $< ($(FUZZ_SECONDS)s)"
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 -print_final_stats=0 \
		-artifact_prefix=$(CURDIR)/$(BUILD_FUZZ)/ \
		$(CURDIR)/$(BUILD_FUZZ)/corpus-$* $(CURDIR)/tests/fuzz/corpus/$* 2>$(BUILD_FUZZ)/$*.log \
		|| { tail -50 $(BUILD_FUZZ)/$*.log; exit 1; }
	@tail -1 $(BUILD_FUZZ)/$*.log

bench: all $(BENCH_BINS)
	@for b in bench/*.sh; do [ -x "$$b" ] && echo "== $$b" && BUILD=$(abspath $(BUILD)) $$b; done; true

# The master with registries of 1 000 and 10 000 hosts (wiki/Performance.md,
# "Rollouts at scale"); SIZES=... RUNS=... pass through. Not part of make check.
.PHONY: bench-tls
bench-tls: all $(BUILD)/bench/channel_hs
	BUILD=$(abspath $(BUILD)) bench/tls_resume.sh

.PHONY: bench-delta
bench-delta: all
	BUILD=$(abspath $(BUILD)) bench/delta.sh

.PHONY: bench-digest
bench-digest: $(BUILD)/bench/digest
	BUILD=$(abspath $(BUILD)) bench/digest.sh

.PHONY: bench-rollout
bench-rollout: all
	BUILD=$(abspath $(BUILD)) bench/rollout_scale.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz


# ---- demo: a throw-away fleet on 127.0.0.1 (scripts/demo.sh) ----
#   make demo [BUILD=DIR] [DEMO_DIR=DIR]
# Installs the dependencies, builds, then runs scripts/demo.sh: a PKI, three
# enrolled hosts with their own updater+agent, release pushes, an automatic and
# a manual rollback, all under DEMO_DIR (default: a new directory under /tmp,
# printed); every process it starts is stopped at the end and on Ctrl-C.
DEMO_DIR ?=
.PHONY: demo
demo: deps
	$(MAKE) -j$(JOBS) all
	bash scripts/demo.sh --build $(BUILD) $(if $(DEMO_DIR),--dir $(DEMO_DIR))
# ---- end demo ----

# ---- release: a release tarball of the agent and the updater (wiki/Agent.md) ----
#   make release VERSION=x [RELEASE_OUT=FILE] [RELEASE_KIND=good|exit-at-once|
#                never-ready|wrong-version|crash-later|slow-health|fail-marker|
#                log-flood]
#                [RELEASE_UPDATER_KIND=good|exit-at-once|hang|crash-later]
# Links the agent and the updater again from the objects of $(BUILD)/obj with
# the version object of VERSION (nothing is recompiled for a new version) into
# $(BUILD)/release/KIND-updater-UKIND-VERSION/bin/ (debug info stripped),
# never touching the normal binaries, then packs that tree with
# `tandem release pack` (the one packer and manifest writer: deterministic
# tarball, the default manifest with updater_entrypoint, and "readiness":
# "ready-fd" since tandem-agent takes --ready-fd) and prints "SHA256  FILE"
# (FILE absolute).
# A broken kind compiles only the files that read TANDEM_AGENT_BROKEN
# (agent/broken.h) or TANDEM_UPDATER_BROKEN again, with -D...=N, into
# $(BUILD)/kind/agent-KIND/ or $(BUILD)/kind/updater-UKIND/.
RELEASE_KIND ?= good
release_kind_good := 0
release_kind_exit-at-once := 1
release_kind_never-ready := 2
release_kind_wrong-version := 3
release_kind_crash-later := 4
release_kind_slow-health := 5
release_kind_fail-marker := 6
release_kind_log-flood := 7
RELEASE_BROKEN := $(release_kind_$(RELEASE_KIND))
# Deliberately broken updater builds for the self-update tests (updater/selfupdate.h);
# each still passes --self-test. Never compiled into the normal binary.
RELEASE_UPDATER_KIND ?= good
release_upd_kind_good := 0
release_upd_kind_exit-at-once := 1
release_upd_kind_hang := 2
release_upd_kind_crash-later := 3
RELEASE_UPD_BROKEN := $(release_upd_kind_$(RELEASE_UPDATER_KIND))
# RELEASE_TEST_HOOKS=1 (tests only, never the default): the tarball's
# binaries keep their test points (common/testhook.h), for the self-update
# crash sweeps whose crash happens in an updater installed from a release.
RELEASE_TEST_HOOKS ?= 0
RELEASE_TESTHOOK := $(if $(filter 1,$(RELEASE_TEST_HOOKS)),$(TESTHOOK_ON),$(TESTHOOK_OFF))
RELEASE_STAGE := $(BUILD)/release/$(RELEASE_KIND)-updater-$(RELEASE_UPDATER_KIND)$(if $(filter 1,$(RELEASE_TEST_HOOKS)),-testhooks)-$(VERSION)
RELEASE_OUT ?= $(BUILD)/tandem-agent-$(VERSION)$(if $(filter-out good,$(RELEASE_KIND)),-$(RELEASE_KIND))$(if $(filter-out good,$(RELEASE_UPDATER_KIND)),-updater-$(RELEASE_UPDATER_KIND))$(if $(filter 1,$(RELEASE_TEST_HOOKS)),-testhooks).tar.gz

# The only sources a broken kind changes (found by what they read, so a file
# that starts to use the switch is compiled per kind without a Makefile edit).
# Read (grep) only when a broken kind is asked for: a good kind links the
# objects of $(BUILD)/obj as they are.
$(call once,AGENT_KIND_SRCS,$$(if $$(AGENT_SRCS),$$(shell grep -lE 'TANDEM_AGENT_BROKEN|agent/broken\.h' $$(AGENT_SRCS))))
$(call once,UPDATER_KIND_SRCS,$$(if $$(UPDATER_SRCS),$$(shell grep -l 'TANDEM_UPDATER_BROKEN' $$(UPDATER_SRCS))))
# $(call kind_objs,PROGRAM,KIND,SRCS,KIND_SRCS_VAR): the objects of one kind
# (KIND_SRCS_VAR names the list, so a good kind never reads it).
kind_objs = $(if $(filter good,$(2)),$(3:%.c=$(BUILD)/obj/%.o),$(filter-out \
	$($(4):%.c=$(BUILD)/obj/%.o),$(3:%.c=$(BUILD)/obj/%.o)) $($(4):%.c=$(BUILD)/kind/$(1)-$(2)/%.o))
RELEASE_AGENT_OBJS   := $(call kind_objs,agent,$(RELEASE_KIND),$(AGENT_SRCS),AGENT_KIND_SRCS)
RELEASE_UPDATER_OBJS := $(call kind_objs,updater,$(RELEASE_UPDATER_KIND),$(UPDATER_SRCS),UPDATER_KIND_SRCS)
RELEASE_BINS := $(RELEASE_STAGE)/bin/tandem-agent $(RELEASE_STAGE)/bin/tandem-updater
# The packer is the master CLI linked once more with the default version, so
# that `make release VERSION=x` never relinks the normal binaries with x.
RELEASE_PACKER := $(BUILD)/release/tandem

ifneq ($(filter release release-locked,$(MAKECMDGOALS)),)
ifeq ($(RELEASE_BROKEN),)
$(error RELEASE_KIND=$(RELEASE_KIND): use good, exit-at-once, never-ready, wrong-version, crash-later, slow-health, fail-marker or log-flood)
endif
ifeq ($(RELEASE_UPD_BROKEN),)
$(error RELEASE_UPDATER_KIND=$(RELEASE_UPDATER_KIND): use good, exit-at-once, hang or crash-later)
endif
endif
# Checked by the make that links and packs (the outer `make release` only
# locks and starts no process while it reads this file).
ifneq ($(filter release-locked,$(MAKECMDGOALS)),)
ifneq ($(call matches,$(VERSION),$(VERSION_RE)),$(VERSION))
$(error VERSION=$(VERSION): use 1-64 characters of A-Z a-z 0-9 . + ~ _ -, starting alphanumeric)
endif
ifeq ($(if $(filter-out good,$(RELEASE_KIND)),$(AGENT_KIND_SRCS),good),)
$(error no agent source reads TANDEM_AGENT_BROKEN: the broken kinds would not be broken)
endif
ifeq ($(if $(filter-out good,$(RELEASE_UPDATER_KIND)),$(UPDATER_KIND_SRCS),good),)
$(error no updater source reads TANDEM_UPDATER_BROKEN: the broken kinds would not be broken)
endif
endif

$(BUILD)/kind/agent-$(RELEASE_KIND)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call compile_atomic,-DTANDEM_AGENT_BROKEN=$(RELEASE_BROKEN))

$(BUILD)/kind/updater-$(RELEASE_UPDATER_KIND)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call compile_atomic,-DTANDEM_UPDATER_BROKEN=$(RELEASE_UPD_BROKEN))

# Link, strip and rename: concurrent makes may link the same stage.
link_stripped = $(CC) $(LDFLAGS) -o $@.$$$$.tmp $^ $(LDLIBS) && strip --strip-debug $@.$$$$.tmp \
	&& mv -f $@.$$$$.tmp $@

$(RELEASE_STAGE)/bin/tandem-agent: $(RELEASE_AGENT_OBJS) $(RELEASE_TESTHOOK) $(LIB) $(VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(link_stripped)

$(RELEASE_STAGE)/bin/tandem-updater: $(RELEASE_UPDATER_OBJS) $(RELEASE_TESTHOOK) $(LIB) $(VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(link_stripped)

$(RELEASE_PACKER): $(MASTER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_OFF) $(LIB) \
		$(BUILD)/gen/version-$(DEFAULT_VERSION).o
	@mkdir -p $(dir $@)
	$(link_stripped)

# One release at a time per build tree: two makes linking the same stage
# while the other packs it would pack a file being replaced (the e2e suite
# runs in parallel). The lock is held for the link and the pack: `make
# release` takes it (flock on $(BUILD)/.release.lock, which blocks until the
# other release of this tree is done) and runs the make that links and packs
# (release-locked) under it. That outer make reads no dependency file and
# starts no process while it reads this Makefile (RELEASE_OUTER), so the
# release costs one full parse.
.PHONY: release release-locked
release:
	@mkdir -p $(BUILD)
	@flock $(BUILD)/.release.lock $(MAKE) --no-print-directory release-locked

# One shell for the output's directory and the packer.
release-locked: $(RELEASE_BINS) $(RELEASE_PACKER)
	@out='$(RELEASE_OUT)'; d=$${out%/*}; [ "$$d" = "$$out" ] || [ -d "$${d:-/}" ] || mkdir -p "$${d:-/}"; \
	exec $(RELEASE_PACKER) release pack '$(RELEASE_STAGE)' --version '$(VERSION)' --readiness ready-fd \
		--output '$(RELEASE_OUT)'

# The objects' dependency files (-MMD), found by make itself ($(deps_in)).
-include $(if $(RELEASE_OUTER),,$(call deps_in,$(BUILD)/obj $(BUILD)/obj-shipped $(BUILD)/kind $(BUILD)/gen))


# ---- install / uninstall / deb (packaging/, wiki/Operations.md) ----
#   make install [DESTDIR=D] [PREFIX=/usr/local] [VERSION=x]   (install-worker + install-master)
#   make uninstall [DESTDIR=D] [PREFIX=...]   (leaves /etc/tandem and /var/lib/tandem)
#   make deb [VERSION=x]   -> $(BUILD)/deb/tandem-worker_V_ARCH.deb, tandem-master_V_ARCH.deb
#                          (DEB_PACKAGES=tandem-worker: that one only)
#   make deb-lint          make deb, then lintian on both (packaging/debian/*.lintian-overrides)
# Installed binaries carry VERSION: the agent and updater are the ones of
# `make release` ($(BUILD)/release/good-updater-good-VERSION/, debug info
# stripped), which also becomes the seed release the unit passes to the
# updater on a fresh host; the CLI and the launcher are linked again with
# VERSION's object into $(BUILD)/pkg-VERSION/. None has test points. Man pages
# come from each program's --help (help2man) plus packaging/man/*.h2m. Config
# files are installed only where none exists yet
# (never over an admin's edits). No chown here: the deb's postinst creates the
# tandem user and sets owners (wiki/Operations.md).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
PKGLIBDIR  ?= $(PREFIX)/lib/tandem
DOCDIR     ?= $(PREFIX)/share/doc/tandem
MASTER_DOCDIR ?= $(DOCDIR)
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
STATEDIR   ?= /var/lib/tandem
# The packages' Maintainer field: set it to your organisation's address.
DEB_MAINTAINER ?= tandem developers <tandem@example.org>
# Dates in man pages and the changelog: the last commit's, so builds repeat.
# Read from git when a package recipe first uses them.
$(call once,PKG_DATE,$$(or $$(SOURCE_DATE_EPOCH),$$(shell git log -1 --format=%ct 2>/dev/null),0))
$(call once,PKG_COMMIT,$$(or $$(shell git rev-parse --short=12 HEAD 2>/dev/null),unknown))
PKG_TREE   := $(BUILD)/pkg-$(VERSION)
PKG_REL    := $(BUILD)/release/good-updater-good-$(VERSION)/bin
PKG_SEED   := $(PKG_TREE)/tandem-agent-release.tar.gz
PKG_SUBST  := sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|@PKGLIBDIR@|$(PKGLIBDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
# Installed programs carry no symbols (as dh_strip leaves them); the build
# trees keep theirs for debugging.
PKG_STRIP  := strip --strip-unneeded --remove-section=.comment --remove-section=.note
# $(call pkg_man,PROGRAM,SECTION,DEST): PROGRAM's man page, gzip -9n, into DEST.
pkg_man = SOURCE_DATE_EPOCH=$(PKG_DATE) help2man --no-info --no-discard-stderr \
	--section=$(2) --version-string='$(VERSION)' --include=packaging/man/$(notdir $(1)).h2m \
	--output='$(PKG_TREE)/man/$(notdir $(1)).$(2)' $(1) && \
	gzip -9n -c '$(PKG_TREE)/man/$(notdir $(1)).$(2)' > '$(3).tmp' && chmod 0644 '$(3).tmp' && \
	mv -f '$(3).tmp' '$(3)'
# $(call pkg_docs,DIR): the copyright file and the changelog (gzip -9n) into DIR.
# install-worker and install-master both call it, into one DIR when DOCDIR and
# MASTER_DOCDIR are the same (make install): each writes its own temporary
# file (the shell's pid) and renames it, so the two never write one file.
pkg_docs = install -m 0644 packaging/debian/copyright '$(1)/copyright' && \
	{ printf 'tandem (%s) unstable; urgency=medium\n\n' '$(VERSION)'; \
	  printf '  * tandem %s, built from commit %s; the changes are the\n' '$(VERSION)' '$(PKG_COMMIT)'; \
	  printf '    repository history (git log) up to that commit.\n\n'; \
	  printf ' -- %s  %s\n' '$(DEB_MAINTAINER)' "$$(LC_ALL=C date -u -R -d @$(PKG_DATE))"; } | \
	gzip -9n > '$(1)/changelog.gz.'$$$$.tmp && chmod 0644 '$(1)/changelog.gz.'$$$$.tmp && \
	mv -f '$(1)/changelog.gz.'$$$$.tmp '$(1)/changelog.gz'

.PHONY: install install-worker install-master uninstall deb deb-lint pkg-seed

$(PKG_TREE)/bin/tandem: $(MASTER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_OFF) $(LIB) $(VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(link_stripped)

# The launcher is what the unit runs: it starts the updater and judges its
# self-updates (wiki/Self-Update.md). A self-update never replaces it.
$(PKG_TREE)/bin/tandem-launcher: $(LAUNCHER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_OFF) $(UPDATER_LIB) \
		$(LIB) $(VERSION_OBJ)
	@mkdir -p $(dir $@)
	$(link_stripped)

# The seed release, and with it the version-stamped agent and updater binaries.
# Every object first, so that the sub-make only links and packs and never
# builds an object while install-master does.
pkg-seed: $(LIB) $(AGENT_SRCS:%.c=$(BUILD)/obj/%.o) $(UPDATER_SRCS:%.c=$(BUILD)/obj/%.o) \
		$(RELEASE_PACKER) $(TESTHOOK_OFF) $(VERSION_OBJ)
	@$(MAKE) --no-print-directory release RELEASE_KIND=good RELEASE_UPDATER_KIND=good \
		RELEASE_TEST_HOOKS=0 RELEASE_OUT='$(PKG_SEED)' >/dev/null

install: install-worker install-master

install-worker: pkg-seed $(PKG_TREE)/bin/tandem-launcher
	install -d -m 0755 '$(DESTDIR)$(SBINDIR)' '$(DESTDIR)$(PKGLIBDIR)' '$(DESTDIR)$(UNITDIR)' \
		'$(DESTDIR)$(DOCDIR)' '$(DESTDIR)$(MANDIR)/man8' '$(PKG_TREE)/man'
	install -m 0755 $(PKG_REL)/tandem-updater $(PKG_REL)/tandem-agent \
		$(PKG_TREE)/bin/tandem-launcher '$(DESTDIR)$(SBINDIR)/'
	$(PKG_STRIP) '$(DESTDIR)$(SBINDIR)/tandem-updater' '$(DESTDIR)$(SBINDIR)/tandem-agent' \
		'$(DESTDIR)$(SBINDIR)/tandem-launcher'
	install -m 0644 '$(PKG_SEED)' '$(DESTDIR)$(PKGLIBDIR)/tandem-agent-release.tar.gz'
	$(PKG_SUBST) packaging/systemd/tandem-updater.service.in > '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp'
	mv -f '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp' '$(DESTDIR)$(UNITDIR)/tandem-updater.service'
	install -m 0644 wiki/Operations.md '$(DESTDIR)$(DOCDIR)/Operations.md'
	$(call pkg_docs,$(DESTDIR)$(DOCDIR))
	$(call pkg_man,$(PKG_REL)/tandem-updater,8,$(DESTDIR)$(MANDIR)/man8/tandem-updater.8.gz)
	$(call pkg_man,$(PKG_REL)/tandem-agent,8,$(DESTDIR)$(MANDIR)/man8/tandem-agent.8.gz)
	$(call pkg_man,$(PKG_TREE)/bin/tandem-launcher,8,$(DESTDIR)$(MANDIR)/man8/tandem-launcher.8.gz)
	install -d -m 0750 '$(DESTDIR)$(SYSCONFDIR)/tandem' '$(DESTDIR)$(STATEDIR)'
	@set -e; for f in tandem/updater.conf tandem/agent.conf; do \
		d='$(DESTDIR)$(SYSCONFDIR)'/$$(dirname $$f); b=$$(basename $$f); \
		src=packaging/etc/$$b; mode=0640; \
		if [ -e "$$d/$$b" ]; then echo "install: keeping existing $$d/$$b"; continue; fi; \
		if [ -e $$src.in ]; then $(PKG_SUBST) $$src.in > "$$d/$$b.tmp"; \
		else cp $$src "$$d/$$b.tmp"; fi; \
		chmod $$mode "$$d/$$b.tmp"; mv -f "$$d/$$b.tmp" "$$d/$$b"; echo "install: $$d/$$b"; \
	done

install-master: $(PKG_TREE)/bin/tandem
	install -d -m 0755 '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MASTER_DOCDIR)' '$(DESTDIR)$(MANDIR)/man1' \
		'$(PKG_TREE)/man'
	install -m 0755 $(PKG_TREE)/bin/tandem '$(DESTDIR)$(BINDIR)/tandem'
	$(PKG_STRIP) '$(DESTDIR)$(BINDIR)/tandem'
	$(call pkg_docs,$(DESTDIR)$(MASTER_DOCDIR))
	$(call pkg_man,$(PKG_TREE)/bin/tandem,1,$(DESTDIR)$(MANDIR)/man1/tandem.1.gz)
	install -D -m 0644 packaging/bash-completion/tandem '$(DESTDIR)$(PREFIX)/share/bash-completion/completions/tandem'

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/tandem' '$(DESTDIR)$(PREFIX)/share/bash-completion/completions/tandem' \
		'$(DESTDIR)$(SBINDIR)/tandem-updater' \
		'$(DESTDIR)$(SBINDIR)/tandem-agent' '$(DESTDIR)$(SBINDIR)/tandem-launcher' \
		'$(DESTDIR)$(PKGLIBDIR)/tandem-agent-release.tar.gz' \
		'$(DESTDIR)$(UNITDIR)/tandem-updater.service' '$(DESTDIR)$(DOCDIR)/Operations.md' \
		'$(DESTDIR)$(DOCDIR)/copyright' '$(DESTDIR)$(DOCDIR)/changelog.gz' \
		'$(DESTDIR)$(MASTER_DOCDIR)/copyright' '$(DESTDIR)$(MASTER_DOCDIR)/changelog.gz' \
		'$(DESTDIR)$(MANDIR)/man1/tandem.1.gz' '$(DESTDIR)$(MANDIR)/man8/tandem-updater.8.gz' \
		'$(DESTDIR)$(MANDIR)/man8/tandem-agent.8.gz' '$(DESTDIR)$(MANDIR)/man8/tandem-launcher.8.gz'
	rmdir '$(DESTDIR)$(PKGLIBDIR)' '$(DESTDIR)$(DOCDIR)' 2>/dev/null || true
	@echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/tandem and $(DESTDIR)$(STATEDIR) are kept"

# Debian packages with dpkg-deb; Depends from dpkg-shlibdeps on the staged
# binaries. The deb layout is PREFIX=/usr and units in /lib/systemd/system
# (Debian 12). Owners are root in the archive; postinst gives the tandem user
# what it needs.
DEB_DIR  := $(BUILD)/deb
DEB_WORK := $(DEB_DIR)/work
DEB_ARCH  = $(shell dpkg --print-architecture)
# The packages `make deb` builds (a package upgrade test needs only the worker's).
DEB_PACKAGES ?= tandem-worker tandem-master
# A Debian version as make deb accepts it.
DEB_VERSION_RE := [0-9][A-Za-z0-9.+~-]{0,63}
ifneq ($(filter deb deb-lint,$(MAKECMDGOALS)),)
ifneq ($(call matches,$(VERSION),$(DEB_VERSION_RE)),$(VERSION))
$(error VERSION=$(VERSION): a Debian version starts with a digit and uses A-Z a-z 0-9 . + ~ -)
endif
ifneq ($(strip $(filter-out tandem-worker tandem-master,$(DEB_PACKAGES))),)
$(error DEB_PACKAGES=$(DEB_PACKAGES): use tandem-worker and/or tandem-master)
endif
ifeq ($(strip $(DEB_PACKAGES)),)
$(error DEB_PACKAGES is empty: use tandem-worker and/or tandem-master)
endif
endif

deb:
	rm -rf '$(DEB_WORK)'
	mkdir -p '$(DEB_WORK)/debian'
	: > '$(DEB_WORK)/debian/control'
ifneq ($(filter tandem-worker,$(DEB_PACKAGES)),)
	$(MAKE) --no-print-directory install-worker DESTDIR='$(abspath $(DEB_WORK))/debian/tandem-worker' \
		PREFIX=/usr UNITDIR=/lib/systemd/system DOCDIR=/usr/share/doc/tandem-worker \
		SYSCONFDIR=/etc STATEDIR=/var/lib/tandem
endif
ifneq ($(filter tandem-master,$(DEB_PACKAGES)),)
	$(MAKE) --no-print-directory install-master DESTDIR='$(abspath $(DEB_WORK))/debian/tandem-master' \
		PREFIX=/usr MASTER_DOCDIR=/usr/share/doc/tandem-master
endif
	@set -e; cd '$(DEB_WORK)'; \
	for p in $(filter tandem-worker tandem-master,$(DEB_PACKAGES)); do \
		mkdir -p debian/$$p/DEBIAN; \
		if [ -e $(CURDIR)/packaging/debian/$$p.lintian-overrides ]; then \
			install -d -m 0755 debian/$$p/usr/share/lintian/overrides; \
			install -m 0644 $(CURDIR)/packaging/debian/$$p.lintian-overrides \
				debian/$$p/usr/share/lintian/overrides/$$p; \
		fi; \
		bins=$$(find debian/$$p/usr/bin debian/$$p/usr/sbin -type f 2>/dev/null | sort); \
		shlibs=$$(dpkg-shlibdeps -O $$bins 2>/dev/null | sed -n 's/^shlibs:Depends=//p'); \
		[ -n "$$shlibs" ] || { echo "deb: dpkg-shlibdeps found no dependencies for $$p" >&2; exit 1; }; \
		size=$$(du -sk --exclude=DEBIAN debian/$$p | cut -f1); \
		sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' -e "s|@SIZE@|$$size|" \
			-e "s|@SHLIBS@|$$shlibs|" -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
			$(CURDIR)/packaging/debian/$$p.control.in > debian/$$p/DEBIAN/control; \
		for s in conffiles preinst postinst prerm postrm; do \
			f=$(CURDIR)/packaging/debian/$$p.$$s; [ -e $$f ] || continue; \
			cp $$f debian/$$p/DEBIAN/$$s; \
			if [ $$s = conffiles ]; then chmod 0644 debian/$$p/DEBIAN/$$s; \
			else chmod 0755 debian/$$p/DEBIAN/$$s; fi; \
		done; \
		( cd debian/$$p && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | sort -z | \
			xargs -0r md5sum ) > debian/$$p/DEBIAN/md5sums; \
		chmod 0644 debian/$$p/DEBIAN/md5sums; \
		out=../$${p}_$(VERSION)_$(DEB_ARCH).deb; rm -f "$$out"; \
		SOURCE_DATE_EPOCH=$(PKG_DATE) dpkg-deb --root-owner-group --build debian/$$p "$$out" >/dev/null; \
		echo "deb: $(DEB_DIR)/$${p}_$(VERSION)_$(DEB_ARCH).deb"; \
	done

# lintian on the packages built (both by default); its findings are fixed or overridden with a
# reason per line in packaging/debian/PACKAGE.lintian-overrides (shipped in
# the package, where lintian reads them). Fails on any finding, pedantic and
# experimental tags included (tests/e2e/test_packaging.py runs the same).
deb-lint: deb
	lintian --fail-on error,warning,info,pedantic --tag-display-limit 0 -I -E --pedantic \
		$(foreach p,$(DEB_PACKAGES),$(DEB_DIR)/$(p)_$(VERSION)_$(DEB_ARCH).deb)
