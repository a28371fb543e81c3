#!/bin/bash
# `make bench-pop3`: POP3 download throughput of hermod against Dovecot's
# POP3 server, measured on this machine in the same run.
#
# Load: BENCH_ACCOUNTS (10) accounts each holding BENCH_MESSAGES (2000)
# messages with a body of about BENCH_SIZE (4096) bytes (a tenth of the lines
# start with '.', so dot-stuffing happens). Then one client per account, all
# at once (a process each): log in (USER/PASS, no TLS, loopback), RETR 1..N
# with up to 64 commands in flight (RFC 2449 PIPELINING), QUIT. Before the
# measured run each account is logged into once (LIST) so both servers start
# warm (Dovecot builds its index on first access).
#
#   messages/s  all messages of all accounts / time from the moment every
#               client has logged in to the last QUIT (logins are not timed:
#               hermod checks a yescrypt hash, the Dovecot set-up a PLAIN one)
#
# hermod runs from a temp dir ([store] fsync = no only to load the mailboxes
# quickly over SMTP; reading does not sync), with
# [auth] allow_plaintext_on_loopback. Dovecot runs as a private instance
# (dovecot -F -c FILE: its own base_dir, log file and passwd-file, a pop3
# listener on a loopback port, ssl = no, maildirs under the temp dir written
# directly with the same messages, pop3_no_flag_updates so neither server
# writes on RETR). Dovecot needs root; when dovecot-pop3d is missing it is
# installed with apt-get without starting a system instance.
#
# Environment: BENCH_ACCOUNTS, BENCH_MESSAGES, BENCH_SIZE, BENCH_ONLY=hermod|dovecot,
# HERMOD (binary), BENCH_KEEP=1 (keep the temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

A=${BENCH_ACCOUNTS:-10}
N=${BENCH_MESSAGES:-2000}
SIZE=${BENCH_SIZE:-4096}
ONLY=${BENCH_ONLY:-}
HERMOD=${HERMOD:-$ROOT/hermod}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# shared helpers: now, free_port, port_open, proc_state, alive, stop_child
. bench/lib.sh # the script runs from the repository root (cd above)

[[ $A =~ ^[1-9][0-9]*$ ]] || die "BENCH_ACCOUNTS must be a positive number"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_MESSAGES must be a positive number"
[[ $SIZE =~ ^[0-9]+$ ]] || die "BENCH_SIZE must be a number"

# Under /tmp: Dovecot's unprivileged processes must traverse it.
TMP=$(mktemp -d /tmp/bench-pop3.XXXXXX)
chmod 755 "$TMP"

HERMOD_PID=
DOVECOT_PID=
DOVECOT_CONF=

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

# The client and loaders (Python, standard library only).
CLIENT=$TMP/bench-pop3.py
cat >"$CLIENT" <<'PYEOF'
#!/usr/bin/python3
"""Helper for bench/bench-pop3.sh (not meant to be run by hand).

  fill-smtp HOST PORT ACCOUNTS_FILE N SIZE     deliver N messages to each account
                                               over SMTP (BDAT, pipelined; one
                                               connection per account, in parallel)
  fill-maildir BASE ACCOUNTS_FILE N SIZE UID GID
                                               write the same N messages into
                                               BASE/<local>/Maildir/cur per account
  retr HOST PORT ACCOUNTS_FILE N               one client per account (a process
                                               each): log in, RETR 1..N pipelined,
                                               QUIT; prints "MESSAGES BYTES SECONDS"
  warm HOST PORT ACCOUNTS_FILE N               log in, LIST, QUIT (each account)

ACCOUNTS_FILE: one "address password" a line. Only loopback addresses are used.
"""

import multiprocessing
import os
import socket
import sys
import time

WINDOW = 64          # RETR commands in flight per client
SMTP_WINDOW = 32     # SMTP transactions in flight per connection

