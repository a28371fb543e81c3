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
