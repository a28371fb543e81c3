#!/bin/bash
# `make bench-imap`: IMAP performance of hermod against Dovecot's IMAP server
# (Debian's dovecot-imapd), measured on this machine in the same run. A
# benchmark, not a test: it prints figures, it does not pass or fail on them.
#
# Load: BENCH_CLIENTS (10) accounts each holding BENCH_MESSAGES (1000)
# messages, a realistic mix: 60% text/plain (1-6 KB), 30% multipart/alternative
# (text + HTML), 10% multipart/mixed with a base64 attachment (6-48 KiB); a
# dozen senders, subjects and dates spread over 2024. hermod is loaded over
# SMTP, Dovecot's maildirs are written directly with the same bytes (the trace
# fields hermod adds included). Each account is opened once before the measured
# run (SELECT, FETCH 1:* (FLAGS ENVELOPE)) so both servers start warm.
#
# The mix: one client process per account, all at once, every part started
# together (a barrier) and timed separately over all clients:
#   login+select      BENCH_LOGINS (20) x connect, LOGIN, SELECT INBOX, LOGOUT
#                     (both servers check the same yescrypt hash: Dovecot gets
#                     it as {CRYPT}, hashed by its single auth process; the
#                     part measures mostly the hashing); logins/s
#   FETCH ENVELOPE    BENCH_ROUNDS (3) x FETCH 1:* (FLAGS ENVELOPE); messages/s
#   FETCH BODY[]      BENCH_BODIES (50) x FETCH n BODY[], one message a command
#                     (sets \Seen, as opening a message does); messages/s
#   UID SEARCH        BENCH_SEARCHES (20) x each of SUBJECT "invoice", FROM
#                     "alice", UNSEEN, SINCE <yesterday> (INTERNALDATE: every
#                     message matches on both); searches/s. The hit counts of
#                     both servers are compared and a difference is printed.
#   STORE             STORE a:b +FLAGS (\Seen) over 1:N in ranges of BENCH_RANGE
#                     (50); messages/s
#   IDLE wake-ups     BENCH_WAKEUPS (20) per client: a connection in IDLE, a
#                     message APPENDed on a second connection (hermod also: an
#                     SMTP delivery); latency from the acknowledgement (APPEND's
#                     tagged OK, the 250 after BDAT) to the untagged EXISTS on the
#                     idling connection; median and p99 over all clients
#                     (Dovecot waits 500 ms after an inotify event before it
#                     looks at the mailbox, by design: its wake-ups sit near
#                     0.5 s whatever the load)
# Ratios are hermod/Dovecot (for throughput: higher is better for hermod); the
# "mix" figure is the geometric mean of the throughput ratios (target of issue
# 8: at least 2).
#
# Load generator check: each part prints the CPU seconds of all client
# processes, of the busiest one, and of the server (all its processes); a
# client process that was busy more than 80% of a part's wall time is flagged
# as a possible bottleneck.
#
# Idle connections: BENCH_IDLE (10000) connections to hermod, each LOGIN,
# SELECT INBOX, IDLE (one asyncio client, BENCH_IDLE_PARALLEL (64) set-ups in
# flight, source addresses 127.0.0.2-17 against port-range limits); VmRSS of
# hermod's process before and after (target: under 200 MB). Dovecot runs one
# imap process per connection: it gets BENCH_IDLE_DOVECOT (1000) connections
# and the sums of VmRSS and of Pss over all its processes (master, config,
# log, anvil, auth, imap-login, imap) are scaled linearly to BENCH_IDLE
# ("before + growth per connection x BENCH_IDLE", printed as such; on the
# machine this was written on Pss per connection was 544 KB at 1,000 and 535
# KB at 3,000 connections, so linear; the RSS sum counts shared pages once per
# process and overstates, Pss does not). Setting up 1,000 takes about a minute.
# A BENCH_IDLE below 10,000 is scaled to 10,000 the same way for hermod (said
# next to the figure). Every login checks a yescrypt hash: 10,000 hermod
# connections take minutes to set up (about 15 on a busy 2-core machine).
#
# hermod runs from a temp dir ([store] fsync = no; [auth]
# allow_plaintext_on_loopback; [limits] max_connections and
# max_connections_per_ip above BENCH_IDLE). Dovecot runs as a private
# instance (dovecot -F -c FILE: its own base_dir, log file and passwd-file, an
# imap listener on a loopback port, ssl = no, mail_fsync = never as hermod's
# fsync = no, login processes in high-performance mode, per-user/IP and
# process limits lifted). Dovecot needs root; when dovecot-imapd is missing it
# is installed with apt-get without starting a system instance. The soft
# RLIMIT_NOFILE is raised to the hard limit; BENCH_IDLE is lowered (and said)
# when the hard limit is too small.
#
# A part the server does not support (a command answered NO or BAD) is "n/a"
# with the server's answer as the reason; the other parts still run.
#
# Environment: BENCH_CLIENTS, BENCH_MESSAGES, BENCH_IDLE, BENCH_IDLE_DOVECOT,
# the per-part counts above, BENCH_ONLY=hermod|dovecot, HERMOD (binary),
# BENCH_KEEP=1 (keep the temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

