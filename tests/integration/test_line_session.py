"""The line-session layer seen from clients: back-pressure after STARTTLS/STLS,
a TLS peer closing dirtily while its output is blocked, the POP3 per-command
timeout, the long AUTH initial response and the per-message deadline."""

import os
import socket
import subprocess
import threading
import time

from conftest import (ALICE, PASSWORDS, AUTH_OK, b64, make_message, plain_response,
                      unique)


def rss_kib(srv):
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def under_sanitizer(srv):
    """AddressSanitizer keeps freed memory in quarantine (resident), so RSS
    says nothing about live buffers there."""
    with open("/proc/%d/maps" % srv.proc.pid) as f:
        return "libasan" in f.read()


def assert_rss_growth_bounded(srv, before, limit_kib=30 * 1024):
    grown = peak_rss_kib(srv) - before
    print("rss growth %d KiB" % grown)
    if not under_sanitizer(srv):
        assert grown < limit_kib, "RSS grew by %d KiB" % grown


def peak_rss_kib(srv, seconds=6.0):
    """The highest RSS seen over `seconds` (the server works through what it
    has buffered meanwhile)."""
    peak = rss_kib(srv)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.2)
        peak = max(peak, rss_kib(srv))
    return peak


def send_until_stalled(sock, data, stall=3.0):
    """Sends data without reading until everything is sent or the peer stops
    taking it for `stall` seconds. Returns the number of bytes sent."""
    sock.settimeout(stall)
    sent = 0
    view = memoryview(data)
    try:
        while sent < len(data):
            n = sock.send(view[sent:sent + 65536])
            if n <= 0:
                break
            sent += n
    except (socket.timeout, BrokenPipeError, ConnectionResetError):
        pass
    return sent


# ---------------------------------------------------------------- B2


