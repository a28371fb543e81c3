#!/bin/bash
# `make bench-smtp`: inbound SMTP throughput of hermod against Postfix, measured
# on this machine in the same run, with durability on in both.
#
# Load: Postfix's smtp-source, BENCH_SESSIONS (20) concurrent sessions sending
# BENCH_MESSAGES (20000) messages with a BENCH_SIZE (4096) byte body to one
# local recipient, a new connection per message.
#
#   accepted    messages / time until smtp-source got its last 250
#   end-to-end  messages / time from the first connection until the last
#               message is in the recipient's mailbox (hermod: INBOX count
#               from `hermod mailbox list`; Postfix: files in Maildir/new)
#   ceiling     the load generator alone: the same smtp-source run against
#               Postfix's smtp-sink (accepts and discards everything), so the
#               fraction of it that hermod reaches says how much of the
#               machine the generator leaves
#   peak RSS    hermod's VmHWM at the end of the run
#
# hermod runs from a temp dir with [store] fsync = yes. Postfix runs as a
# throw-away private instance (its own config, queue and data directories in
# the temp dir, smtpd on a loopback port, virtual(8) delivery into a Maildir,
# which Postfix fsyncs); it needs root. Nothing listens beyond 127.0.0.1 and
# neither server sends mail anywhere.
#
# `bench-smtp.sh --large` (or BENCH_MODE=large) instead sends one message of
# BENCH_LARGE_SIZE (52428800, 50 MiB) bytes to hermod alone and prints how much
# hermod's resident memory grew while taking it (peak VmHWM during the run
# minus VmRSS before it, measured after one small warm-up message so that the
# first delivery's one-time set-up is not counted).
#
# Environment: BENCH_MESSAGES, BENCH_SESSIONS, BENCH_SIZE, BENCH_TIMEOUT
# (seconds to wait for delivery), BENCH_ONLY=hermod|postfix|sink, HERMOD
# (binary), BENCH_KEEP=1 (keep the temp dir for inspection), BENCH_MODE,
# BENCH_LARGE_SIZE.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${BENCH_MODE:-throughput}
for arg in "$@"; do
	case $arg in
	--large) MODE=large ;;
	*)
		printf 'usage: %s [--large]\n' "$0" >&2
		exit 2
		;;
	esac
done
case $MODE in
throughput)
	N=${BENCH_MESSAGES:-20000}
	S=${BENCH_SESSIONS:-20}
	SIZE=${BENCH_SIZE:-4096}
	;;
large)
	N=1
	S=1
	SIZE=${BENCH_LARGE_SIZE:-52428800}
	;;
*)
	printf 'BENCH_MODE must be throughput or large\n' >&2
	exit 2
	;;
esac
TIMEOUT=${BENCH_TIMEOUT:-$((120 + N / 50))}
ONLY=${BENCH_ONLY:-}
[ "$MODE" = large ] && ONLY=hermod
HERMOD=${HERMOD:-$ROOT/hermod}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

SENDER=sender@remote.test
RCPT=rcpt@example.test

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# shared helpers: now, free_port, port_open, proc_state, alive, stop_child
. bench/lib.sh # the script runs from the repository root (cd above)

[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE not found (Debian package postfix; run scripts/deps.sh test)"

# Under /tmp (not $TMPDIR): the postfix and nobody users must traverse it.
TMP=$(mktemp -d /tmp/bench-smtp.XXXXXX)
chmod 755 "$TMP" # Postfix daemons run as the postfix user and need to traverse it

HERMOD_PID=
SINK_PID=
PF_ETC=
PF_REAPER_PID=

# ---------------------------------------------------------------- helpers

# rate N T0 T1 -> messages per second
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = b - a; if (d <= 0) d = 1e-9; printf "%.1f", n / d }'; }

