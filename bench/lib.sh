# Shell helpers shared by the bench/*.sh scripts (sourced, not run). The
# sourcing script defines say() first.

now() { date +%s.%N; }

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# proc_state PID -> one-letter state, empty when the process is gone
proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	printf '%s' "${s%% *}"
}

# alive PID: the process exists and is not a zombie
alive() {
	local st
	st=$(proc_state "$1")
	[ -n "$st" ] && [ "$st" != Z ]
}

# stop_child PID SECONDS: SIGTERM a child of this shell, wait for it; SIGKILL
# after SECONDS. Returns its exit status.
stop_child() {
	local pid=$1 limit=$2 i=0
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if [ "$i" -eq $((limit * 10)) ]; then
			say "pid $pid did not exit after ${limit}s; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.1
		i=$((i + 1))
	done
	wait "$pid"
}

# postfix_master_cf FILE: a stock master.cf for a private Postfix instance (the
# system's, the package's template, or Debian's defaults written out)
postfix_master_cf() {
	if [ -f /etc/postfix/master.cf ]; then
		cp /etc/postfix/master.cf "$1"
	elif [ -f /usr/share/postfix/master.cf.dist ]; then
		cp /usr/share/postfix/master.cf.dist "$1"
	else
		cat >"$1" <<'MCF'
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
MCF
	fi
}

# dovecot_install PKG...: installs dovecot-core and PKG... (dovecot-pop3d,
# dovecot-imapd) with apt-get without leaving a system instance running: a
# policy-rc.d refuses service starts meanwhile, and a system dovecot that
# started anyway is stopped by its PID file. Uses $TMP for apt's log.
dovecot_install() {
	local made_policy=
	local pkgs="dovecot-core $*"
	say "installing $pkgs (apt-get)"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	# shellcheck disable=SC2086 # $pkgs is a list of package names
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$pkgs >"$TMP/apt.log" 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$TMP/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
				$pkgs >>"$TMP/apt.log" 2>&1
	} || rc=$?
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
	# A system dovecot that started anyway: stop it by its PID file.
	local pidfile pid
	for pidfile in /run/dovecot/master.pid /var/run/dovecot/master.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null) || continue
		if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ]; then
			say "stopping the system dovecot started by the package (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			local i=0
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

# ---- a private Postfix instance (bench-smtp, bench-tls, bench-queue) ----
# The caller keeps PF_ETC and PF_REAPER_PID (empty when none runs) and calls
# postfix_stop from its cleanup trap.

# A tiny subreaper: runs `postfix start`, writes its exit status to a file,
# then adopts and reaps the daemonized master and all its children until none
# is left, so that a stopped instance leaves no zombies behind (nothing else
# reaps orphans here).
POSTFIX_REAPER='
import ctypes, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    print("bench: warning: cannot become a subreaper", file=sys.stderr)
status_file, cmd = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    os.execvp(cmd[0], cmd)
while True:
    try:
        wpid, st = os.wait()
    except ChildProcessError:
        break
    if wpid == pid:
        with open(status_file + ".tmp", "w") as f:
            f.write("%d\n" % os.waitstatus_to_exitcode(st))
        os.rename(status_file + ".tmp", status_file)
'

# postfix_master_loopback ETC PORT: only our smtpd on 127.0.0.1:PORT in
# ETC/master.cf (no port 25), no chroot (no jail set up). 1 when another inet
# service is left.
postfix_master_loopback() {
	local etc=$1 port=$2
	postconf -c "$etc" -MX smtp/inet &&
		postconf -c "$etc" -M "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd" &&
		postconf -c "$etc" -F '*/*/chroot = n' || return 1
	if postconf -c "$etc" -M | awk '$2 == "inet" && $1 != "127.0.0.1:'"$port"'"' | grep -q .; then
		say "unexpected inet services in $etc/master.cf:"
		postconf -c "$etc" -M | awk '$2 == "inet"' >&2
		return 1
	fi
}

# postfix_start ETC DIR PORT: `postfix check`, then `postfix start` under the
# subreaper (PF_ETC, PF_REAPER_PID set), then waits until 127.0.0.1:PORT
# listens. DIR holds check.log, start.log and the instance's maillog.
postfix_start() {
	local etc=$1 dir=$2 port=$3 i=0
	if ! postfix -c "$etc" check 2>"$dir/check.log"; then
		say "postfix check failed:"
		cat "$dir/check.log" >&2
		return 1
	fi
	PF_ETC=$etc
	local status=$dir/start-status
	"$PY" -c "$POSTFIX_REAPER" "$status" postfix -c "$etc" start >"$dir/start.log" 2>&1 &
	PF_REAPER_PID=$!
	until [ -f "$status" ]; do
		i=$((i + 1))
		[ "$i" -lt 600 ] || break
		sleep 0.1
	done
	if [ "$(cat "$status" 2>/dev/null)" != 0 ]; then
		say "postfix start failed:"
		cat "$dir/start.log" >&2
		[ -f "$dir/maillog" ] && tail -n 20 "$dir/maillog" >&2
		return 1
	fi
	i=0
	until port_open "$port"; do
		i=$((i + 1))
		[ "$i" -lt 300 ] || {
			say "postfix does not listen on 127.0.0.1:$port"
			tail -n 20 "$dir/maillog" >&2
			return 1
		}
		sleep 0.1
	done
}

# postfix_stop: stops the instance of PF_ETC and waits until the subreaper has
# seen every Postfix process go (SIGKILL after 20 s).
postfix_stop() {
	[ -n "$PF_ETC" ] || return 0
	local etc=$PF_ETC
	PF_ETC=
	postfix -c "$etc" stop >/dev/null 2>&1 || true
	[ -n "$PF_REAPER_PID" ] || return 0
	local i=0 p
	while alive "$PF_REAPER_PID"; do
		if [ "$i" -eq 200 ]; then
			say "Postfix processes still running after 20s; SIGKILL"
			for p in $(ps -e -o pid=,ppid= | awk -v r="$PF_REAPER_PID" '$2 == r { print $1 }'); do
				kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
			done
		fi
		sleep 0.1
		i=$((i + 1))
	done
	wait "$PF_REAPER_PID" 2>/dev/null || true
	PF_REAPER_PID=
}