def test_starttls_noop_flood_is_bounded(make_server):
    """Unread NOOP replies after STARTTLS on port 25 stop the session taking
    input instead of piling up in memory."""
    srv = make_server(tls=True)
    before = rss_kib(srv)
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.starttls(srv.context())
    c.ehlo()
    # 40 MB of NOOPs would be ~93 MB of replies
    flood = b"NOOP\r\n" * (40 * 1024 * 1024 // 6)
    send_until_stalled(c.sock, flood)
    assert_rss_growth_bounded(srv, before)
    c.close()
    srv.assert_serves()


def test_stls_retr_flood_is_bounded(make_server):
    """Unread RETR replies after STLS stop the session taking input."""
    srv = make_server(tls=True, pop3=True)
    subject = unique("big")
    body = (b"x" * 998 + b"\r\n") * 100  # 100 KB
    assert srv.deliver([ALICE], make_message(subject, body)).line.startswith("250 ")
    before = rss_kib(srv)
    p = srv.pop3(tls="stls")
    p.login(ALICE, PASSWORDS[ALICE])
    # 2000 RETRs would be ~200 MB of replies
    send_until_stalled(p.sock, b"RETR 1\r\n" * 2000)
    assert_rss_growth_bounded(srv, before)
    p.close()
    srv.assert_serves()


# ---------------------------------------------------------------- B1


def test_stls_dirty_close_while_blocked_releases_maildrop(make_server):
    """A TLS client that stops reading, then closes without close_notify, is a
    closed session: its maildrop lock goes at once, not never."""
    srv = make_server(tls=True, pop3=True)
    subject = unique("big")
    body = (b"y" * 998 + b"\r\n") * 100
    assert srv.deliver([ALICE], make_message(subject, body)).line.startswith("250 ")
    p = srv.pop3(tls="stls")
    p.login(ALICE, PASSWORDS[ALICE])
    send_until_stalled(p.sock, b"RETR 1\r\n" * 200)
    # TCP FIN without the TLS close_notify; the socket stays open, unread
    p.sock.shutdown(socket.SHUT_WR)
    st = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        q = srv.pop3(tls="stls")
        q.cmd("USER " + ALICE)
        st = q.cmd("PASS " + PASSWORDS[ALICE])
        q.close()
        if st.startswith("+OK Logged in"):
            break
        assert st == "-ERR [IN-USE] Mailbox is locked by another POP3 session", st
        time.sleep(0.5)
    assert st is not None and st.startswith("+OK Logged in, "), st
    p.close()
    srv.assert_serves()


def test_blocked_output_ends_with_write_timeout(make_server):
    """A client that never reads its replies is closed after data_timeout
    without progress, also under TLS."""
    srv = make_server(tls=True, limits={"data_timeout": "2s"})
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.starttls(srv.context())
    send_until_stalled(c.sock, b"NOOP\r\n" * 500000)
    deadline = time.monotonic() + 30
    closed = False
    while time.monotonic() < deadline and not closed:
        if b"event=timeout state=write" in srv.stderr_bytes():
            closed = True
        time.sleep(0.2)
    assert closed, srv.stderr_tail()
    c.close()
    srv.assert_serves()


# ---------------------------------------------------------------- B3


def test_pop3_command_timeout(make_server):
    """A command line dripping a byte at a time must complete within
    command_timeout (RFC 1939 3 allows an autologout timer)."""
    srv = make_server(pop3=True, limits={"command_timeout": "2s", "idle_timeout": "60s"})
    p = srv.pop3()
    closed, got = drip(p, b"NOO", b"O")
    assert closed, "session still open after 20 s of dripping"
    assert got == b"-ERR Timeout\r\n", got
    p.close()
    q = srv.pop3()
    q.quit()


# ---------------------------------------------------------------- AUTH line


def test_auth_initial_response_line_up_to_12288(make_server):
    """RFC 4954 4: the AUTH command with its initial response may be longer
    than 512 octets; a 10,000-octet line authenticates."""
    srv = make_server(tls=True, submission=True)
    c = srv.connect_587()
    ir = plain_response(ALICE, PASSWORDS[ALICE])
    head = "AUTH PLAIN"
    pad = 10000 - len(head) - len(ir) - 2 - 1
    line = head + " " * pad + " " + ir
    assert len(line) + 2 == 10000
    r = c.cmd(line)
    assert r.line == AUTH_OK, r
    c.quit()


def test_auth_initial_response_reaches_sasl(make_server):
    """A 10,000-octet initial response is not cut as a line: the mechanism
    gets it (and refuses a message of that size)."""
    srv = make_server(tls=True, submission=True)
    c = srv.connect_587()
    ir = b64(b"\0" + b"a" * 7400)
    line = "AUTH PLAIN " + ir
    assert len(line) + 2 < 12288 and len(line) > 9000
    r = c.cmd(line)
    assert r.line == "501 5.5.4 Malformed authentication data", r
    r = c.cmd("NOOP")
    assert r.line == "250 2.0.0 Ok", r
    c.quit()


def test_auth_line_over_12288_is_too_long(make_server):
    srv = make_server(tls=True, submission=True)
    c = srv.connect_587()
    line = "AUTH PLAIN " + "A" * (13000 - 13)
    assert len(line) + 2 == 13000
    r = c.cmd(line)
    assert r.line == "500 5.5.2 Line too long", r
    # other commands keep the 512-octet limit
    r = c.cmd("NOOP " + "x" * 600)
    assert r.line == "500 5.5.2 Line too long", r
    r = c.cmd("AUTH PLAIN " + plain_response(ALICE, PASSWORDS[ALICE]))
    assert r.line == AUTH_OK, r
    c.quit()
    srv.assert_serves()


# ---------------------------------------------------------------- message deadline


def drip(c, first, step, seconds=20, every=0.5):
    """Sends first, then step every `every` seconds, reading what comes, until
    the server closes (or `seconds` pass). Returns (closed, bytes read)."""
    c.sock.sendall(first)
    got = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c.sock.sendall(step)
        except OSError:
            return True, got + c.buf
        c.sock.settimeout(every)
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, got
        finally:
            c.sock.settimeout(c.timeout)
        if not chunk:
            return True, got
        got += chunk
    return False, got


def test_data_message_timeout(make_server):
    """[limits] message_timeout bounds a whole DATA transfer, however steadily
    its bytes drip in."""
    srv = make_server(limits={"message_timeout": "3s", "data_timeout": "60s"})
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.mail()
    c.rcpt(ALICE)
    r = c.cmd("DATA")
    assert r.line == "354 End data with <CR><LF>.<CR><LF>", r
    closed, got = drip(c, b"Subject: drip\r\n\r\n", b"x")
    assert closed, "DATA still open after 20 s"
    assert got == b"421 4.4.2 Timeout\r\n", got
    c.close()
    srv.assert_serves()


def test_bdat_message_timeout_spans_chunks(make_server):
    """The deadline runs from the first chunk to the LAST one."""
    srv = make_server(limits={"message_timeout": "3s", "data_timeout": "60s"})
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.mail()
    c.rcpt(ALICE)
    closed, got = drip(c, b"", b"BDAT 1\r\nx")
    assert closed, "BDAT transaction still open after 20 s"
    replies = got.split(b"\r\n")
    assert replies[-1] == b"", got
    assert replies[-2] == b"421 4.4.2 Timeout", got
    assert all(x == b"250 2.0.0 1 octets received" for x in replies[:-2]), got
    c.close()
    srv.assert_serves()


def test_message_timeout_disarmed_after_message(make_server):
    """A session that finished its message in time is not cut by the
    deadline afterwards."""
    srv = make_server(limits={"message_timeout": "2s"})
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.mail()
    c.rcpt(ALICE)
    r = c.data(make_message(unique("quick")))
    assert r.line.startswith("250 2.0.0 Ok: delivered as "), r
    assert c.pending(3.5) == b""
    r = c.cmd("NOOP")
    assert r.line == "250 2.0.0 Ok", r
    c.quit()


# ---------------------------------------------------------------- B4

_SHIM = r"""
/* Test shim: the TLS filter cannot be set up (as when libevent runs out of
 * memory before it takes anything over). */
#include <stddef.h>
struct bufferevent;
struct event_base;
struct ssl_st;
struct bufferevent *bufferevent_openssl_filter_new(struct event_base *base,
    struct bufferevent *underlying, struct ssl_st *ssl, int state, int options)
{
    (void)base; (void)underlying; (void)ssl; (void)state; (void)options;
    return NULL;
}
"""


def test_failed_starttls_setup_closes_without_leak(make_server, tmp_path, monkeypatch):
    """A TLS set-up that fails closes the connection; nothing is left open
    (fd count) and the server keeps serving."""
    src = tmp_path / "shim.c"
    src.write_text(_SHIM)
    lib = tmp_path / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    srv = make_server(tls=True, start=False)
    monkeypatch.setenv("LD_PRELOAD", str(lib))
    # a sanitizer build wants its runtime first; the shim needs none
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":verify_asan_link_order=0")
    srv.start()
    monkeypatch.delenv("LD_PRELOAD")
    fd_dir = "/proc/%d/fd" % srv.proc.pid
    before = None
    for i in range(10):
        c = srv.connect()
        c.greet()
        c.ehlo()
        # the 220 queued before the set-up is discarded with the connection
        c.sock.sendall(b"STARTTLS\r\n")
        assert c.wait_closed(timeout=10) == b""
        c.close()
        if before is None:
            time.sleep(0.5)
            before = len(os.listdir(fd_dir))
    time.sleep(0.5)
    assert len(os.listdir(fd_dir)) == before
    assert b"event=starttls-failed" in srv.stderr_bytes()
    srv.assert_serves()
