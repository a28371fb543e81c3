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
# The same load then runs against a throw-away Postfix smtpd in wrapper mode
# (implicit TLS, -o smtpd_tls_wrappermode=yes, the same certificate, TLS 1.2+)
# on another free loopback port, with SASL through a private Dovecot auth
# service (smtpd_sasl_type = dovecot, smtpd_sasl_path = the absolute path of
# the auth socket of a `dovecot -F -c FILE` instance: passdb passwd-file with
# the same user and password, hashed like hermod hashes it: yescrypt with
# libxcrypt's default cost, as {CRYPT}; SHA512-CRYPT if this Dovecot cannot
# verify yescrypt; no auth cache, so every AUTH hashes as in hermod; Dovecot
# 2.3 verifies passwd-file passwords in its single auth process, and under
# this load smtpd processes may give up on the auth socket handshake after
# Postfix's 10 s timeout: "fatal: no SASL authentication mechanisms", counted
# as errors). Postfix and Dovecot run as private instances (own config,
# queue, base_dir and log files in the temp dir) and need root; when postfix
# or dovecot-core is missing it is installed with apt-get without starting
# system instances (policy-rc.d).
#
# Prints handshakes/s, auths/s, errors and NOOP p50/p99/max for hermod and
# postfix+dovecot, and the ratios hermod/postfix+dovecot.
#
# Environment: BENCH_CLIENTS, BENCH_SECONDS, BENCH_INTERVAL, HERMOD (binary),
# BENCH_ONLY=hermod|postfix, BENCH_KEEP=1 (keep the temp dir). Everything
# listens on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CLIENTS=${BENCH_CLIENTS:-200}
SECONDS_=${BENCH_SECONDS:-20}
INTERVAL=${BENCH_INTERVAL:-50}
HERMOD=${HERMOD:-$ROOT/hermod}
ONLY=${BENCH_ONLY:-}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
USER_ADDR=bench@example.test

