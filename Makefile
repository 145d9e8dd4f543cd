# nightjar — plain Makefile.  `make help` lists the targets.
#
# The tree is layered, one folder per layer under src/, and calls go one way:
#
#   cli -> serve -> agent -> analyst -> store -> engine -> kernels -> format -> platform -> util
#
# The Makefile enforces it: a file is compiled with the include path of its
# own layer and the layers below it only, so an upward #include does not
# build.  Sources are discovered by glob (adding a module never edits this
# file):
#
#   src/{util,platform,format,kernels,engine}/*.c -> libnightjar.a, the engine
#       library: links with -lm -lpthread, PCRE2 and utf8proc only;
#   src/{store,analyst,agent,serve,cli}/*.c (except cli/main.c) -> libnjapp.a,
#       the product (HTTP, SQLite, events, rules, downloads);
#   src/cli/main.c -> nightjar;  tests/<layer>/test_*.c -> one cmocka binary
#   each (tests/support/ holds what tests and tools share);  tools/*.c -> one
#   binary each.
#
# Kernel files get their ISA flags by name (src/kernels/avx2.c gets -mavx2 ...)
# and only files under src/kernels/ ever contain intrinsics: the rest of the
# build has no -march, so the binary runs on any CPU of the architecture and
# picks its kernels at start-up.

CC      ?= cc
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)
O       ?= build
OPT     ?= -O2
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wpedantic -Wno-unused-parameter
CFLAGS  ?= $(OPT) -g
CFLAGS  += $(CSTD) $(WARN) -Iinclude -MMD -MP -pthread

# Third-party libraries (Debian packages, see scripts/setup): the engine
# library needs the first two; the product needs the rest.
LIB_PKGS := libpcre2-8 libutf8proc
APP_PKGS := libmicrohttpd jansson sqlite3 libcurl yaml-0.1 expat
# A missing library is an error here, not an empty flag list (which would
# surface later as a link failure naming some symbol).
ifeq ($(filter clean help cross test-arm,$(MAKECMDGOALS)),)
PKG_MISSING := $(shell for p in $(LIB_PKGS) $(APP_PKGS); do pkg-config --exists $$p || echo $$p; done)
ifneq ($(strip $(PKG_MISSING)),)
$(error missing libraries (pkg-config): $(PKG_MISSING); run scripts/setup)
endif
endif
pkgcf = $(shell pkg-config --cflags $(1) 2>/dev/null | sed 's/-DUTF8PROC_EXPORTS//')
LIB_LIBS := $(shell pkg-config --libs $(LIB_PKGS) 2>/dev/null) -lm -pthread
APP_LIBS := $(shell pkg-config --libs $(APP_PKGS) 2>/dev/null)
ifeq ($(CROSS),)
CFLAGS  += $(call pkgcf,$(LIB_PKGS) $(APP_PKGS))
else
# Cross build (make cross): the host's pkg-config flags name host header
# directories; the engine library needs only the PCRE2 and utf8proc
# headers, which are the same for every architecture (libpcre2-dev:arm64
# and libutf8proc-dev:arm64 put the libraries under /usr/lib/<triplet>).
CFLAGS  += -idirafter /usr/include
endif

# Layers, lowest first.  Each sees its own headers and those of the layers
# before it in this list.
LIB_LAYERS := util platform format kernels engine
APP_LAYERS := store analyst agent serve cli
LAYERS     := $(LIB_LAYERS) $(APP_LAYERS)
_acc :=
$(foreach L,$(LAYERS),$(eval _acc += -Isrc/$(L))$(eval INC_$(L) := $(_acc)))
ALL_INC := $(foreach D,$(LAYERS),-Isrc/$(D)) -Itests/support
$(foreach L,$(LAYERS),$(eval $(O)/src/$(L)/%.o: LAYER_INC := $(INC_$(L))))

srcs_of = $(foreach L,$(1),$(wildcard src/$(L)/*.c))
LIB_SRC := $(filter-out src/kernels/%,$(call srcs_of,$(LIB_LAYERS)))
KERN_ALL := $(wildcard src/kernels/*.c)
ifeq ($(ARCH),x86_64)
KERN_SRC := $(filter-out src/kernels/neon.c,$(KERN_ALL))
else ifeq ($(ARCH),aarch64)
KERN_SRC := $(filter-out src/kernels/avx2.c src/kernels/avx512.c,$(KERN_ALL))
else
KERN_SRC := $(filter-out src/kernels/avx2.c src/kernels/avx512.c src/kernels/neon.c,$(KERN_ALL))
endif
# Platform module: one implementation per OS, nothing else includes OS headers.
ifeq ($(shell uname -s),Darwin)
LIB_SRC := $(filter-out src/platform/platform_linux.c,$(LIB_SRC))
else
LIB_SRC := $(filter-out src/platform/platform_macos.c,$(LIB_SRC))
endif
APP_SRC := $(filter-out src/cli/main.c,$(call srcs_of,$(APP_LAYERS)))
SUP_SRC := $(wildcard tests/support/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o) $(KERN_SRC:%.c=$(O)/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(O)/%.o)
SUP_OBJ  := $(SUP_SRC:%.c=$(O)/%.o)
LIB      := $(O)/libnightjar.a
APPLIB   := $(O)/libnjapp.a
SUPLIB   := $(O)/libnjsupport.a
BIN      := $(O)/nightjar
TEST_SRC := $(wildcard tests/*/test_*.c)
TEST_BIN := $(TEST_SRC:%.c=$(O)/%)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(O)/tools/%)
LINKCHECK := $(O)/tests/linkcheck

