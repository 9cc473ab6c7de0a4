# tandem — one entry point: build, check, lint, fuzz, bench.
#
#   make deps        install the Debian packages we need (idempotent, quiet)
#   make             libtandem + binaries into build/
#   make check       deps, build, unit + e2e tests, the ASan/UBSan run, lint, fuzz smoke
#   make check-asan  unit + e2e tests built with ASan+UBSan (same as SAN=1 make test)
#   make lint        cppcheck + banned-function check
#   make fuzz        libFuzzer harnesses (clang) into build-fuzz/
#   make bench       benchmarks (results belong in wiki/Performance.md)
#   make demo        a demo fleet of three hosts on 127.0.0.1 (scripts/demo.sh)
#   make release     an agent release tarball: VERSION=x [RELEASE_KIND=...] (wiki/Agent.md)
#                    [RELEASE_UPDATER_KIND=...] (wiki/Self-Update.md)

VERSION ?= 0.1.0
SAN     ?= 0
PYTEST  ?= /usr/bin/python3 -m pytest
JOBS    ?= 2

ifeq ($(SAN),1)
BUILD   ?= build-asan
else
BUILD   ?= build
endif

CC      ?= cc
PKGS    := libmicrohttpd libarchive libcjson sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# mbedTLS 2.28 and http-parser ship no .pc file on Debian 12.
EXTRA_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto -lhttp_parser -lpthread

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wmisleading-indentation -Wnull-dereference \
	-Wconversion -Wno-sign-conversion -Wvla -Wpointer-arith -Wundef \
	-Wcast-align -Wwrite-strings -Wold-style-definition
HARDEN := -fstack-protector-strong -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now

CPPFLAGS += -D_GNU_SOURCE -DTANDEM_VERSION='"$(VERSION)"' -I. $(PKG_CFLAGS)
ifeq ($(SAN),1)
CFLAGS  ?= -O1 -g -fno-omit-frame-pointer
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
CFLAGS  ?= -O2 -g
CPPFLAGS += -D_FORTIFY_SOURCE=2
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

BINS :=
PROG_LIBS :=
# The master's modules land (with their tests) before its main.c does.
ifneq ($(wildcard master/main.c),)
BINS += $(BUILD)/tandem
endif
ifneq ($(AGENT_SRCS),)
BINS += $(BUILD)/tandem-agent
endif
# The updater's modules land (with their tests) before its main.c does.
ifneq ($(wildcard updater/main.c),)
BINS += $(BUILD)/tandem-updater
endif
# The launcher (self-update probation, wiki/Self-Update.md) links the updater's modules.
ifneq ($(LAUNCHER_SRCS),)
BINS += $(BUILD)/tandem-launcher
endif
ifneq ($(MASTER_MODS),)
PROG_LIBS += $(MASTER_LIB)
endif
ifneq ($(AGENT_MODS),)
PROG_LIBS += $(AGENT_LIB)
endif
ifneq ($(UPDATER_MODS),)
PROG_LIBS += $(UPDATER_LIB)
endif

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

# Keep objects of tools and tests: make would otherwise delete them as
# intermediates and relink every run.
.SECONDARY:

.PHONY: all deps check test unit unit-bins e2e check-asan lint fuzz fuzz-run bench clean tools
.DEFAULT_GOAL := all

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
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

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