# run_load PORT LOG: smtp-source against 127.0.0.1:PORT; sets T0/T1.
run_load() {
	local port=$1 log=$2 rc=0
	T0=$(now)
	if [ -t 1 ]; then
		"$SMTP_SOURCE" -c -s "$S" -m "$N" -l "$SIZE" -f "$SENDER" -t "$RCPT" "127.0.0.1:$port" 2>"$log" || rc=$?
		printf '\n'
	else
		"$SMTP_SOURCE" -s "$S" -m "$N" -l "$SIZE" -f "$SENDER" -t "$RCPT" "127.0.0.1:$port" >/dev/null 2>"$log" || rc=$?
	fi
	T1=$(now)
	if [ "$rc" -ne 0 ] || [ -s "$log" ]; then
		say "smtp-source (exit $rc):"
		tail -n 20 "$log" >&2
		[ "$rc" -eq 0 ] || return 1
	fi
}

# wait_count CMD...: polls CMD (prints a number) until it reaches N; sets T2.
wait_count() {
	local deadline c=0
	deadline=$(($(date +%s) + TIMEOUT))
	while :; do
		c=$("$@" 2>/dev/null) || c=0
		c=${c%%$'\n'*}
		[[ $c =~ ^[0-9]+$ ]] || c=0
		if [ "$c" -ge $((N + ${WARM:-0})) ]; then
			T2=$(now)
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "timeout: $c of $N messages delivered after ${TIMEOUT}s"
			return 1
		fi
		sleep 0.1
	done
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$HERMOD_PID" ]; then
		stop_child "$HERMOD_PID" 30 >/dev/null 2>&1
		HERMOD_PID=
	fi
	if [ -n "$SINK_PID" ]; then
		stop_child "$SINK_PID" 10 >/dev/null 2>&1
		SINK_PID=
	fi
	postfix_stop
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

H_ACC='' H_E2E='' H_RSS=''

# kib FIELD PID -> the /proc/PID/status field (VmRSS, VmHWM) in KiB
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

H_RSS0='' H_GROWTH=''
MAX_SIZE=50M
[ "$MODE" = large ] && MAX_SIZE=$(((SIZE + 1048575) / 1048576 + 16))M

bench_hermod() {
	local dir=$TMP/hermod port conf pw
	[ -x "$HERMOD" ] || {
		say "$HERMOD not found; build it with 'make hermod'"
		return 1
	}
	mkdir -p "$dir" || return 1
	port=$(free_port) || return 1
	conf=$dir/hermod.conf
	cat >"$conf" <<EOF
[server]
hostname = bench.example.test
data_dir = data

[listen]
smtp = 127.0.0.1:$port

[limits]
max_connections = 2000
max_connections_per_ip = 2000
max_message_size = $MAX_SIZE

[store]
fsync = yes
EOF
	# (set -e does not apply inside a function called from `||`: check each step.)
	"$HERMOD" check -c "$conf" >/dev/null || return 1
	"$HERMOD" domain add example.test -c "$conf" >/dev/null || return 1
	pw=$(head -c 24 /dev/urandom | base64)
	printf '%s\n' "$pw" | "$HERMOD" user add "$RCPT" --password-stdin -c "$conf" >/dev/null || return 1

	"$HERMOD" serve -c "$conf" 2>"$dir/hermod.log" &
	HERMOD_PID=$!
	local i=0
	until port_open "$port"; do
		if [ -z "$(proc_state "$HERMOD_PID")" ] || [ "$(proc_state "$HERMOD_PID")" = Z ]; then
			say "hermod exited at start-up:"
			tail -n 20 "$dir/hermod.log" >&2
			wait "$HERMOD_PID" || true
			HERMOD_PID=
			return 1
		fi
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "hermod does not listen on 127.0.0.1:$port"
			return 1
		}
		sleep 0.1
	done

	WARM=0
	if [ "$MODE" = large ]; then
		# One small message first, so that what is measured is the large
		# message's cost, not the first delivery's one-time set-up (database
		# connections and caches, the first segment, worker stacks).
		"$SMTP_SOURCE" -s 1 -m 1 -l 4096 -f "$SENDER" -t "$RCPT" "127.0.0.1:$port" \
			>/dev/null 2>"$dir/warm-up.log" || return 1
		WARM=1
		local deadline=$(($(date +%s) + 30))
		until [ "$("$HERMOD" mailbox list "$RCPT" -c "$conf" |
			awk '$1 == "INBOX" { n = $2 } END { print n + 0 }')" -ge 1 ]; do
			[ "$(date +%s)" -lt "$deadline" ] || {
				say "warm-up message not delivered"
				return 1
			}
			sleep 0.1
		done
	fi
	H_RSS0=$(kib VmRSS "$HERMOD_PID")
	say "hermod: $N messages of $SIZE bytes, $S sessions, 127.0.0.1:$port"
	run_load "$port" "$dir/smtp-source.log" || return 1
	H_ACC=$(rate "$N" "$T0" "$T1")

	hermod_inbox() {
		"$HERMOD" mailbox list "$RCPT" -c "$conf" | awk '$1 == "INBOX" { n = $2 } END { print n + 0 }'
	}
	if ! wait_count hermod_inbox; then
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	fi
	H_E2E=$(rate "$N" "$T0" "$T2")

	local hwm
	hwm=$(kib VmHWM "$HERMOD_PID")
	H_RSS=$(mib "$hwm")
	H_GROWTH=$(mib $((hwm - H_RSS0)))
	local rc=0
	stop_child "$HERMOD_PID" 30 || rc=$?
	HERMOD_PID=
	[ "$rc" -eq 0 ] || say "hermod exited with status $rc after SIGTERM"
}

