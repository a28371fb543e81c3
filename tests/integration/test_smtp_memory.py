"""Message bodies stream to the store's message writer (memory up to a small
bound, then an unnamed spill file): a session never holds a whole message.
Regression for many large unfinished DATA transactions growing the server's
memory by their size."""

import os
import time

from conftest import ALICE, DELIVERED_RE, make_message, split_stored, unique

SESSIONS = 10
BODY_MB = 20
RSS_LIMIT_KB = 100 * 1024
WAIT = 180  # seconds allowed for the server to take in what was sent


def _status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def _sanitized(pid):
    """AddressSanitizer's shadow memory and quarantine make RSS meaningless:
    under it only the spill files are checked."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def _spilled_bytes(pid):
    """Bytes in the server's open unlinked files (the writers' spill files)."""
    total = 0
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        path = os.path.join(fd_dir, fd)
        try:
            if not os.readlink(path).endswith("(deleted)"):
                continue
            total += os.stat(path).st_size
        except OSError:
            continue
    return total


def _wait_for(cond, what):
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def test_unfinished_large_data_sessions_stay_small(make_server):
    srv = make_server(limits={"max_message_size": "40M"}, fsync=False)
    pid = srv.proc.pid
    line = b"x" * 998 + b"\r\n"
    chunk = line * 1024                      # ~1 MiB
    body_bytes = len(chunk) * BODY_MB
    clients = []
    try:
        for i in range(SESSIONS):
            c = srv.connect()
            clients.append(c)
            c.greet()
            c.ehlo()
            c.mail()
            c.rcpt(ALICE)
            assert c.cmd("DATA").line == "354 End data with <CR><LF>.<CR><LF>"
            c.send(make_message(unique("big%d" % i), b""))
            for _ in range(BODY_MB):
                c.send(chunk)
        # every session has its ~20 MB in the server (and no end of data yet);
        # a server that kept them in memory shows it in its RSS first
        asan = _sanitized(pid)
        _wait_for(lambda: (_spilled_bytes(pid) >= SESSIONS * body_bytes or
                           (not asan and _status_kb(pid, "VmRSS") >= RSS_LIMIT_KB)),
                  "the server to read all bodies")
        rss = _status_kb(pid, "VmRSS")
        peak = _status_kb(pid, "VmHWM")
        print("sessions=%d body=%dMB VmRSS=%dkB VmHWM=%dkB spilled=%d" % (
            SESSIONS, BODY_MB, rss, peak, _spilled_bytes(pid)))
        if not asan:
            assert rss < RSS_LIMIT_KB, rss
            assert peak < RSS_LIMIT_KB, peak
        for c in clients:
            assert c.pending(0) == b""       # no reply: the messages are open
    finally:
        for c in clients:
            c.close()
    # closing the sessions drops their spill files
    _wait_for(lambda: _spilled_bytes(pid) == 0, "the spill files to go")
    srv.assert_serves()


def test_large_message_streams_to_the_mailbox(make_server):
    """A complete 30 MB message is stored intact, and the server's peak memory
    (its whole VmHWM) stays below 20 MB."""
    srv = make_server(limits={"max_message_size": "40M"}, fsync=False)
    pid = srv.proc.pid
    subject = unique("large")
    body = (b"y" * 78 + b"\r\n") * (30 * 1024 * 1024 // 80)
    msg = make_message(subject, body)
    with srv.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    peak = _status_kb(pid, "VmHWM")
    print("message=%d VmHWM=%dkB" % (len(msg), peak))
    if not _sanitized(pid):
        assert peak < 20 * 1024, peak
    rest = split_stored(srv.fetch_one(ALICE, subject))[2]
    assert rest == msg
    srv.assert_serves()
