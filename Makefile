# hermod build. `make` builds ./hermod; see README.md for run/test.
CC      ?= cc
PKGS    := libevent_core libevent_extra libevent_pthreads libevent_openssl openssl sqlite3 inih libcrypt zlib libunbound
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifneq ($(CI),)
WARN    += -Werror
endif
ifneq ($(WERROR),)
WARN    += -Werror
endif

BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Isrc $(PKG_CFLAGS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lpthread -lm

SRC      := $(shell find src -name '*.c' | sort)
OBJ      := $(SRC:src/%.c=$(BUILD)/%.o)
LIB_OBJ  := $(filter-out $(BUILD)/main.o,$(OBJ))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-test npm-deps run test test-unit test-integration test-asan fuzz bench bench-smtp bench-tls bench-queue clean format

all: hermod

hermod: $(BUILD)/hermod
	@if [ "$(BUILD)" = build ]; then cp -f $(BUILD)/hermod hermod; fi

$(BUILD)/hermod: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(EXTRA_LDFLAGS)

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CCLD $@"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)

-include $(OBJ:.o=.d)

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory npm-deps

# Node.js clients for the tests (tests/npm): installed when node_modules is
# missing or older than package.json.
npm-deps: tests/npm/node_modules/.installed

tests/npm/node_modules/.installed: tests/npm/package.json
	cd tests/npm && npm install --no-audit --no-fund
	@touch $@

run: deps hermod
	@scripts/devrun.sh

test-unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

test-integration: hermod
	HERMOD_BIN=$(CURDIR)/$(BUILD)/hermod /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

test: deps-test
	$(MAKE) hermod
	$(MAKE) test-unit
	$(MAKE) test-integration

# Whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
test-asan: deps-test
	$(MAKE) BUILD=build-asan OPT=-O1 EXTRA_CFLAGS="$(ASAN_FLAGS)" EXTRA_LDFLAGS="$(ASAN_FLAGS)" build-asan/hermod
	$(MAKE) BUILD=build-asan OPT=-O1 EXTRA_CFLAGS="$(ASAN_FLAGS)" EXTRA_LDFLAGS="$(ASAN_FLAGS)" test-unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build-asan test-integration

fuzz: deps-test
	@scripts/fuzz.sh

bench bench-smtp: deps-test hermod
	@bench/bench-smtp.sh

bench-tls: deps-test hermod
	@bench/bench-tls.sh

# Outbound queue throughput against Postfix (N, C: messages, connections)
bench-queue: deps-test hermod
	@bench/bench-queue.sh

.PHONY: bench-pop3
bench-pop3: deps-test hermod
	@bench/bench-pop3.sh

.PHONY: bench-imap
bench-imap: deps-test hermod
	@bench/bench-imap.sh

format:
	clang-format -i $(SRC) $(wildcard src/*/*.h tests/unit/*.c tests/fuzz/*.c)

clean:
	rm -rf build build-asan build-fuzz hermod

# Store delivery throughput (not a test): make bench-store
bench-store: $(BUILD)/bench/store_bench
	$(BUILD)/bench/store_bench $(BENCH_DIR)

$(BUILD)/bench/store_bench: bench/store_bench.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) $(EXTRA_LDFLAGS)
