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
