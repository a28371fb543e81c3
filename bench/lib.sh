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
