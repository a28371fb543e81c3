#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer target (clang, with
# AddressSanitizer and UndefinedBehaviorSanitizer) into build-fuzz/ and runs
# each for FUZZ_SECONDS (default 20). Exits non-zero if any target fails to
# build or finds a crash.
#
#   scripts/fuzz.sh                  all targets
#   scripts/fuzz.sh fuzz_address     only the named targets
#
# Corpora: build-fuzz/corpus/<name>/ (grows across runs), seeded read-only from
# tests/fuzz/corpus/<name>/ when present; tests/fuzz/<name>.dict is used as a
# dictionary when present. Crash inputs land in build-fuzz/artifacts/.
# Environment: CLANG (default clang), FUZZ_SECONDS, FUZZ_JOBS (parallel compiles).
set -u

cd "$(dirname "$0")/.." || exit 1

CLANG=${CLANG:-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
OUT=build-fuzz
PKGS="libevent_core libevent_extra libevent_pthreads libevent_openssl openssl sqlite3 inih libcrypt zlib libunbound"
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz: $CLANG not found (apt-get install clang)" >&2
	exit 1
fi
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || { echo "fuzz: pkg-config failed for: $PKGS" >&2; exit 1; }
PKG_LIBS=$(pkg-config --libs $PKGS) || exit 1

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c17 -D_GNU_SOURCE -g -O1 -Isrc $PKG_CFLAGS $SAN"
export CLANG CFLAGS OUT

mkdir -p "$OUT/obj" "$OUT/artifacts" "$OUT/corpus" || exit 1

# Every source file except main.c, compiled once with coverage instrumentation
# (fuzzer-no-link) and shared by all targets.
SRCS=$(find src/ -name '*.c' ! -path src/main.c | sort)
echo "fuzz: compiling $(echo "$SRCS" | wc -l) source files"
if ! printf '%s\n' $SRCS | xargs -P "$JOBS" -I{} sh -c '
	o="$OUT/obj/$(echo "{}" | sed "s|^src/||; s|/|_|g; s|\.c$|.o|")"
	$CLANG $CFLAGS -fsanitize=fuzzer-no-link -c -o "$o" "{}" || exit 255'; then
	echo "fuzz: compiling src/ failed" >&2
	exit 1
fi
OBJS=""
for s in $SRCS; do
	OBJS="$OBJS $OUT/obj/$(echo "$s" | sed 's|^src/||; s|/|_|g; s|\.c$|.o|')"
done

if [ $# -gt 0 ]; then
	TARGETS="$*"
else
	TARGETS=$(for f in tests/fuzz/fuzz_*.c; do [ -e "$f" ] && basename "$f" .c; done)
fi
if [ -z "$TARGETS" ]; then
	echo "fuzz: no targets in tests/fuzz/" >&2
	exit 1
fi

failed=""
for name in $TARGETS; do
	src="tests/fuzz/$name.c"
	if [ ! -f "$src" ]; then
		echo "fuzz: $name: no $src" >&2
		failed="$failed $name"
		continue
	fi
	# shellcheck disable=SC2086
	if ! $CLANG $CFLAGS -fsanitize=fuzzer -o "$OUT/$name" "$src" $OBJS $PKG_LIBS -lpthread -lm; then
		echo "fuzz: $name: build failed" >&2
		failed="$failed $name"
		continue
	fi
done

for name in $TARGETS; do
	case " $failed " in *" $name "*) continue ;; esac
	corpus="$OUT/corpus/$name"
	mkdir -p "$corpus"
	set -- "-max_total_time=$FUZZ_SECONDS" "-artifact_prefix=$OUT/artifacts/$name-" \
		"-print_final_stats=1" "$corpus"
	[ -d "tests/fuzz/corpus/$name" ] && set -- "$@" "tests/fuzz/corpus/$name"
	[ -f "tests/fuzz/$name.dict" ] && set -- "-dict=tests/fuzz/$name.dict" "$@"
	log="$OUT/$name.log"
	echo "fuzz: $name: running ${FUZZ_SECONDS}s"
	if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"./$OUT/$name" "$@" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		echo "fuzz: $name: ok (${runs:-?} runs)"
	else
		echo "fuzz: $name: FAILED, log $log, artifacts $OUT/artifacts/$name-*" >&2
		tail -n 40 "$log" >&2
		failed="$failed $name"
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
echo "fuzz: all targets clean"