A=${BENCH_CLIENTS:-10}
N=${BENCH_MESSAGES:-1000}
IDLE=${BENCH_IDLE:-10000}
IDLE_D=${BENCH_IDLE_DOVECOT:-1000}
ONLY=${BENCH_ONLY:-}
HERMOD=${HERMOD:-$ROOT/hermod}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
CLIENT=$ROOT/bench/bench_imap.py

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# shared helpers: now, free_port, port_open, proc_state, alive, stop_child
# shellcheck source=bench/lib.sh disable=SC1091
. bench/lib.sh # the script runs from the repository root (cd above)

[[ $A =~ ^[1-9][0-9]*$ ]] || die "BENCH_CLIENTS must be a positive number"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_MESSAGES must be a positive number"
[[ $IDLE =~ ^[0-9]+$ ]] || die "BENCH_IDLE must be a number"
[[ $IDLE_D =~ ^[0-9]+$ ]] || die "BENCH_IDLE_DOVECOT must be a number"
case $ONLY in '' | hermod | dovecot) ;; *) die "BENCH_ONLY must be hermod or dovecot" ;; esac
[ "$IDLE_D" -le "$IDLE" ] || IDLE_D=$IDLE

# File descriptors: the idle client holds IDLE sockets, hermod as many.
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ]; then
	if [ "$IDLE" -gt $((HARD - 1200)) ]; then
		IDLE=$((HARD > 1200 ? HARD - 1200 : 0))
		[ "$IDLE_D" -le "$IDLE" ] || IDLE_D=$IDLE
		say "the hard RLIMIT_NOFILE is $HARD: BENCH_IDLE lowered to $IDLE"
	fi
	ulimit -n "$HARD"
else
	ulimit -n $((IDLE + 2000))
fi
MAXCONN=$((IDLE + 1000))

# Under /tmp: Dovecot's unprivileged processes must traverse it.
TMP=$(mktemp -d /tmp/bench-imap.XXXXXX)
chmod 755 "$TMP"

HERMOD_PID=
DOVECOT_PID=

# wait_port PID PORT LOG NAME: until PORT accepts connections (PID alive).
wait_port() {
	local pid=$1 port=$2 log=$3 name=$4 i=0
	until port_open "$port"; do
		if ! alive "$pid"; then
			say "$name exited at start-up:"
			tail -n 20 "$log" >&2
			return 1
		fi
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "$name does not listen on 127.0.0.1:$port"
			return 1
		}
		sleep 0.1
	done
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local rc=$?
	set +e
	if [ -n "$HERMOD_PID" ]; then
		stop_child "$HERMOD_PID" 30 >/dev/null 2>&1
		HERMOD_PID=
	fi
	dovecot_stop
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

ACCOUNTS=$TMP/accounts
: >"$ACCOUNTS"
for i in $(seq 1 "$A"); do
	printf 'user%02d@example.test %s\n' "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$ACCOUNTS"
done