say() { printf 'bench-tls: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
# shared helpers: now, free_port, port_open, proc_state, alive, stop_child
. bench/lib.sh # the script runs from the repository root (cd above)

command -v node >/dev/null || die "node not found (make deps-test)"
command -v openssl >/dev/null || die "openssl not found (make deps-test)"
[ "$ONLY" = postfix ] || [ -x "$HERMOD" ] || die "$HERMOD not found; build it with 'make hermod'"

# Under /tmp: Postfix's and Dovecot's unprivileged processes must traverse it.
TMP=$(mktemp -d /tmp/bench-tls.XXXXXX)
chmod 755 "$TMP"
HERMOD_PID=
PF_ETC=
PF_REAPER_PID=
DOVECOT_PID=

cleanup() {
	local rc=$?
	set +e
	if [ -n "$HERMOD_PID" ]; then
		stop_child "$HERMOD_PID" 30 >/dev/null 2>&1
		HERMOD_PID=
	fi
	# (both set only once the functions below are defined)
	[ -z "$PF_ETC" ] || postfix_stop
	[ -z "$DOVECOT_PID" ] || dovecot_stop
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

# ---------------------------------------------------------------- shared

# One self-signed ECDSA P-256 certificate and one password for both servers.
CERT=$TMP/tls/cert.pem
KEY=$TMP/tls/key.pem
mkdir -p "$TMP/tls"
chmod 700 "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=mx.example.test -addext subjectAltName=DNS:mx.example.test \
	-keyout "$KEY" -out "$CERT" 2>/dev/null || die "openssl req failed"
PW=$(head -c 18 /dev/urandom | base64 | tr -d '+/')

# run_load PORT: the load generator against 127.0.0.1:PORT; prints JSON.
run_load() {
	node bench/tls-load.js --port "$1" --ca "$CERT" --user "$USER_ADDR" \
		--pass "$PW" --clients "$CLIENTS" --seconds "$SECONDS_" --interval "$INTERVAL"
}

# ---------------------------------------------------------------- hermod

H_JSON='' H_RSS=''

bench_hermod() {
	local dir=$TMP/hermod conf pw=$PW smtp sub subs
	mkdir -p "$dir" || return 1
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
cert = $CERT
key = $KEY

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
	H_JSON=$(run_load "$subs") || {
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

P_JSON='' P_REASON='' P_SCHEME='' P_PROCS=''

# Installs the missing packages without starting system instances.
pkg_install() {
	local made_policy= rc=0
	say "installing $* (apt-get)"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$TMP/apt.log" 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$TMP/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$TMP/apt.log" 2>&1
	} || rc=$?
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
	# A system dovecot that started anyway: stop it by its PID file.
	local pidfile pid i
	for pidfile in /run/dovecot/master.pid /var/run/dovecot/master.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null) || continue
		if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ]; then
			say "stopping the system dovecot started by the package (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			i=0
			while [ -e "/proc/$pid" ] && [ "$i" -lt 100 ]; do
				sleep 0.1
				i=$((i + 1))
			done
		fi
	done
	if [ "$rc" -ne 0 ]; then
		tail -n 20 "$TMP/apt.log" >&2
		return 1
	fi
}

# The hash hermod stores (src/auth/password.c): crypt_gensalt_ra("$y$", 0,
# NULL, 0) = yescrypt at libxcrypt's default cost, or "$6$" for SHA512-CRYPT.
# The password comes on stdin.
HASHPW='
import ctypes, sys
lc = ctypes.CDLL("libcrypt.so.1")
lc.crypt_gensalt_ra.restype = ctypes.c_void_p
lc.crypt_gensalt_ra.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
lc.crypt.restype = ctypes.c_char_p
lc.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
setting = lc.crypt_gensalt_ra(sys.argv[1].encode(), 0, None, 0)
if not setting:
    sys.exit("crypt_gensalt_ra failed")
h = lc.crypt(sys.stdin.readline().rstrip("\n").encode(), ctypes.string_at(setting))
if not h or h.startswith(b"*"):
    sys.exit("crypt failed")
print(h.decode())
'

dovecot_stop() {
	[ -n "$DOVECOT_PID" ] || return 0
	local pid=$DOVECOT_PID
	DOVECOT_PID=
	# The master (a child of this shell, -F) stops its processes on SIGTERM.
	stop_child "$pid" 30 >/dev/null 2>&1 || true
}

# descendants PID...: all processes below PID (not PID itself), one a line.
descendants() {
	ps -e -o pid=,ppid= | awk -v roots=" $* " '
		{ parent[$1] = $2 }
		END {
			for (p in parent) {
				q = parent[p]
				while (q != "" && q > 1) {
					if (index(roots, " " q " ")) { print p; break }
					q = parent[q]
				}
			}
		}'
}

# dovecot_start DIR: the private Dovecot, auth only; sets P_SCHEME, DOVECOT_PID.
dovecot_start() {
	local dir=$1 conf=$1/dovecot.conf hash scheme vuid vgid i
	vuid=$(id -u nobody)
	vgid=$(id -g nobody)
	mkdir -p "$dir/run" "$dir/state" && chmod 755 "$dir" || return 1

	# yescrypt as hermod stores it, if this Dovecot verifies it ({CRYPT} is
	# libc's crypt(3), libxcrypt on Debian); else SHA512-CRYPT.
	hash=$(printf '%s\n' "$PW" | "$PY" -c "$HASHPW" '$y$') &&
		doveadm -c /dev/null pw -t "{CRYPT}$hash" -p "$PW" >/dev/null 2>&1 &&
		scheme="CRYPT" P_SCHEME="{CRYPT} yescrypt $(printf '%s' "$hash" | cut -d'$' -f1-3)\$... (libxcrypt default cost, as hermod)" || {
		hash=$(printf '%s\n' "$PW" | "$PY" -c "$HASHPW" '$6$') || return 1
		scheme="SHA512-CRYPT" P_SCHEME="{SHA512-CRYPT} \$6\$ (default rounds; this Dovecot cannot verify yescrypt)"
	}
	printf '%s:{%s}%s:%s:%s::/nonexistent::\n' "$USER_ADDR" "$scheme" "$hash" "$vuid" "$vgid" >"$dir/passwd"
	chmod 640 "$dir/passwd" && chgrp dovecot "$dir/passwd" || return 1

	# auth_cache_size stays 0 (the default): every AUTH hashes, as in hermod.
	cat >"$conf" <<CONF
# Throw-away Dovecot for bench/bench-tls.sh: SASL for Postfix only.
protocols =
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
instance_name = bench-tls-$$
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=$scheme username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
service auth {
  unix_listener $dir/auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service anvil {
  chroot =
}
CONF
	dovecot -c "$conf" -n >/dev/null 2>"$dir/check.log" || {
		say "dovecot rejects its config:"
		cat "$dir/check.log" >&2
		return 1
	}
	dovecot -F -c "$conf" >>"$dir/dovecot.log" 2>&1 &
	DOVECOT_PID=$!
	i=0
	until [ -S "$dir/auth-postfix" ]; do
		if ! alive "$DOVECOT_PID"; then
			say "dovecot exited at start-up:"
			tail -n 20 "$dir/dovecot.log" >&2
			wait "$DOVECOT_PID" || true
			DOVECOT_PID=
			return 1
		fi
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "dovecot did not create $dir/auth-postfix"
			return 1
		}
		sleep 0.1
	done
}

bench_postfix() {
	if [ "$(id -u)" -ne 0 ]; then
		P_REASON="needs root (private Postfix and Dovecot instances)"
		return 2
	fi
	local pkgs=()
	command -v postfix >/dev/null || pkgs+=(postfix)
	command -v dovecot >/dev/null && command -v doveadm >/dev/null || pkgs+=(dovecot-core)
	if [ "${#pkgs[@]}" -gt 0 ]; then
		pkg_install "${pkgs[@]}" || {
			P_REASON="could not install ${pkgs[*]}"
			return 2
		}
	fi
	getent passwd postfix >/dev/null && getent group postdrop >/dev/null &&
		getent passwd dovecot >/dev/null && getent passwd dovenull >/dev/null || {
		P_REASON="users postfix / dovecot / dovenull or group postdrop missing (broken install)"
		return 2
	}

	local dir=$TMP/postfix
	local etc=$dir/etc spool=$dir/spool data=$dir/lib port i
	mkdir -p "$etc" "$spool" "$data" &&
		chmod 755 "$dir" "$etc" "$spool" &&
		chown postfix: "$data" || return 1
	port=$(free_port) || return 1

	dovecot_start "$TMP/dovecot" || {
		P_REASON="private Dovecot failed, see above"
		return 1
	}

	postfix_master_cf "$etc/master.cf" || return 1

	cat >"$etc/main.cf" <<MAIN
# Throw-away Postfix instance for bench/bench-tls.sh.
compatibility_level = 3.6
queue_directory = $spool
data_directory = $data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
notify_classes =
# Nothing is delivered or leaves this machine.
default_transport = error:mail disabled in this benchmark
relay_transport = error:mail disabled in this benchmark
local_transport = error:mail disabled in this benchmark
smtp_dns_support_level = disabled
# Implicit TLS (wrapper mode, set on the service), the bench certificate,
# TLS 1.2 or newer.
smtpd_tls_chain_files = $KEY, $CERT
smtpd_tls_security_level = encrypt
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 0
# SASL through the private Dovecot's auth socket.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $TMP/dovecot/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
# No rate limits, no penalties for the NOOP probe (NOOP counts as a junk command).
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_auth_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_junk_command_limit = 1000000
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
default_process_limit = 1000
# No syslog here: log to a file so that start-up errors are visible.
maillog_file = $dir/maillog
maillog_file_prefixes = $TMP
MAIN

	# Only our loopback smtpd (implicit TLS, as many processes as clients + the
	# probe could need): no port 25, no chroot (no jail set up).
	local svc
	for svc in smtp submission submissions smtps; do
		postconf -c "$etc" -MX "$svc/inet" >/dev/null 2>&1 || true
	done
	postconf -c "$etc" -M "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - $((CLIENTS + 50)) smtpd -o smtpd_tls_wrappermode=yes" &&
		postconf -c "$etc" -F '*/*/chroot = n' || return 1
	if postconf -c "$etc" -M | awk '$2 == "inet" && $1 != "127.0.0.1:'"$port"'"' | grep -q .; then
		say "unexpected inet services in $etc/master.cf:"
		postconf -c "$etc" -M | awk '$2 == "inet"' >&2
		return 1
	fi

	postfix_start "$etc" "$dir" "$port" || return 1

	say "postfix+dovecot: $CLIENTS clients x ${SECONDS_}s against 127.0.0.1:$port (implicit TLS, SASL via dovecot)"
	P_JSON=$(run_load "$port") || {
		say "load generator failed"
		tail -n 20 "$dir/maillog" >&2
		tail -n 20 "$TMP/dovecot/dovecot.log" >&2
		return 1
	}
	# How many processes the two servers ran at the end of the storm.
	P_PROCS=$(descendants "$PF_REAPER_PID" "$DOVECOT_PID" | wc -l)
	postfix_stop
	dovecot_stop
	if grep -qE 'fatal|panic|warning: .*SASL' "$dir/maillog" 2>/dev/null; then
		say "postfix logged problems:"
		grep -E 'fatal|panic|warning: .*SASL' "$dir/maillog" | tail -n 5 >&2
	fi
	if grep -qiE 'error|fatal|panic' "$TMP/dovecot/dovecot.log"; then
		say "dovecot logged errors:"
		grep -iE 'error|fatal|panic' "$TMP/dovecot/dovecot.log" | tail -n 5 >&2
	fi
}

# ---------------------------------------------------------------- main

failed=0
if [ "$ONLY" != postfix ]; then
	bench_hermod || failed=1
fi
if [ "$ONLY" != hermod ]; then
	rc=0
	bench_postfix || rc=$?
	if [ "$rc" -eq 1 ]; then
		failed=1
		P_REASON=${P_REASON:-failed, see above}
	fi
	postfix_stop
	dovecot_stop
else
	P_REASON="BENCH_ONLY=hermod"
fi
[ "$ONLY" != postfix ] || H_REASON="BENCH_ONLY=postfix"

field() { # field JSON PATH -> value
	printf '%s' "$1" | "$PY" -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("n/a" if v is None else v)' "$2"
}

ratio() {
	if [ -n "$1" ] && [ -n "$2" ] && [ "$1" != n/a ] && [ "$2" != n/a ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'
	else
		echo "n/a"
	fi
}

# row NAME JSON
row() {
	printf '  %-18s %12s %10s %8s %8sms %8sms %8sms\n' "$1" \
		"$(field "$2" handshakes_per_s)" "$(field "$2" auths_per_s)" \
		"$(field "$2" errors)" "$(field "$2" noop.p50)" \
		"$(field "$2" noop.p99)" "$(field "$2" noop.max)"
}

printf '\nbench-tls: %d clients, %ss, implicit TLS (ECDSA P-256) + AUTH PLAIN + QUIT per connection\n' \
	"$CLIENTS" "$SECONDS_"
printf '  %-18s %12s %10s %8s %10s %10s %10s\n' "" "handshakes/s" "auths/s" "errors" \
	"NOOP p50" "NOOP p99" "NOOP max"
if [ -n "$H_JSON" ]; then
	row hermod "$H_JSON"
else
	printf '  %-18s %s\n' hermod "n/a (${H_REASON:-failed, see above})"
fi
if [ -n "$P_JSON" ]; then
	row postfix+dovecot "$P_JSON"
else
	printf '  %-18s %s\n' postfix+dovecot "n/a (${P_REASON:-failed, see above})"
fi
if [ -n "$H_JSON" ] && [ -n "$P_JSON" ]; then
	printf '  %-18s %12s %10s\n' hermod/postfix+dov \
		"$(ratio "$(field "$H_JSON" handshakes_per_s)" "$(field "$P_JSON" handshakes_per_s)")" \
		"$(ratio "$(field "$H_JSON" auths_per_s)" "$(field "$P_JSON" auths_per_s)")"
fi
if [ -n "$H_JSON" ]; then
	fe=$(field "$H_JSON" first_error)
	[ "$fe" = n/a ] || printf '  hermod first error: %s\n' "$fe"
	printf '  hermod: %s NOOPs measured, %s %s, peak RSS %s, password hash yescrypt (libxcrypt default cost)\n' \
		"$(field "$H_JSON" noop.n)" "$(field "$H_JSON" tls.protocol)" "$(field "$H_JSON" tls.cipher)" \
		"${H_RSS:-n/a}"
fi
if [ -n "$P_JSON" ]; then
	fe=$(field "$P_JSON" first_error)
	[ "$fe" = n/a ] || printf '  postfix+dovecot first error: %s\n' "$fe"
	printf '  postfix+dovecot: %s NOOPs measured, %s %s, %s processes at the end of the storm\n' \
		"$(field "$P_JSON" noop.n)" "$(field "$P_JSON" tls.protocol)" "$(field "$P_JSON" tls.cipher)" \
		"${P_PROCS:-n/a}"
	printf '  dovecot passdb: passwd-file, %s, no auth cache\n' "$P_SCHEME"
fi
printf '  (client and server share this machine'"'"'s %s CPU cores)\n' "$(nproc)"

exit "$failed"