# ---------------------------------------------------------------- generator ceiling

G_RATE=''

# The same smtp-source load against smtp-sink: what the generator (and the
# loopback path) can do on this machine with nothing behind it.
bench_sink() {
	[ -x "$SMTP_SINK" ] || {
		say "$SMTP_SINK not found (Debian package postfix); ceiling skipped"
		return 2
	}
	local dir=$TMP/sink port user=()
	mkdir -p "$dir" || return 1
	port=$(free_port) || return 1
	# smtp-sink refuses to run as root without -u
	[ "$(id -u)" -ne 0 ] || user=(-u nobody)
	"$SMTP_SINK" "${user[@]}" -c "127.0.0.1:$port" 1024 >"$dir/sink.log" 2>&1 &
	SINK_PID=$!
	local i=0
	until port_open "$port"; do
		if ! alive "$SINK_PID"; then
			say "smtp-sink exited at start-up:"
			tail -n 20 "$dir/sink.log" >&2
			wait "$SINK_PID" || true
			SINK_PID=
			return 1
		fi
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "smtp-sink does not listen on 127.0.0.1:$port"
			return 1
		}
		sleep 0.1
	done
	say "smtp-sink: $N messages, $S sessions, 127.0.0.1:$port"
	run_load "$port" "$dir/smtp-source.log" || return 1
	G_RATE=$(rate "$N" "$T0" "$T1")
	stop_child "$SINK_PID" 10 >/dev/null 2>&1 || true
	SINK_PID=
}

# ---------------------------------------------------------------- postfix

P_ACC='' P_E2E=''