# run_mix NAME PORT PID OUTDIR [SMTPPORT]: warm-up, the mix, then the idle
# connections (IDLE_COUNT of them); results in OUTDIR/mix.json, OUTDIR/idle.json.
run_mix() {
	local name=$1 port=$2 pid=$3 out=$4 smtp=${5:-} count=$6
	say "$name: warming up (each account: SELECT, FETCH 1:* (FLAGS ENVELOPE))"
	if ! "$PY" "$CLIENT" warm 127.0.0.1 "$port" "$ACCOUNTS" "$N" 2>"$out/warm.err"; then
		say "$name: the warm-up failed: $(tail -n 1 "$out/warm.err")"
		say "$name: running the mix anyway (its parts will say what is missing)"
	fi
	say "$name: the mix, $A clients"
	"$PY" "$CLIENT" mix "$name" 127.0.0.1 "$port" "$ACCOUNTS" "$N" "$pid" "$out/mix.json" ${smtp:+"$smtp"} || return 1
	if [ "$count" -gt 0 ]; then
		say "$name: $count connections in IDLE"
		"$PY" "$CLIENT" idle "$name" 127.0.0.1 "$port" "$ACCOUNTS" "$count" "$pid" "$out/idle.json" || return 1
	fi
}

# ---------------------------------------------------------------- hermod

