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

LIB_SRCS   := $(wildcard common/*.c pki/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libtandem.a

MASTER_SRCS  := $(wildcard master/*.c)
AGENT_SRCS   := $(wildcard agent/*.c)
UPDATER_SRCS := $(wildcard updater/*.c)

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

$(BUILD)/tandem: $(MASTER_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-agent: $(AGENT_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tandem-updater: $(UPDATER_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the program module libraries before libtandem.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(PROG_LIBS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit-bins: $(UNIT_BINS)

# Unit tests: every test_* binary, each run on its own; any failure fails the target.
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: all
	TANDEM_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -p no:cacheprovider tests/e2e

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
		-I. common pki master agent updater tests/tools
	@if grep -nE '\b($(BANNED))\s*\(' $$(find common pki master agent updater tests bench -name '*.[ch]') \
		| grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'; then \
		echo "lint: banned function used (STYLE.md 15)"; exit 1; fi
	@echo "lint: ok"

# libFuzzer harnesses: tests/fuzz/fuzz_<name>.c, corpus in tests/fuzz/corpus/<name>/.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -DTANDEM_VERSION='"fuzz"'
FUZZ_SECONDS ?= 15

fuzz: $(FUZZ_BINS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS)

# Harnesses of updater parsers also link the updater module they exercise.
build-fuzz/fuzz_extract: tests/fuzz/fuzz_extract.c updater/extract.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< updater/extract.c $(LIB_SRCS) $(LDLIBS)

build-fuzz/fuzz_updater_manifest: tests/fuzz/fuzz_updater_manifest.c updater/manifest.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< updater/manifest.c $(LIB_SRCS) $(LDLIBS)

# The manifest reader lives in the master's release packer.
build-fuzz/fuzz_manifest: tests/fuzz/fuzz_manifest.c master/release_pack.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< master/release_pack.c $(LIB_SRCS) $(LDLIBS)

fuzz-run: fuzz
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f | sed 's/^fuzz_//'); \
		mkdir -p tests/fuzz/corpus/$$n build-fuzz/corpus-$$n; \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 -print_final_stats=0 \
			build-fuzz/corpus-$$n tests/fuzz/corpus/$$n 2>build-fuzz/$$n.log || { tail -50 build-fuzz/$$n.log; exit 1; }; \
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
# normal binaries; packs manifest.json and bin/ into a deterministic gzip tar
# (sorted, owner 0/0, mtime 0) and prints "SHA256  FILE".
RELEASE_KIND ?= good
release_kind_good := 0
release_kind_exit-at-once := 1
release_kind_never-ready := 2
release_kind_wrong-version := 3
release_kind_crash-later := 4
release_kind_slow-health := 5
RELEASE_BROKEN := $(release_kind_$(RELEASE_KIND))
RELEASE_TREE := $(BUILD)/release-$(RELEASE_KIND)-$(VERSION)
# The updater's objects do not depend on the agent's kind: shared by all kinds.
RELEASE_UPD_TREE := $(BUILD)/release-updater-$(VERSION)
RELEASE_OUT ?= $(BUILD)/tandem-agent-$(VERSION)$(if $(filter-out good,$(RELEASE_KIND)),-$(RELEASE_KIND)).tar.gz
RELEASE_BINS := $(RELEASE_TREE)/stage/bin/tandem-agent
# The self-update ships both binaries in one tarball, once the updater has a main().
ifneq ($(wildcard updater/main.c),)
RELEASE_BINS += $(RELEASE_TREE)/stage/bin/tandem-updater
endif

ifneq ($(filter release,$(MAKECMDGOALS)),)
ifeq ($(RELEASE_BROKEN),)
$(error RELEASE_KIND=$(RELEASE_KIND): use good, exit-at-once, never-ready, wrong-version, crash-later or slow-health)
endif
ifneq ($(shell printf '%s' '$(VERSION)' | grep -Ex '[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}'),$(VERSION))
$(error VERSION=$(VERSION): use 1-64 characters of A-Z a-z 0-9 . + ~ _ -, starting alphanumeric)
endif
endif

$(RELEASE_TREE)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DTANDEM_AGENT_BROKEN=$(RELEASE_BROKEN) $(CFLAGS) -c -o $@ $<

$(RELEASE_TREE)/stage/bin/tandem-agent: $(AGENT_SRCS:%.c=$(RELEASE_TREE)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

$(RELEASE_UPD_TREE)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(RELEASE_TREE)/stage/bin/tandem-updater: $(UPDATER_SRCS:%.c=$(RELEASE_UPD_TREE)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	strip --strip-debug $@

.PHONY: release
release: $(RELEASE_BINS)
	@set -e; t=$(RELEASE_TREE)/stage; out='$(RELEASE_OUT)'; \
	{ printf '{"name":"tandem-agent","version":"%s","entrypoint":"bin/tandem-agent",' '$(VERSION)'; \
	  printf '"preflight":["bin/tandem-agent","--self-test"]'; \
	  if [ -e $$t/bin/tandem-updater ]; then printf ',"updater_entrypoint":"bin/tandem-updater"'; fi; \
	  printf '}\n'; } > $$t/manifest.json; \
	chmod 0755 $$t $$t/bin $$t/bin/*; chmod 0644 $$t/manifest.json; \
	mkdir -p "$$(dirname "$$out")"; \
	tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
		-C $$t -cf "$$out.tmp.tar" bin manifest.json; \
	gzip -n -9 -c "$$out.tmp.tar" > "$$out.tmp"; rm -f "$$out.tmp.tar"; \
	mv -f "$$out.tmp" "$$out"; \
	sha256sum "$$out"

-include $(shell find $(RELEASE_TREE)/obj $(RELEASE_UPD_TREE)/obj -name '*.d' 2>/dev/null)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