bench_postfix() {
	if [ "$(id -u)" -ne 0 ]; then
		say "the Postfix comparison needs root (a private instance runs its daemons as the postfix user); skipped"
		return 2
	fi
	command -v postfix >/dev/null || {
		say "postfix not installed (scripts/deps.sh test); skipped"
		return 2
	}
	getent passwd postfix >/dev/null && getent group postdrop >/dev/null || {
		say "user postfix / group postdrop missing (broken postfix install); skipped"
		return 2
	}

	local dir=$TMP/postfix
	local etc=$dir/etc spool=$dir/spool data=$dir/lib vmail=$dir/vmail port
	local vuid vgid
	vuid=$(id -u nobody)
	vgid=$(id -g nobody)
	mkdir -p "$etc" "$spool" "$data" "$vmail" &&
		chmod 755 "$dir" "$etc" "$spool" &&
		chown postfix: "$data" &&
		chown "$vuid:$vgid" "$vmail" || return 1
	port=$(free_port) || return 1

	postfix_master_cf "$etc/master.cf" || return 1

	printf '%s %s\n' "$RCPT" "example.test/rcpt/" >"$etc/vmailbox"

	cat >"$etc/main.cf" <<EOF
# Throw-away Postfix instance for bench/bench-smtp.sh.
compatibility_level = 3.6
queue_directory = $spool
data_directory = $data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localhost
mydomain = localhost
myorigin = \$myhostname
mydestination = \$myhostname, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
notify_classes =
# Mail for example.test goes into a Maildir (virtual(8) fsyncs it).
virtual_mailbox_domains = example.test
virtual_mailbox_base = $vmail
virtual_mailbox_maps = texthash:$etc/vmailbox
virtual_uid_maps = static:$vuid
virtual_gid_maps = static:$vgid
# Nothing leaves this machine.
default_transport = error:outbound mail disabled in this benchmark
relay_transport = error:outbound mail disabled in this benchmark
smtp_dns_support_level = disabled
# No syslog here: log to a file so that start-up errors are visible.
maillog_file = $dir/maillog
maillog_file_prefixes = $TMP
EOF

	postfix_master_loopback "$etc" "$port" || return 1

	postfix_start "$etc" "$dir" "$port" || return 1

	say "postfix: $N messages, $S sessions, 127.0.0.1:$port"
	run_load "$port" "$dir/smtp-source.log" || {
		tail -n 20 "$dir/maillog" >&2
		return 1
	}
	P_ACC=$(rate "$N" "$T0" "$T1")

	local new=$vmail/example.test/rcpt/new
	maildir_count() {
		if [ -d "$new" ]; then
			find "$new" -maxdepth 1 -type f | wc -l
		else
			echo 0
		fi
	}
	if ! wait_count maildir_count; then
		grep -E 'status=(deferred|bounced)|fatal|panic|error' "$dir/maillog" | tail -n 20 >&2
		return 1
	fi
	P_E2E=$(rate "$N" "$T0" "$T2")

	postfix_stop
}

# ---------------------------------------------------------------- main

ratio() {
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
	else
		echo "n/a"
	fi
}

percent() {
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'
	else
		echo "n/a"
	fi
}

failed=0
if [ "$MODE" = large ]; then
	bench_hermod || failed=1
	printf '\nbench-smtp --large: one message of %d bytes, fsync on\n' "$SIZE"
	printf '  hermod end-to-end:   %s s\n' \
		"$(awk -v a="${T0:-0}" -v b="${T2:-0}" 'BEGIN { printf "%.2f", b - a }')"
	printf '  hermod RSS before:   %s\n' "$(mib "${H_RSS0:-0}")"
	printf '  hermod peak RSS:     %s\n' "${H_RSS:-n/a}"
	printf '  hermod RSS growth:   %s (peak - before)\n' "${H_GROWTH:-n/a}"
	exit "$failed"
fi

if [ "$ONLY" = "" ] || [ "$ONLY" = sink ]; then
	rc=0
	bench_sink || rc=$?
	[ "$rc" -eq 1 ] && failed=1
fi
if [ "$ONLY" = "" ] || [ "$ONLY" = hermod ]; then
	bench_hermod || failed=1
fi
if [ "$ONLY" = "" ] || [ "$ONLY" = postfix ]; then
	rc=0
	bench_postfix || rc=$?
	[ "$rc" -eq 1 ] && failed=1
fi

printf '\nbench-smtp: %d messages of %d bytes, %d concurrent sessions, fsync on\n' "$N" "$SIZE" "$S"
printf '  %-22s %14s %18s\n' "" "accepted msg/s" "end-to-end msg/s"
printf '  %-22s %14s %18s\n' "generator ceiling" "${G_RATE:-n/a}" "(smtp-sink)"
printf '  %-22s %14s %18s\n' hermod "${H_ACC:-n/a}" "${H_E2E:-n/a}"
printf '  %-22s %14s %18s\n' postfix "${P_ACC:-n/a}" "${P_E2E:-n/a}"
printf '  %-22s %14s %18s\n' hermod/postfix "$(ratio "$H_ACC" "$P_ACC")" "$(ratio "$H_E2E" "$P_E2E")"
printf '  %-22s %14s %18s\n' "hermod/ceiling" "$(percent "$H_ACC" "$G_RATE")" "$(percent "$H_E2E" "$G_RATE")"
printf '  hermod peak RSS: %s\n' "${H_RSS:-n/a}"

exit "$failed"