bench_hermod() {
	local dir=$TMP/hermod smtp imap conf addr pw t0 t1
	[ -x "$HERMOD" ] || {
		say "$HERMOD not found; build it with 'make hermod'"
		return 1
	}
	mkdir -p "$dir" || return 1
	smtp=$(free_port) && imap=$(free_port) || return 1
	conf=$dir/hermod.conf
	cat >"$conf" <<EOF
[server]
hostname = bench.example.test
data_dir = data

[listen]
smtp = 127.0.0.1:$smtp
imap = 127.0.0.1:$imap

[auth]
allow_plaintext_on_loopback = yes

[limits]
max_connections = $MAXCONN
max_connections_per_ip = $MAXCONN
idle_timeout = 30m

[store]
fsync = no
EOF
	if ! "$HERMOD" check -c "$conf" >"$dir/check.log" 2>&1; then
		say "hermod rejects the configuration (no IMAP yet?):"
		cat "$dir/check.log" >&2
		H_NA="hermod check: $(tail -n 1 "$dir/check.log")"
		return 2
	fi
	"$HERMOD" domain add example.test -c "$conf" >/dev/null || return 1
	while read -r addr pw; do
		printf '%s\n' "$pw" | "$HERMOD" user add "$addr" --password-stdin -c "$conf" >/dev/null || return 1
	done <"$ACCOUNTS"

	"$HERMOD" serve -c "$conf" 2>"$dir/hermod.log" &
	HERMOD_PID=$!
	wait_port "$HERMOD_PID" "$smtp" "$dir/hermod.log" hermod || return 1
	wait_port "$HERMOD_PID" "$imap" "$dir/hermod.log" hermod || return 1

	say "hermod: loading $A x $N messages over SMTP"
	t0=$(now)
	"$PY" "$CLIENT" fill-smtp 127.0.0.1 "$smtp" "$ACCOUNTS" "$N" || {
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	t1=$(now)
	say "hermod: loaded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"

	run_mix hermod "$imap" "$HERMOD_PID" "$dir" "$smtp" "$IDLE" || {
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	alive "$HERMOD_PID" || {
		say "hermod died during the run:"
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	local rc=0
	stop_child "$HERMOD_PID" 60 || rc=$?
	HERMOD_PID=
	[ "$rc" -eq 0 ] || say "hermod exited with status $rc after SIGTERM"
}

# ---------------------------------------------------------------- dovecot

dovecot_stop() {
	[ -n "$DOVECOT_PID" ] || return 0
	local pid=$DOVECOT_PID
	DOVECOT_PID=
	# The master (a child of this shell, -F) stops its processes on SIGTERM.
	stop_child "$pid" 60 >/dev/null 2>&1 || true
}


bench_dovecot() {
	if [ "$(id -u)" -ne 0 ]; then
		say "the Dovecot comparison needs root (a private instance); skipped"
		return 2
	fi
	if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
		dovecot_install dovecot-imapd || {
			say "could not install Dovecot; skipped"
			return 2
		}
	fi
	if ! getent passwd dovenull >/dev/null || ! getent passwd dovecot >/dev/null; then
		say "users dovecot / dovenull missing (broken dovecot install); skipped"
		return 2
	fi

	local dir=$TMP/dovecot port conf vuid vgid addr pw hash procs clients
	vuid=$(id -u nobody)
	vgid=$(id -g nobody)
	mkdir -p "$dir/run" "$dir/state" "$dir/mail" || return 1
	chmod 755 "$dir" "$dir/mail"
	port=$(free_port) || return 1
	conf=$dir/dovecot.conf
	: >"$dir/passwd"
	while read -r addr pw; do
		# the same kind of hash hermod checks (yescrypt, libcrypt's default cost)
		hash=$("$PY" "$CLIENT" hash "$pw") || return 1
		printf '%s:{CRYPT}%s:%s:%s::%s/mail/%s::\n' "$addr" "$hash" "$vuid" "$vgid" "$dir" "${addr%@*}" >>"$dir/passwd"
	done <"$ACCOUNTS"
	chmod 640 "$dir/passwd"
	chgrp dovecot "$dir/passwd"
	procs=$((IDLE_D + 4 * A + 200))
	clients=$((2 * procs + 1000))

	cat >"$conf" <<EOF
# Throw-away Dovecot for bench/bench-imap.sh.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
instance_name = bench-imap-$$
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:$dir/mail/%n/Maildir
mail_fsync = never
mail_max_userip_connections = $procs
default_process_limit = $procs
default_client_limit = $clients
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
  # high-performance mode: long-lived login processes, each serving many
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = $clients
}
service imap {
  process_limit = $procs
  client_limit = 1
}
service anvil {
  chroot =
  client_limit = $clients
}
service auth {
  client_limit = $clients
}
EOF
	say "dovecot: writing $A x $N messages into maildirs"
	"$PY" "$CLIENT" fill-maildir "$dir/mail" "$ACCOUNTS" "$N" "$vuid" "$vgid" || return 1

	dovecot -c "$conf" -n >/dev/null 2>"$dir/check.log" || {
		say "dovecot rejects its config:"
		cat "$dir/check.log" >&2
		return 1
	}
	[ ! -s "$dir/check.log" ] || {
		say "dovecot warns about its config:"
		cat "$dir/check.log" >&2
	}
	dovecot -F -c "$conf" >>"$dir/dovecot.log" 2>&1 &
	DOVECOT_PID=$!
	wait_port "$DOVECOT_PID" "$port" "$dir/dovecot.log" dovecot || return 1

	run_mix dovecot "$port" "$DOVECOT_PID" "$dir" "" "$IDLE_D" || {
		tail -n 20 "$dir/dovecot.log" >&2
		return 1
	}
	dovecot_stop
	if grep -qiE 'error|fatal|panic' "$dir/dovecot.log"; then
		say "dovecot logged errors:"
		grep -iE 'error|fatal|panic' "$dir/dovecot.log" | tail -n 10 >&2
	fi
}

# ---------------------------------------------------------------- run

# In a function, called on the last line: bash has read the whole file before
# any of it runs, so editing the script during a run cannot derail that run.
main() {

	H_NA=
	say "$A clients/accounts x $N messages; $IDLE IDLE connections (Dovecot: $IDLE_D); $(nproc) CPUs"
	if [ "$ONLY" != dovecot ]; then
		hrc=0
		bench_hermod || hrc=$?
		if [ "$hrc" -eq 2 ]; then
			say "hermod: n/a ($H_NA)"
		elif [ "$hrc" -ne 0 ]; then
			die "hermod run failed"
		fi
	fi
	if [ "$ONLY" != hermod ]; then
		drc=0
		bench_dovecot || drc=$?
		[ "$drc" -eq 0 ] || [ "$drc" -eq 2 ] || die "dovecot run failed"
	fi

	BENCH_HERMOD_NA=$H_NA "$PY" "$CLIENT" summary "$A" "$N" "$IDLE" \
		"$TMP/hermod/mix.json" "$TMP/dovecot/mix.json" "$TMP/hermod/idle.json" "$TMP/dovecot/idle.json"
}

main "$@"; exit
