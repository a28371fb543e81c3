#!/bin/bash
# `make bench-tls`: TLS handshakes and SMTP AUTH under load, and how
# responsive the event loop stays meanwhile.
#
# hermod runs from a temp dir with a fresh self-signed ECDSA P-256
# certificate, its submission listeners on free loopback ports. The load
# generator (bench/tls-load.js, Node.js) runs BENCH_CLIENTS (200) concurrent
# clients, each in a loop for BENCH_SECONDS (20): implicit-TLS connect to the
# submissions (465-role) listener with a full handshake, EHLO, AUTH PLAIN,
# QUIT. One more connection, opened and authenticated before the storm, sends
# NOOP every BENCH_INTERVAL (50) ms and records the reply latency: its p99
# stays low only if handshakes and password hashing run off the event loop.
#
# Prints handshakes/s, auths/s, errors and NOOP p50/p99/max for hermod.
# Postfix + Dovecot SASL for comparison: not automated yet (printed as n/a
# with the reason).
#
# Environment: BENCH_CLIENTS, BENCH_SECONDS, BENCH_INTERVAL, HERMOD (binary),
# BENCH_KEEP=1 (keep the temp dir). Everything listens on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CLIENTS=${BENCH_CLIENTS:-200}
SECONDS_=${BENCH_SECONDS:-20}
INTERVAL=${BENCH_INTERVAL:-50}
HERMOD=${HERMOD:-$ROOT/hermod}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
USER_ADDR=bench@example.test

say() { printf 'bench-tls: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

command -v node >/dev/null || die "node not found (make deps-test)"
command -v openssl >/dev/null || die "openssl not found (make deps-test)"
[ -x "$HERMOD" ] || die "$HERMOD not found; build it with 'make hermod'"

TMP=$(mktemp -d /tmp/bench-tls.XXXXXX)
HERMOD_PID=

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	printf '%s' "${s%% *}"
}

# stop_child PID SECONDS: SIGTERM a child of this shell and wait for it;
# SIGKILL after SECONDS. Returns its exit status.
stop_child() {
	local pid=$1 limit=$2 i=0 st
	kill -TERM "$pid" 2>/dev/null || true
	while :; do
		st=$(proc_state "$pid")
		[ -z "$st" ] || [ "$st" = Z ] && break
		if [ "$i" -ge $((limit * 10)) ]; then
			say "pid $pid did not exit after ${limit}s; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.1
		i=$((i + 1))
	done
	wait "$pid"
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$HERMOD_PID" ]; then
		stop_child "$HERMOD_PID" 30 >/dev/null 2>&1
		HERMOD_PID=
	fi
	if [ -n "${BENCH_KEEP:-}" ]; then
		say "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- hermod

H_JSON='' H_RSS=''

bench_hermod() {
	local dir=$TMP/hermod conf pw smtp sub subs
	mkdir -p "$dir/tls" || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=mx.example.test -addext subjectAltName=DNS:mx.example.test \
		-keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null || return 1
	smtp=$(free_port) && sub=$(free_port) && subs=$(free_port) || return 1
	conf=$dir/hermod.conf
	cat >"$conf" <<EOF
[server]
hostname = mx.example.test
data_dir = data
log_level = warn

[listen]
smtp = 127.0.0.1:$smtp
submission = 127.0.0.1:$sub
submissions = 127.0.0.1:$subs

[tls]
cert = $dir/tls/cert.pem
key = $dir/tls/key.pem

[auth]
max_failures = 100000
account_max_failures = 100000

[limits]
max_connections = 5000
max_connections_per_ip = 5000

[store]
fsync = no
EOF
	"$HERMOD" check -c "$conf" >/dev/null || return 1
	"$HERMOD" domain add example.test -c "$conf" >/dev/null || return 1
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '+/')
	printf '%s\n' "$pw" | "$HERMOD" user add "$USER_ADDR" --password-stdin -c "$conf" >/dev/null || return 1

	"$HERMOD" serve -c "$conf" 2>"$dir/hermod.log" &
	HERMOD_PID=$!
	local i=0
	until port_open "$subs"; do
		if [ -z "$(proc_state "$HERMOD_PID")" ] || [ "$(proc_state "$HERMOD_PID")" = Z ]; then
			say "hermod exited at start-up:"
			tail -n 20 "$dir/hermod.log" >&2
			wait "$HERMOD_PID" || true
			HERMOD_PID=
			return 1
		fi
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "hermod does not listen on 127.0.0.1:$subs"
			return 1
		}
		sleep 0.1
	done

	say "hermod: $CLIENTS clients x ${SECONDS_}s against 127.0.0.1:$subs (implicit TLS)"
	H_JSON=$(node bench/tls-load.js --port "$subs" --ca "$dir/tls/cert.pem" --user "$USER_ADDR" \
		--pass "$pw" --clients "$CLIENTS" --seconds "$SECONDS_" --interval "$INTERVAL") || {
		say "load generator failed"
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	H_RSS=$(awk '/^VmHWM:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$HERMOD_PID/status")
	local rc=0
	stop_child "$HERMOD_PID" 30 || rc=$?
	HERMOD_PID=
	[ "$rc" -eq 0 ] || say "hermod exited with status $rc after SIGTERM"
}

# ---------------------------------------------------------------- Postfix + Dovecot

P_REASON=''
bench_postfix() {
	if ! command -v postfix >/dev/null; then
		P_REASON="postfix not installed"
	elif ! command -v dovecot >/dev/null; then
		P_REASON="dovecot-core not installed (Postfix needs Dovecot or Cyrus for SASL)"
	else
		P_REASON="the private Postfix+Dovecot SASL instance is not automated yet"
	fi
}

# ---------------------------------------------------------------- main

failed=0
bench_hermod || failed=1
bench_postfix

field() { # field JSON PATH -> value
	printf '%s' "$1" | "$PY" -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("n/a" if v is None else v)' "$2"
}

printf '\nbench-tls: %d clients, %ss, implicit TLS (TLS 1.3, ECDSA P-256) + AUTH PLAIN + QUIT per connection\n' \
	"$CLIENTS" "$SECONDS_"
printf '  %-18s %12s %10s %8s %10s %10s %10s\n' "" "handshakes/s" "auths/s" "errors" \
	"NOOP p50" "NOOP p99" "NOOP max"
if [ -n "$H_JSON" ]; then
	printf '  %-18s %12s %10s %8s %8sms %8sms %8sms\n' hermod \
		"$(field "$H_JSON" handshakes_per_s)" "$(field "$H_JSON" auths_per_s)" \
		"$(field "$H_JSON" errors)" "$(field "$H_JSON" noop.p50)" \
		"$(field "$H_JSON" noop.p99)" "$(field "$H_JSON" noop.max)"
	fe=$(field "$H_JSON" first_error)
	[ "$fe" = n/a ] || printf '  hermod first error: %s\n' "$fe"
	printf '  hermod: %s NOOPs measured, peak RSS %s\n' "$(field "$H_JSON" noop.n)" "${H_RSS:-n/a}"
else
	printf '  %-18s %s\n' hermod "n/a (failed, see above)"
fi
printf '  postfix+dovecot: n/a (%s)\n' "$P_REASON"
printf '  (client and server share this machine'"'"'s %s CPU cores)\n' "$(nproc)"

exit "$failed"
