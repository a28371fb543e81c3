#!/usr/bin/python3
"""Memory sampler for bench/bench-queue.sh (stdlib only).

    rss_sample.py --pidfile FILE --out FILE [--interval 0.25]

Every --interval seconds, until SIGTERM: reads the PID in --pidfile (a
server's master process; re-read while it does not exist yet) and takes that
process and all its descendants (from /proc/*/stat), and sums over them
  rss  VmRSS from /proc/PID/status (pages shared between the processes,
       libraries and the like, are counted once per process)
  pss  Pss from /proc/PID/smaps_rollup (shared pages divided among the
       processes that share them: what the group really occupies)
and keeps the largest sum of each, and the largest number of processes seen
at once. Also, for every process seen, its last VmHWM (its own peak), summed
over all the processes seen during the run (an upper bound: processes that
never ran at the same time are added up too).

On SIGTERM writes `rss_kib=N pss_kib=N hwm_sum_kib=N procs=N samples=N` to
--out and exits. Processes that start and end between two samples are missed
by the sampled sums.
"""

import argparse
import os
import signal
import sys
import time


def children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) < 2:
            continue
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def status_kib(pid, fields):
    got = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in fields:
                    got[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return got


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pidfile", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.25)
    a = p.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    best_rss = best_pss = best_procs = samples = 0
    hwm = {}  # (pid, start time) -> last VmHWM
    while not stop:
        root = None
        try:
            with open(a.pidfile, encoding="ascii") as f:
                root = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        if root is not None and os.path.exists("/proc/%d" % root):
            rss = pss = n = 0
            for pid in tree(root):
                st = status_kib(pid, ("VmRSS", "VmHWM"))
                if "VmRSS" not in st:
                    continue  # gone, or a zombie
                n += 1
                rss += st["VmRSS"]
                pss += pss_kib(pid)
                try:
                    with open("/proc/%d/stat" % pid, "rb") as f:
                        started = f.read().rsplit(b")", 1)[1].split()[19]
                except (OSError, IndexError):
                    started = b"?"
                hwm[(pid, started)] = st.get("VmHWM", 0)
            samples += 1
            best_rss = max(best_rss, rss)
            best_pss = max(best_pss, pss)
            best_procs = max(best_procs, n)
        time.sleep(a.interval)

    with open(a.out + ".tmp", "w", encoding="ascii") as f:
        f.write("rss_kib=%d pss_kib=%d hwm_sum_kib=%d procs=%d samples=%d\n"
                % (best_rss, best_pss, sum(hwm.values()), best_procs, samples))
    os.rename(a.out + ".tmp", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