$(BUILD)/tandem: $(MASTER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-agent: $(AGENT_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-updater: $(UPDATER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-launcher: $(LAUNCHER_SRCS:%.c=$(BUILD)/obj/%.o) $(TESTHOOK_ON) $(UPDATER_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the program module libraries before libtandem.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TESTHOOK_ON) $(PROG_LIBS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(TESTHOOK_ON) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TESTHOOK_ON) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit-bins: $(UNIT_BINS)

# Unit tests: every test_* binary, each run on its own; any failure fails the target.
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: all
	TANDEM_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -p no:cacheprovider --durations=12 tests/e2e

test: unit e2e

# The whole gate, as a newcomer (and CI) runs it.
check: deps
	$(MAKE) -j$(JOBS) all unit-bins
	$(MAKE) test
	$(MAKE) check-asan
	$(MAKE) lint
	$(MAKE) fuzz-run
	@echo "check: all gates passed"

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

check-asan:
	$(MAKE) -j$(JOBS) SAN=1 BUILD=build-asan all unit-bins
	$(ASAN_ENV) $(MAKE) SAN=1 BUILD=build-asan test

# Static analysis and the banned-function rule (STYLE.md 15).
BANNED := sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets|system|tmpnam|mktemp
lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -DTANDEM_VERSION='"lint"' \
		-I. common pki master agent updater launcher tests/tools
	@if grep -nE '\b($(BANNED))\s*\(' $$(find common pki master agent updater launcher tests bench -name '*.[ch]') \
		| grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'; then \
		echo "lint: banned function used (STYLE.md 15)"; exit 1; fi
	@# mbedTLS stays behind common/tls, common/digest and pki/ (a library change stays local).
	@if grep -nE '^\s*#\s*include\s*[<"]mbedtls/' $$(find common master agent updater launcher tests/tools bench -name '*.[ch]') \
		| grep -vE '^common/(tls|digest)\.c:'; then \
		echo "lint: mbedTLS included outside common/tls.c, common/digest.c and pki/"; exit 1; fi
	@echo "lint: ok"

# libFuzzer harnesses: tests/fuzz/fuzz_<name>.c, corpus in tests/fuzz/corpus/<name>/.
# Corpus paths are absolute: a harness may chdir() into a private directory.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -DTANDEM_VERSION='"fuzz"'
FUZZ_SECONDS ?= 10

fuzz: $(FUZZ_BINS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS)

# Harnesses of updater parsers also link the updater module they exercise.
build-fuzz/fuzz_extract: tests/fuzz/fuzz_extract.c updater/extract.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< updater/extract.c $(LIB_SRCS) $(LDLIBS)

fuzz-run: fuzz
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f | sed 's/^fuzz_//'); \
		mkdir -p tests/fuzz/corpus/$$n build-fuzz/corpus-$$n; \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 -print_final_stats=0 \
			-artifact_prefix=$(CURDIR)/build-fuzz/ \
			$(CURDIR)/build-fuzz/corpus-$$n $(CURDIR)/tests/fuzz/corpus/$$n 2>build-fuzz/$$n.log \
			|| { tail -50 build-fuzz/$$n.log; exit 1; }; \
		tail -1 build-fuzz/$$n.log; done

bench: all $(BENCH_BINS)
	@for b in bench/*.sh; do [ -x "$$b" ] && echo "== $$b" && BUILD=$(abspath $(BUILD)) $$b; done; true

clean:
	rm -rf build build-asan build-fuzz


# ---- demo: a throw-away fleet on 127.0.0.1 (issue 7, scripts/demo.sh) ----
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

# ---- release: a release tarball of the agent (issue 3, wiki/Agent.md) ----
#   make release VERSION=x [RELEASE_OUT=FILE] [RELEASE_KIND=good|exit-at-once|
#                never-ready|wrong-version|crash-later|slow-health]
# Compiles the agent (and the updater, when the tree has updater/main.c) again with
# VERSION stamped in and, for a test kind, -DTANDEM_AGENT_BROKEN=N (see
# agent/broken.h) into $(BUILD)/release-KIND-VERSION/ (the updater into
# $(BUILD)/release-updater-VERSION/), never touching the
# normal binaries; packs bin/ with `tandem release pack` (the one packer and
# manifest writer: deterministic gzip tar, sorted, owner 0/0, mtime 0, the
# default manifest with updater_entrypoint when bin/tandem-updater is there)
# and prints "SHA256  FILE" (FILE absolute).
RELEASE_KIND ?= good
release_kind_good := 0
release_kind_exit-at-once := 1
release_kind_never-ready := 2
release_kind_wrong-version := 3
release_kind_crash-later := 4
release_kind_slow-health := 5
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
RELEASE_TREE := $(BUILD)/release-$(RELEASE_KIND)-$(VERSION)
RELEASE_STAGE := $(RELEASE_TREE)/stage$(if $(filter-out good,$(RELEASE_UPDATER_KIND)),-updater-$(RELEASE_UPDATER_KIND))$(if $(filter 1,$(RELEASE_TEST_HOOKS)),-testhooks)
# The updater's objects do not depend on the agent's kind: shared by all agent kinds.
RELEASE_UPD_TREE := $(BUILD)/release-updater-$(RELEASE_UPDATER_KIND)-$(VERSION)
RELEASE_OUT ?= $(BUILD)/tandem-agent-$(VERSION)$(if $(filter-out good,$(RELEASE_KIND)),-$(RELEASE_KIND))$(if $(filter-out good,$(RELEASE_UPDATER_KIND)),-updater-$(RELEASE_UPDATER_KIND))$(if $(filter 1,$(RELEASE_TEST_HOOKS)),-testhooks).tar.gz
RELEASE_BINS := $(RELEASE_STAGE)/bin/tandem-agent
# The self-update ships both binaries in one tarball, once the updater has a main().
ifneq ($(wildcard updater/main.c),)
RELEASE_BINS += $(RELEASE_STAGE)/bin/tandem-updater
endif

ifneq ($(filter release,$(MAKECMDGOALS)),)
ifeq ($(RELEASE_BROKEN),)
$(error RELEASE_KIND=$(RELEASE_KIND): use good, exit-at-once, never-ready, wrong-version, crash-later or slow-health)
endif
ifeq ($(RELEASE_UPD_BROKEN),)
$(error RELEASE_UPDATER_KIND=$(RELEASE_UPDATER_KIND): use good, exit-at-once, hang or crash-later)
endif
ifneq ($(shell printf '%s' '$(VERSION)' | grep -Ex '[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}'),$(VERSION))
$(error VERSION=$(VERSION): use 1-64 characters of A-Z a-z 0-9 . + ~ _ -, starting alphanumeric)
endif
endif

$(RELEASE_TREE)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DTANDEM_AGENT_BROKEN=$(RELEASE_BROKEN) $(CFLAGS) -c -o $@ $<

$(RELEASE_STAGE)/bin/tandem-agent: $(AGENT_SRCS:%.c=$(RELEASE_TREE)/obj/%.o) $(RELEASE_TESTHOOK) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

$(RELEASE_UPD_TREE)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DTANDEM_UPDATER_BROKEN=$(RELEASE_UPD_BROKEN) $(CFLAGS) -c -o $@ $<

$(RELEASE_STAGE)/bin/tandem-updater: $(UPDATER_SRCS:%.c=$(RELEASE_UPD_TREE)/obj/%.o) $(RELEASE_TESTHOOK) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

.PHONY: release
release: $(RELEASE_BINS) $(BUILD)/tandem
	@set -e; t=$(RELEASE_STAGE); out='$(RELEASE_OUT)'; \
	rm -f $$t/manifest.json; \
	mkdir -p "$$(dirname "$$out")"; \
	$(BUILD)/tandem release pack $$t --version '$(VERSION)' --output "$$out"

-include $(shell find $(RELEASE_TREE)/obj $(RELEASE_UPD_TREE)/obj -name '*.d' 2>/dev/null)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)


# ---- install / uninstall / deb (issue 7, packaging/, wiki/Operations.md) ----
#   make install [DESTDIR=D] [PREFIX=/usr/local] [VERSION=x]   (install-worker + install-master)
#   make uninstall [DESTDIR=D] [PREFIX=...]   (leaves /etc/tandem and /var/lib/tandem)
#   make deb [VERSION=x]   -> $(BUILD)/deb/tandem-worker_V_ARCH.deb, tandem-master_V_ARCH.deb
# Installed binaries carry VERSION: the agent and updater are the ones of
# `make release` (release-good-VERSION/, debug info stripped), which also
# becomes the seed release the unit passes to the updater on a fresh host; the
# CLI is compiled again into $(BUILD)/pkg-VERSION/. Config files are installed
# only where none exists yet (never over an admin's edits). No chown here: the
# deb's postinst creates the tandem user and sets owners (wiki/Operations.md).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
PKGLIBDIR  ?= $(PREFIX)/lib/tandem
DOCDIR     ?= $(PREFIX)/share/doc/tandem
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
STATEDIR   ?= /var/lib/tandem
PKG_TREE   := $(BUILD)/pkg-$(VERSION)
PKG_REL    := $(BUILD)/release-good-$(VERSION)/stage/bin
PKG_SEED   := $(PKG_TREE)/tandem-agent-release.tar.gz
PKG_SUBST  := sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|@PKGLIBDIR@|$(PKGLIBDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'

.PHONY: install install-worker install-master uninstall deb pkg-seed

$(PKG_TREE)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(PKG_TREE)/bin/tandem: $(MASTER_SRCS:%.c=$(PKG_TREE)/obj/%.o) $(TESTHOOK_OFF) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

# The launcher is what the unit runs: it starts the updater and judges its
# self-updates (wiki/Self-Update.md). A self-update never replaces it.
$(PKG_TREE)/bin/tandem-launcher: $(LAUNCHER_SRCS:%.c=$(PKG_TREE)/obj/%.o) $(UPDATER_MODS:%.c=$(PKG_TREE)/obj/%.o) \
		$(TESTHOOK_OFF) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

# The seed release, and with it the version-stamped agent and updater binaries.
# $(LIB) first, so that the sub-make never builds it while install-master does.
pkg-seed: $(LIB)
	@$(MAKE) --no-print-directory release RELEASE_KIND=good RELEASE_UPDATER_KIND=good \
		RELEASE_TEST_HOOKS=0 RELEASE_OUT='$(PKG_SEED)' >/dev/null

install: install-worker install-master

install-worker: pkg-seed $(PKG_TREE)/bin/tandem-launcher
	install -d -m 0755 '$(DESTDIR)$(SBINDIR)' '$(DESTDIR)$(PKGLIBDIR)' '$(DESTDIR)$(UNITDIR)' \
		'$(DESTDIR)$(DOCDIR)'
	install -m 0755 $(PKG_REL)/tandem-updater $(PKG_REL)/tandem-agent \
		$(PKG_TREE)/bin/tandem-launcher '$(DESTDIR)$(SBINDIR)/'
	install -m 0644 '$(PKG_SEED)' '$(DESTDIR)$(PKGLIBDIR)/tandem-agent-release.tar.gz'
	$(PKG_SUBST) packaging/systemd/tandem-updater.service.in > '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp'
	mv -f '$(DESTDIR)$(UNITDIR)/tandem-updater.service.tmp' '$(DESTDIR)$(UNITDIR)/tandem-updater.service'
	install -m 0644 wiki/Operations.md '$(DESTDIR)$(DOCDIR)/Operations.md'
	install -d -m 0750 '$(DESTDIR)$(SYSCONFDIR)/tandem' '$(DESTDIR)$(STATEDIR)'
	@set -e; d='$(DESTDIR)$(SYSCONFDIR)/tandem'; \
	for f in updater.conf agent.conf; do \
		if [ -e "$$d/$$f" ]; then echo "install: keeping existing $$d/$$f"; continue; fi; \
		if [ -e packaging/etc/$$f.in ]; then $(PKG_SUBST) packaging/etc/$$f.in > "$$d/$$f.tmp"; \
		else cp packaging/etc/$$f "$$d/$$f.tmp"; fi; \
		chmod 0640 "$$d/$$f.tmp"; mv -f "$$d/$$f.tmp" "$$d/$$f"; echo "install: $$d/$$f"; \
	done

install-master: $(PKG_TREE)/bin/tandem
	install -d -m 0755 '$(DESTDIR)$(BINDIR)'
	install -m 0755 $(PKG_TREE)/bin/tandem '$(DESTDIR)$(BINDIR)/tandem'

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/tandem' '$(DESTDIR)$(SBINDIR)/tandem-updater' \
		'$(DESTDIR)$(SBINDIR)/tandem-agent' '$(DESTDIR)$(SBINDIR)/tandem-launcher' \
		'$(DESTDIR)$(PKGLIBDIR)/tandem-agent-release.tar.gz' \
		'$(DESTDIR)$(UNITDIR)/tandem-updater.service' '$(DESTDIR)$(DOCDIR)/Operations.md'
	rmdir '$(DESTDIR)$(PKGLIBDIR)' '$(DESTDIR)$(DOCDIR)' 2>/dev/null || true
	@echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/tandem and $(DESTDIR)$(STATEDIR) are kept"

# Debian packages with dpkg-deb; Depends from dpkg-shlibdeps on the staged
# binaries. The deb layout is PREFIX=/usr and units in /lib/systemd/system
# (Debian 12). Owners are root in the archive; postinst gives the tandem user
# what it needs.
DEB_DIR  := $(BUILD)/deb
DEB_WORK := $(DEB_DIR)/work
DEB_ARCH  = $(shell dpkg --print-architecture)
ifneq ($(filter deb,$(MAKECMDGOALS)),)
ifneq ($(shell printf '%s' '$(VERSION)' | grep -Ex '[0-9][A-Za-z0-9.+~-]{0,63}'),$(VERSION))
$(error VERSION=$(VERSION): a Debian version starts with a digit and uses A-Z a-z 0-9 . + ~ -)
endif
endif

deb:
	rm -rf '$(DEB_WORK)'
	mkdir -p '$(DEB_WORK)/debian'
	: > '$(DEB_WORK)/debian/control'
	$(MAKE) --no-print-directory install-worker DESTDIR='$(abspath $(DEB_WORK))/debian/tandem-worker' \
		PREFIX=/usr UNITDIR=/lib/systemd/system DOCDIR=/usr/share/doc/tandem-worker \
		SYSCONFDIR=/etc STATEDIR=/var/lib/tandem
	$(MAKE) --no-print-directory install-master DESTDIR='$(abspath $(DEB_WORK))/debian/tandem-master' \
		PREFIX=/usr
	@set -e; cd '$(DEB_WORK)'; \
	for p in tandem-worker tandem-master; do \
		mkdir -p debian/$$p/DEBIAN; \
		bins=$$(find debian/$$p/usr/bin debian/$$p/usr/sbin -type f 2>/dev/null | sort); \
		shlibs=$$(dpkg-shlibdeps -O $$bins 2>/dev/null | sed -n 's/^shlibs:Depends=//p'); \
		[ -n "$$shlibs" ] || { echo "deb: dpkg-shlibdeps found no dependencies for $$p" >&2; exit 1; }; \
		size=$$(du -sk --exclude=DEBIAN debian/$$p | cut -f1); \
		sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' -e "s|@SIZE@|$$size|" \
			-e "s|@SHLIBS@|$$shlibs|" $(CURDIR)/packaging/debian/$$p.control.in > debian/$$p/DEBIAN/control; \
		for s in conffiles postinst prerm postrm; do \
			f=$(CURDIR)/packaging/debian/$$p.$$s; [ -e $$f ] || continue; \
			cp $$f debian/$$p/DEBIAN/$$s; \
			if [ $$s = conffiles ]; then chmod 0644 debian/$$p/DEBIAN/$$s; \
			else chmod 0755 debian/$$p/DEBIAN/$$s; fi; \
		done; \
		out=../$${p}_$(VERSION)_$(DEB_ARCH).deb; rm -f "$$out"; \
		dpkg-deb --root-owner-group --build debian/$$p "$$out" >/dev/null; \
		echo "deb: $(DEB_DIR)/$${p}_$(VERSION)_$(DEB_ARCH).deb"; \
	done

-include $(shell find $(PKG_TREE)/obj -name '*.d' 2>/dev/null)
