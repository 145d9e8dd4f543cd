# nightjar — plain Makefile.  `make help` lists the targets.
#
# Sources are discovered by glob so adding a module never means editing this
# file:  src/*.c (except main.c) and src/kernels/*.c -> libnightjar.a;
# src/main.c -> nightjar;  tests/test_*.c -> one cmocka binary each;
# tools/*.c -> one binary each.  Kernel files get their ISA flags by name
# (src/kernels/avx2.c gets -mavx2 ... ) and only those files ever see
# intrinsics: the rest of the build has no -march, so the binary runs on any
# CPU of the architecture and picks its kernels at start-up.

CC      ?= cc
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)
O       ?= build
OPT     ?= -O2
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wpedantic -Wno-unused-parameter
CFLAGS  ?= $(OPT) -g
CFLAGS  += $(CSTD) $(WARN) -Iinclude -Isrc -MMD -MP -pthread
LDLIBS  += -lm -pthread
# Third-party libraries (Debian packages, see scripts/setup).
PKGS    := libmicrohttpd jansson libpcre2-8 libutf8proc sqlite3 libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null | sed 's/-DUTF8PROC_EXPORTS//')
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) $(LDLIBS)

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
KERN_ALL := $(wildcard src/kernels/*.c)
ifeq ($(ARCH),x86_64)
KERN_SRC := $(filter-out src/kernels/neon.c,$(KERN_ALL))
else ifeq ($(ARCH),aarch64)
KERN_SRC := $(filter-out src/kernels/avx2.c src/kernels/avx512.c,$(KERN_ALL))
else
KERN_SRC := $(filter src/kernels/scalar.c src/kernels/dispatch.c,$(KERN_ALL))
endif
# Platform module: one implementation per OS, nothing else includes OS headers.
ifeq ($(shell uname -s),Darwin)
LIB_SRC := $(filter-out src/platform_linux.c,$(LIB_SRC))
else
LIB_SRC := $(filter-out src/platform_macos.c,$(LIB_SRC))
endif

LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o) $(KERN_SRC:%.c=$(O)/%.o)
LIB      := $(O)/libnightjar.a
BIN      := $(O)/nightjar
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(O)/tools/%)

# Per-ISA flags for kernel files only.
$(O)/src/kernels/avx2.o:   KFLAGS := -mavx2 -mfma -mf16c
$(O)/src/kernels/avx512.o: KFLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c
$(O)/src/kernels/neon.o:   KFLAGS := -march=armv8.2-a+dotprod+fp16

.PHONY: all test check bench fuzz cross test-arm conformance install clean help
all: $(BIN) $(TOOL_BIN)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(O)/src/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/%: tests/%.c $(LIB) tests/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB) $(LDLIBS) -lcmocka

$(O)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Unit tests: every tests/test_* binary, cmocka summaries printed, then one
# plain closing line.  Tests that need a model find it through
# NIGHTJAR_TEST_MODEL_DIR (scripts/get-models fills it) and skip otherwise.
test: $(BIN) $(TEST_BIN) $(TOOL_BIN)
	@NJ_BIN=$(abspath $(BIN)) O=$(O) scripts/run-tests $(TEST_BIN)

# Sanitizers: ASan+UBSan build of everything, then the tests.
check:
	$(MAKE) O=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    test
check-tsan:
	$(MAKE) O=build-tsan OPT="-O1 -fsanitize=thread" test

bench: all
	bench/compare

fuzz:
	scripts/fuzz

# ARM: cross-compile with gcc-aarch64-linux-gnu, run the unit tests under qemu-user.
cross:
	$(MAKE) O=build-arm CC=aarch64-linux-gnu-gcc PKG_CFLAGS= PKG_LIBS= \
	    LDLIBS="-lm -pthread" build-arm/libnightjar.a
test-arm:
	scripts/test-arm

conformance: all
	scripts/conformance

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/nightjar
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libnightjar.a
	install -m 644 include/nightjar.h $(DESTDIR)$(PREFIX)/include/nightjar.h

clean:
	rm -rf build build-asan build-tsan build-arm

help:
	@echo "targets: all test check check-tsan bench fuzz cross test-arm conformance install clean"

-include $(LIB_OBJ:.o=.d) $(O)/src/main.d

# --- kb (lead merges this)
# Analyst retrieval: src/analyst/retrieve.c in the library, its cmocka test,
# tools/retrieve-eval (built by `all` through the tools glob) and the data
# checker.  `make test-retrieve` runs the unit tests and the data checker;
# `make retrieve-eval` prints the k-NN table and the speed figure.
CFLAGS   += -Isrc/analyst
LIB_OBJ  += $(O)/src/analyst/retrieve.o
$(LIB): $(O)/src/analyst/retrieve.o
KB_TESTS := $(O)/tests/analyst/test_retrieve
TEST_BIN += $(KB_TESTS)
test: $(KB_TESTS)
$(O)/tests/analyst/%: tests/analyst/%.c $(LIB) tests/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB) $(LDLIBS) -lcmocka
.PHONY: test-retrieve retrieve-eval
test-retrieve: $(KB_TESTS)
	KB_DIR=$(abspath kb) $(KB_TESTS)
	python3 tests/analyst/check_eval_set.py --self-test
	python3 tests/analyst/check_eval_set.py
DEV_SET ?= /work/shared/eval/commands-dev.jsonl
retrieve-eval: $(O)/tools/retrieve-eval
	$(O)/tools/retrieve-eval eval $(wildcard $(DEV_SET)) eval/commands.jsonl
	$(O)/tools/retrieve-eval --diversity 0.5 eval $(wildcard $(DEV_SET)) eval/commands.jsonl
	$(O)/tools/retrieve-eval bench eval/commands.jsonl
-include $(O)/src/analyst/retrieve.d
