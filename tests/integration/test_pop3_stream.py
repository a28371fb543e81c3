"""POP3 RETR/TOP stream messages from the store in bounded steps: a 30 MB message
comes out byte for byte (dot-stuffed, with dot-started lines, line ends and CRLF
pairs placed on the read-step borders), pipelined, while the server's memory
stays bounded; TOP of a large message gives exactly the header and n lines."""

import poplib
import socket
import time

from conftest import ALICE, PASSWORDS, DELIVERED_RE, make_message, unique
from test_line_session import rss_kib, under_sanitizer
from test_pop3_smoke import pop3_server

KIB = 1024
# Read-step borders a streaming reader may use (16, 64 and 256 KiB multiples).
BORDERS = [k * 16 * KIB for k in range(1, 70)] + [k * 256 * KIB for k in range(1, 8)]


def stuff(msg):
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in msg.split(b"\r\n"))


def trace_len(srv):
    """How many octets the store puts before the message (trace headers)."""
    probe = make_message(unique("probe"), b"probe\r\n")
    assert DELIVERED_RE.match(srv.deliver([ALICE], probe).line)
    rows = srv.messages(ALICE)
    stored = srv.show(ALICE, "INBOX", rows[-1]["uid"])
    return len(stored) - len(probe)


def big_body(offset, size):
    """About size octets of body whose stored bytes (starting offset octets into
    the blob) have a run of ".\\r\\n" lines across every border, shifted by one
    octet from border to border, so that a '.' line start, a CR|LF split and a
    line ending exactly at the border each fall on some border."""
    out = bytearray()
    borders = sorted(set(b for b in BORDERS if b - offset > 200))
    for k, b in enumerate(borders):
        start = b - offset - 45 - (k % 3)
        while len(out) < start:
            n = min(start - len(out) - 2, 76)
            out += b"x" * n + b"\r\n" if n > 0 else b"\r\n"
        del out[start:]
        out += b".\r\n" * 30
    while len(out) < size:
        out += b".%07d " % len(out) + b"y" * 60 + b"\r\n"
    return bytes(out)


def retr_all(s, n_bytes_expected, srv, samples):
    buf = bytearray()
    next_sample = 0
    while len(buf) < n_bytes_expected:
        chunk = s.recv(256 * KIB)
        assert chunk, bytes(buf[-200:])
        buf += chunk
        if len(buf) >= next_sample:
            samples.append(rss_kib(srv))
            next_sample += 1 << 20
    return bytes(buf)


def test_retr_30mb_exact_and_bounded(make_server):
    srv = pop3_server(make_server)
    off = trace_len(srv)
    head = make_message(unique("big"), b"")
    body = big_body(off + len(head), 30 << 20)
    assert DELIVERED_RE.match(srv.deliver([ALICE], head + body).line)
    rows = srv.messages(ALICE)
    stored = srv.show(ALICE, "INBOX", rows[-1]["uid"])
    assert len(stored) == rows[-1]["size"] and stored.endswith(body)
    # the construction hit all three cases at a 64 KiB and a 256 KiB border
    for border in (64 * KIB, 256 * KIB):
        around = {stored[b - 1:b + 1] for b in range(border, len(stored), border)
                  if stored[b - 3:b + 3].count(b".\r\n") >= 1}
        assert {b"\n.", b".\r", b"\r\n"} <= around, (border, around)
    n = len(rows)
    want = (b"+OK %d octets\r\n" % len(stored) + stuff(stored) + b".\r\n")
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=60) as s:
        f = s.makefile("rb")
        assert f.readline() == b"+OK hermod POP3 server ready\r\n"
        s.sendall(b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(), PASSWORDS[ALICE].encode()))
        assert f.readline() == b"+OK\r\n"
        assert f.readline().startswith(b"+OK Logged in, %d messages" % n)
        before = rss_kib(srv)
        # two pipelined RETRs of the same 30 MB message, then NOOP
        s.sendall(b"RETR %d\r\nRETR %d\r\nNOOP\r\n" % (n, n))
        samples = []
        got = retr_all(_Reader(f), 2 * len(want) + 5, srv, samples)
        assert got == want + want + b"+OK\r\n"
        s.sendall(b"QUIT\r\n")
        assert f.readline() == b"+OK Bye, 0 messages deleted\r\n"
    if not under_sanitizer(srv):
        assert max(samples) - before < 8 * KIB, (before, max(samples))
    srv.assert_serves()


class _Reader:
    """recv() over a buffered file (the greeting and login were read through it)."""

    def __init__(self, f):
        self.f = f

    def recv(self, n):
        return self.f.read1(n)


def test_top_large_message(make_server):
    srv = pop3_server(make_server)
    lines = [b"line %06d %s" % (i, b"z" * 50) for i in range(200000)]
    lines[1] = b".dotted second line"
    msg = make_message(unique("bigtop"), b"\r\n".join(lines) + b"\r\n")
    assert DELIVERED_RE.match(srv.deliver([ALICE], msg).line)
    rows = srv.messages(ALICE)
    stored = srv.show(ALICE, "INBOX", rows[-1]["uid"])
    hdr_end = stored.index(b"\r\n\r\n") + 4
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=60) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER %s\r\nPASS %s\r\nTOP 1 0\r\nTOP 1 3\r\nTOP 1 200000\r\nNOOP\r\n"
                  % (ALICE.encode(), PASSWORDS[ALICE].encode()))
        assert f.readline() == b"+OK\r\n"
        assert f.readline().startswith(b"+OK Logged in, 1 messages")

        def multi():
            assert f.readline() == b"+OK\r\n"
            out = bytearray()
            while True:
                line = f.readline()
                assert line, bytes(out[-200:])
                if line == b".\r\n":
                    return bytes(out)
                out += line

        assert multi() == stuff(stored[:hdr_end])
        three = stored[:hdr_end] + b"\r\n".join(lines[:3]) + b"\r\n"
        assert multi() == stuff(three)
        assert multi() == stuff(stored)
        assert f.readline() == b"+OK\r\n"
    srv.assert_serves()


def test_unread_streamed_retr_ends_with_write_timeout(make_server):
    """A client that stops reading in the middle of a streamed RETR is closed
    after data_timeout without progress, and its maildrop is free again."""
    port = __import__("conftest").free_port()
    srv = make_server(extra={"listen": {"pop3": "127.0.0.1:%d" % port},
                             "auth": {"allow_plaintext_on_loopback": "yes"}},
                      limits={"data_timeout": "2s"})
    srv.pop3_port = port
    body = (b"w" * 998 + b"\r\n") * 5000  # 5 MB
    assert DELIVERED_RE.match(srv.deliver([ALICE], make_message(unique("big"), body)).line)
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(), PASSWORDS[ALICE].encode()))
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logged in, 1 messages")
    # nothing unsent when RETR starts: the streamed output alone must be watched
    s.sendall(b"RETR 1\r\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if b"event=timeout state=write" in srv.stderr_bytes():
            break
        time.sleep(0.2)
    assert b"event=timeout state=write" in srv.stderr_bytes(), srv.stderr_tail()
    f.close()
    s.close()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.user(ALICE)
    assert p.pass_(PASSWORDS[ALICE]).startswith(b"+OK Logged in, 1 messages")
    p.quit()
    srv.assert_serves()