def accounts(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                a, p = line.split()
                out.append((a, p))
    return out

def message(addr, i, size):
    """A deterministic message of about `size` octets of body, CRLF line ends,
    a few lines starting with '.' (dot-stuffing on the wire)."""
    hdr = ("From: <sender@remote.test>\r\n"
           "To: <%s>\r\n"
           "Subject: bench message %d\r\n"
           "Message-ID: <bench-%d-%s@remote.test>\r\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
           "\r\n" % (addr, i, i, addr.replace("@", ".")))
    lines = []
    n = 0
    k = 0
    while n < size:
        if k % 10 == 3:
            line = "." + ("%06d " % i) * 10
        else:
            line = ("abcdefghij%06d" % k) * 4 + "xyz"
        lines.append(line)
        n += len(line) + 2
        k += 1
    return (hdr + "\r\n".join(lines) + "\r\n").encode()

# ---------------------------------------------------------------- SMTP fill

class Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("connection closed; unread %r" % self.buf)
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        while True:
            l = self.line()
            if len(l) < 4 or l[3:4] != b"-":
                return l

def fill_one(args):
    host, port, addr, n, size = args
    s = socket.create_connection((host, port), timeout=300)
    r = Lines(s)
    assert r.reply().startswith(b"220"), "no greeting"
    s.sendall(b"EHLO bench.example.test\r\n")
    assert r.reply().startswith(b"250")
    pending = 0
    i = 0
    done = 0
    while done < n:
        out = []
        while i < n and pending < SMTP_WINDOW:
            m = message(addr, i + 1, size)
            out.append(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n"
                       % (addr.encode(), len(m)) + m)
            i += 1
            pending += 1
        if out:
            s.sendall(b"".join(out))
        for want in (b"250", b"250", b"250"):
            l = r.reply()
            if not l.startswith(want):
                raise RuntimeError("%s: message %d: %r" % (addr, done + 1, l))
        pending -= 1
        done += 1
    s.sendall(b"QUIT\r\n")
    r.reply()
    s.close()
    return n

def fill_smtp(host, port, accfile, n, size):
    accs = accounts(accfile)
    with multiprocessing.Pool(len(accs)) as pool:
        got = pool.map(fill_one, [(host, int(port), a, int(n), int(size)) for a, _ in accs])
    assert sum(got) == len(accs) * int(n)

# ---------------------------------------------------------------- maildir fill

def fill_maildir(base, accfile, n, size, uid, gid):
    n, size, uid, gid = int(n), int(size), int(uid), int(gid)
    host = "bench"
    t = 1700000000
    for addr, _ in accounts(accfile):
        local = addr.split("@")[0]
        md = os.path.join(base, local, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for i in range(n):
            # the same trace fields hermod adds, so both serve the same bytes
            m = (b"Return-Path: <sender@remote.test>\r\n"
                 b"Received: from bench.example.test (localhost [127.0.0.1])\r\n"
                 b"\tby bench.example.test (hermod) with ESMTP id 00000000.%d\r\n"
                 b"\tfor <%s>; Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                 % (i + 1, addr.encode())) + message(addr, i + 1, size)
            lf = m.replace(b"\r\n", b"\n")   # maildir files are LF; W= is the CRLF size
            name = "%d.M%dP1.%s,S=%d,W=%d:2," % (t + i, i, host, len(lf), len(m))
            with open(os.path.join(md, "cur", name), "wb") as f:
                f.write(lf)
        for root, dirs, files in os.walk(os.path.join(base, local)):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)
    os.chown(base, uid, gid)

# ---------------------------------------------------------------- POP3 client

def pop3_login(host, port, addr, pw):
    s = socket.create_connection((host, port), timeout=300)
    r = Lines(s)
    g = r.line()
    assert g.startswith(b"+OK"), g
    s.sendall(b"USER %s\r\nPASS %s\r\n" % (addr.encode(), pw.encode()))
    for _ in range(2):
        l = r.line()
        if not l.startswith(b"+OK"):
            raise RuntimeError("%s: login failed: %r" % (addr, l))
    return s, r

def retr_one(args):
    host, port, addr, pw, n, barrier = args
    # The download is measured, not the login: the servers hash passwords
    # differently (hermod: yescrypt; the Dovecot set-up here: PLAIN).
    s, r = pop3_login(host, port, addr, pw)
    barrier.wait()
    t0 = time.time()
    buf = bytearray(r.buf)
    sent = 0
    done = 0
    total = 0
    pos = 0          # parse position in buf
    while done < n:
        if sent < n and sent - done < WINDOW // 2:
            k = min(n, done + WINDOW)
            s.sendall(b"".join(b"RETR %d\r\n" % j for j in range(sent + 1, k + 1)))
            sent = k
        progressed = True
        while progressed and done < n:
            progressed = False
            e = buf.find(b"\r\n", pos)
            if e < 0:
                break
            if buf[pos:pos + 3] != b"+OK":
                raise RuntimeError("%s: RETR %d: %r" % (addr, done + 1, bytes(buf[pos:e])))
            end = buf.find(b"\r\n.\r\n", e)
            if end < 0:
                break
            total += end + 5 - pos
            pos = end + 5
            done += 1
            progressed = True
        if pos > 1 << 20:
            del buf[:pos]
            pos = 0
        if done < n and sent > done:
            d = s.recv(1 << 20)
            if not d:
                raise RuntimeError("%s: connection closed after %d messages" % (addr, done))
            buf += d
    s.sendall(b"QUIT\r\n")
    rest = bytes(buf[pos:])
    while b"\r\n" not in rest:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    s.close()
    t1 = time.time()
    return done, total, t0, t1

def retr(host, port, accfile, n):
    accs = accounts(accfile)
    n = int(n)
    mgr = multiprocessing.Manager()
    barrier = mgr.Barrier(len(accs))
    with multiprocessing.Pool(len(accs)) as pool:
        res = pool.map(retr_one, [(host, int(port), a, p, n, barrier) for a, p in accs])
    msgs = sum(r[0] for r in res)
    octets = sum(r[1] for r in res)
    secs = max(r[3] for r in res) - min(r[2] for r in res)
    if msgs != n * len(accs):
        raise RuntimeError("retrieved %d of %d messages" % (msgs, n * len(accs)))
    print("%d %d %.6f" % (msgs, octets, secs))

def warm(host, port, accfile, n):
    for addr, pw in accounts(accfile):
        s, r = pop3_login(host, int(port), addr, pw)
        s.sendall(b"STAT\r\n")
        l = r.line()
        want = b"+OK %d " % int(n)
        if not l.startswith(want):
            raise RuntimeError("%s: STAT %r, expected %d messages" % (addr, l, int(n)))
        s.sendall(b"QUIT\r\n")
        r.line()
        s.close()

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"fill-smtp": fill_smtp, "fill-maildir": fill_maildir, "retr": retr,
     "warm": warm}[cmd](*args)
PYEOF

ACCOUNTS=$TMP/accounts
: >"$ACCOUNTS"
for i in $(seq 1 "$A"); do
	printf 'user%02d@example.test %s\n' "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$ACCOUNTS"
done

# run_clients PORT NAME: the measured run; sets R_MSGS R_OCTETS R_SECS R_RATE.
run_clients() {
	local port=$1 name=$2 out
	"$PY" "$CLIENT" warm 127.0.0.1 "$port" "$ACCOUNTS" "$N" || return 1
	say "$name: $A clients x RETR $N messages"
	out=$("$PY" "$CLIENT" retr 127.0.0.1 "$port" "$ACCOUNTS" "$N") || return 1
	read -r R_MSGS R_OCTETS R_SECS <<<"$out"
	R_RATE=$(awk -v n="$R_MSGS" -v t="$R_SECS" 'BEGIN { if (t <= 0) t = 1e-9; printf "%.0f", n / t }')
	R_MBS=$(awk -v b="$R_OCTETS" -v t="$R_SECS" 'BEGIN { if (t <= 0) t = 1e-9; printf "%.1f", b / t / 1048576 }')
}

# ---------------------------------------------------------------- hermod

H_RATE='' H_MBS='' H_SECS=''

bench_hermod() {
	local dir=$TMP/hermod smtp pop conf addr pw t0 t1
	[ -x "$HERMOD" ] || {
		say "$HERMOD not found; build it with 'make hermod'"
		return 1
	}
	mkdir -p "$dir" || return 1
	smtp=$(free_port) && pop=$(free_port) || return 1
	conf=$dir/hermod.conf
	cat >"$conf" <<EOF
[server]
hostname = bench.example.test
data_dir = data

[listen]
smtp = 127.0.0.1:$smtp
pop3 = 127.0.0.1:$pop

[auth]
allow_plaintext_on_loopback = yes

[limits]
max_connections = 2000
max_connections_per_ip = 2000

[store]
fsync = no
EOF
	"$HERMOD" check -c "$conf" >/dev/null || return 1
	"$HERMOD" domain add example.test -c "$conf" >/dev/null || return 1
	while read -r addr pw; do
		printf '%s\n' "$pw" | "$HERMOD" user add "$addr" --password-stdin -c "$conf" >/dev/null || return 1
	done <"$ACCOUNTS"

	"$HERMOD" serve -c "$conf" 2>"$dir/hermod.log" &
	HERMOD_PID=$!
	wait_port "$HERMOD_PID" "$smtp" "$dir/hermod.log" hermod || return 1
	wait_port "$HERMOD_PID" "$pop" "$dir/hermod.log" hermod || return 1

	say "hermod: loading $A x $N messages over SMTP"
	t0=$(now)
	"$PY" "$CLIENT" fill-smtp 127.0.0.1 "$smtp" "$ACCOUNTS" "$N" "$SIZE" || {
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	t1=$(now)
	say "hermod: loaded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"

	run_clients "$pop" hermod || {
		tail -n 20 "$dir/hermod.log" >&2
		return 1
	}
	H_RATE=$R_RATE H_MBS=$R_MBS H_SECS=$R_SECS
	# nothing was deleted
	addr=$(head -n 1 "$ACCOUNTS" | cut -d' ' -f1)
	local left
	left=$("$HERMOD" mailbox list "$addr" -c "$conf" | awk '$1 == "INBOX" { print $2 }')
	[ "$left" = "$N" ] || say "warning: $addr has $left messages after the run, expected $N"

	local rc=0
	stop_child "$HERMOD_PID" 30 || rc=$?
	HERMOD_PID=
	[ "$rc" -eq 0 ] || say "hermod exited with status $rc after SIGTERM"
}

# ---------------------------------------------------------------- dovecot

D_RATE='' D_MBS='' D_SECS=''

dovecot_stop() {
	[ -n "$DOVECOT_PID" ] || return 0
	local pid=$DOVECOT_PID
	DOVECOT_PID=
	# The master (a child of this shell, -F) stops its processes on SIGTERM.
	stop_child "$pid" 30 >/dev/null 2>&1 || true
}


bench_dovecot() {
	if [ "$(id -u)" -ne 0 ]; then
		say "the Dovecot comparison needs root (a private instance); skipped"
		return 2
	fi
	if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/pop3 ]; then
		dovecot_install dovecot-pop3d || {
			say "could not install Dovecot; skipped"
			return 2
		}
	fi
	getent passwd dovenull >/dev/null && getent passwd dovecot >/dev/null || {
		say "users dovecot / dovenull missing (broken dovecot install); skipped"
		return 2
	}

	local dir=$TMP/dovecot port conf vuid vgid addr pw
	vuid=$(id -u nobody)
	vgid=$(id -g nobody)
	mkdir -p "$dir/run" "$dir/state" "$dir/mail" || return 1
	chmod 755 "$dir" "$dir/mail"
	port=$(free_port) || return 1
	conf=$dir/dovecot.conf
	: >"$dir/passwd"
	while read -r addr pw; do
		printf '%s:{PLAIN}%s:%s:%s::%s/mail/%s::\n' "$addr" "$pw" "$vuid" "$vgid" "$dir" "${addr%@*}" >>"$dir/passwd"
	done <"$ACCOUNTS"
	chmod 640 "$dir/passwd"
	chgrp dovecot "$dir/passwd"

	cat >"$conf" <<EOF
# Throw-away Dovecot for bench/bench-pop3.sh.
protocols = pop3
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
instance_name = bench-pop3-$$
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:$dir/mail/%n/Maildir
pop3_uidl_format = %08Xu%08Xv
pop3_no_flag_updates = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $port
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
EOF
	say "dovecot: writing $A x $N messages into maildirs"
	"$PY" "$CLIENT" fill-maildir "$dir/mail" "$ACCOUNTS" "$N" "$SIZE" "$vuid" "$vgid" || return 1

	dovecot -c "$conf" -n >/dev/null 2>"$dir/check.log" || {
		say "dovecot rejects its config:"
		cat "$dir/check.log" >&2
		return 1
	}
	DOVECOT_CONF=$conf
	dovecot -F -c "$conf" >>"$dir/dovecot.log" 2>&1 &
	DOVECOT_PID=$!
	wait_port "$DOVECOT_PID" "$port" "$dir/dovecot.log" dovecot || return 1

	run_clients "$port" dovecot || {
		tail -n 20 "$dir/dovecot.log" >&2
		return 1
	}
	D_RATE=$R_RATE D_MBS=$R_MBS D_SECS=$R_SECS
	dovecot_stop
	if grep -qiE 'error|fatal|panic' "$dir/dovecot.log"; then
		say "dovecot logged errors:"
		grep -iE 'error|fatal|panic' "$dir/dovecot.log" | tail -n 10 >&2
	fi
}

# ---------------------------------------------------------------- run

say "$A accounts x $N messages (body ~$SIZE bytes), $(nproc) CPUs"
if [ "$ONLY" != dovecot ]; then
	bench_hermod || die "hermod run failed"
fi
drc=0
if [ "$ONLY" != hermod ]; then
	bench_dovecot || drc=$?
	[ "$drc" -eq 0 ] || [ "$drc" -eq 2 ] || die "dovecot run failed"
fi

printf '\nPOP3 RETR of %d accounts x %d messages, %d concurrent clients\n' "$A" "$N" "$A"
printf '%-8s %12s %10s %9s\n' server messages/s MiB/s seconds
[ -z "$H_RATE" ] || printf '%-8s %12s %10s %9.2f\n' hermod "$H_RATE" "$H_MBS" "$H_SECS"
[ -z "$D_RATE" ] || printf '%-8s %12s %10s %9.2f\n' dovecot "$D_RATE" "$D_MBS" "$D_SECS"
if [ -n "$H_RATE" ] && [ -n "$D_RATE" ]; then
	printf 'ratio hermod/dovecot: %s\n' "$(awk -v h="$H_RATE" -v d="$D_RATE" 'BEGIN { printf "%.2f", h / d }')"
fi