# Per-ISA flags for kernel files only.
$(O)/src/kernels/avx2.o:   KFLAGS := -mavx2 -mfma -mf16c
$(O)/src/kernels/avx512.o: KFLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c
$(O)/src/kernels/neon.o:   KFLAGS := -march=armv8.2-a+dotprod+fp16
$(O)/tests/support/%.o:    LAYER_INC := $(ALL_INC)

.PHONY: all test check check-tsan bench fuzz kernels cross test-arm conformance layers install clean help \
        schema-corpus retrieve-eval parse-bench sigma-bench crash-test
all: $(BIN) $(TOOL_BIN) $(LINKCHECK)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LAYER_INC) $(KFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(APPLIB): $(APP_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(SUPLIB): $(SUP_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(O)/src/cli/main.o $(APPLIB) $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(APP_LIBS) $(LIB_LIBS)

# The engine library alone: a program that links it with the engine's own
# libraries and nothing of the product (no HTTP, JSON, SQLite, curl).
$(LINKCHECK): tests/linkcheck.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LIB_LIBS)

$(O)/tests/%: tests/%.c $(APPLIB) $(LIB) $(SUPLIB) tests/support/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_INC) -o $@ $< $(SUPLIB) $(APPLIB) $(LIB) $(APP_LIBS) $(LIB_LIBS) -lcmocka

$(O)/tools/%: tools/%.c $(APPLIB) $(LIB) $(SUPLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_INC) -o $@ $< $(SUPLIB) $(APPLIB) $(LIB) $(APP_LIBS) $(LIB_LIBS)

# Unit tests: every tests/<layer>/test_* binary, cmocka summaries printed,
# then the script tests, then one plain closing line.  Tests that need a
# model find it through NIGHTJAR_TEST_MODEL_DIR (scripts/get-models fills
# it) and skip otherwise.
test: $(BIN) $(TEST_BIN) $(TOOL_BIN) $(LINKCHECK)
	@NJ_BIN=$(abspath $(BIN)) O=$(O) scripts/run-tests $(LINKCHECK) $(TEST_BIN)

# Sanitizers: ASan+UBSan build of everything, then the tests, except the
# schema corpus script (test_schema_corpus.sh): it loads the model and
# generates once for each of 152 schemas, 20+ minutes under ASan on 2 cores,
# and its C paths (schema compiler, grammar, sampler) run under ASan+UBSan
# in test_grammar, test_sampler and the json_schema fuzz target already.
# `make test` runs it.
CHECK_SKIP ?= test_schema_corpus.sh
check:
	SKIP_SCRIPT_TESTS="$(CHECK_SKIP)" \
	$(MAKE) O=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    test
# ThreadSanitizer on the threaded code only: the compute pool, the delivery
# loop and sinks, the service in process (test_server_faults) and as a
# binary (test_server.sh: worker, HTTP threads, SIGHUP, drain), and the
# watcher (test_watch.sh).  The single-threaded tests would only be slower.
TSAN_TESTS := tests/engine/test_pool tests/agent/test_sinks tests/serve/test_server_faults
TSAN_SCRIPTS := tests/serve/test_server.sh tests/agent/test_watch.sh
check-tsan:
	$(MAKE) O=build-tsan OPT="-O1 -fno-omit-frame-pointer -fsanitize=thread" \
	    build-tsan/nightjar $(TSAN_TESTS:%=build-tsan/%)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" NJ_BIN=$(abspath build-tsan/nightjar) \
	    O=build-tsan SCRIPT_TESTS="$(TSAN_SCRIPTS)" scripts/run-tests $(TSAN_TESTS:%=build-tsan/%)

bench: all
	bench/compare

# The kernel objects alone (scripts/fuzz builds them without sanitizers:
# no parser runs in them, and clang's ASan build of avx512.c alone took 11
# CPU minutes).
kernels: $(KERN_SRC:%.c=$(O)/%.o)

FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_TIME=$(FUZZ_SECONDS) scripts/fuzz

# ARM: cross-compile the engine library with gcc-aarch64-linux-gnu, run the
# compute core's unit tests under qemu-user.
cross:
	$(MAKE) O=build-arm CC=aarch64-linux-gnu-gcc CROSS=1 build-arm/libnightjar.a
test-arm:
	scripts/test-arm

conformance: all
	scripts/conformance

# The schema corpus with 20 documents per schema (make test runs 1), the
# retrieval base as a k-NN classifier, parser throughput, Sigma speed.
DEV_SET ?= ../shared/eval/commands-dev.jsonl
schema-corpus: $(BIN)
	RUNS=20 NJ_BIN=$(abspath $(BIN)) python3 tests/engine/schema_corpus.py
retrieve-eval: $(O)/tools/retrieve-eval
	$(O)/tools/retrieve-eval eval $(wildcard $(DEV_SET)) eval/commands.jsonl
parse-bench: $(O)/tools/parse-bench
	$(O)/tools/parse-bench
sigma-bench: $(O)/tools/sigma-bench
	$(O)/tools/sigma-bench
# 20 SIGKILLs while 1,000 events go through watch -> SmolLM2 -> syslog and
# webhook sinks (make test runs a 4-kill, 60-event variant).
crash-test: $(BIN)
	NJ_BIN=$(abspath $(BIN)) python3 tests/agent/crash_model.py --kills 20 --events 1000

# Which layer includes which: prints any include that goes up a layer
# (the build refuses those already; this names them for a reader).
layers:
	@scripts/check-layers

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/nightjar
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libnightjar.a
	install -m 644 include/nightjar.h $(DESTDIR)$(PREFIX)/include/nightjar.h

clean:
	rm -rf build build-asan build-tsan build-arm build-arm-tests build-fuzz

help:
	@echo "targets: all test check check-tsan bench fuzz cross test-arm conformance layers install clean"

-include $(LIB_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(SUP_OBJ:.o=.d) $(O)/src/cli/main.d
