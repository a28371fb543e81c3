"""Limits and bad input: every case checks the exact reply from
docs/smtp-replies.md and that the server then still serves a fresh client."""

import socket
import time

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, ConnectionClosed, make_message,
                      module_server, split_stored, unique)

MAX_SIZE = "100K"
MAX_RCPT = 5
MAX_ERRORS = 10

LINE_TOO_LONG = "500 5.5.2 Line too long"
TOO_BIG = "552 5.3.4 Message size exceeds fixed limit"


@pytest.fixture(scope="module")
def lim(hermod_bin):
    yield from module_server(hermod_bin, "limits",
                             limits={"max_message_size": MAX_SIZE,
                                     "max_recipients": MAX_RCPT,
                                     "max_errors": MAX_ERRORS})


def _session(srv):
    c = srv.connect()
    c.greet()
    r = c.ehlo()
    return c, r


def _size_limit(ehlo_reply):
    for line in ehlo_reply.lines:
        if line[4:].upper().startswith("SIZE "):
            return int(line[9:])
    raise AssertionError("no SIZE in EHLO reply %r" % ehlo_reply)


# ---------------------------------------------------------------- command lines


def test_command_line_512_ok(lim):
    c, _ = _session(lim)
    with c:
        line = "NOOP " + "x" * (512 - 2 - 5)     # 512 octets incl. CRLF
        assert len(line) + 2 == 512
        assert c.cmd(line).line == "250 2.0.0 Ok"
        c.quit()


@pytest.mark.parametrize("length", [513, 600, 5000, 70000])
def test_command_line_too_long(lim, length):
    c, _ = _session(lim)
    with c:
        line = "NOOP " + "x" * (length - 2 - 5)
        assert len(line) + 2 == length
        assert c.cmd(line).line == LINE_TOO_LONG
        # the same connection still works
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.mail()
        c.rcpt(ALICE)
        subject = unique("afterlong")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    lim.fetch_one(ALICE, subject)
    lim.assert_serves()


def test_long_mail_from_line(lim):
    c, _ = _session(lim)
    with c:
        r = c.cmd("MAIL FROM:<%s@remote.test>" % ("a" * 600))
        assert r.line == LINE_TOO_LONG
        c.mail()          # no transaction was started by the long line
        c.quit()
    lim.assert_serves()


# ---------------------------------------------------------------- recipients


def test_too_many_recipients(lim):
    c, _ = _session(lim)
    subject = unique("rcpts")
    with c:
        c.mail()
        rcpts = [ALICE, BOB, "info@example.test", "x@catch.test", "y@catch.test"]
        assert len(rcpts) == MAX_RCPT
        for r in rcpts:
            c.rcpt(r)
        assert c.cmd("RCPT TO:<alice+extra@example.test>").line == \
            "452 4.5.3 Too many recipients"
        assert c.cmd("RCPT TO:<bob+extra@example.test>").line == \
            "452 4.5.3 Too many recipients"
        # the accepted recipients still get the message
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    assert lim.find(ALICE, subject)
    assert lim.find(BOB, subject)
    lim.assert_serves()


# ---------------------------------------------------------------- size


def test_size_param_over_limit(lim):
    c, ehlo = _session(lim)
    limit = _size_limit(ehlo)
    assert limit == 100 * 1024
    with c:
        r = c.cmd("MAIL FROM:<sender@remote.test> SIZE=%d" % (limit + 1))
        assert r.line == TOO_BIG
        r = c.cmd("MAIL FROM:<sender@remote.test> SIZE=99999999999999")
        assert r.line == TOO_BIG
        # at the limit is fine
        assert c.cmd("MAIL FROM:<sender@remote.test> SIZE=%d" % limit).line == "250 2.1.0 Ok"
        c.rcpt(ALICE)
        subject = unique("sizeok")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    lim.fetch_one(ALICE, subject)
    lim.assert_serves()


def _big_body(nbytes):
    line = b"x" * 98 + b"\r\n"
    return line * (nbytes // len(line) + 1)


def test_data_over_limit(lim):
    c, ehlo = _session(lim)
    limit = _size_limit(ehlo)
    subject = unique("bigdata")
    with c:
        c.mail()
        c.rcpt(ALICE)
        r = c.data(make_message(subject, _big_body(2 * limit)))
        assert r.line == TOO_BIG
        # the session goes on with a new transaction
        c.mail()
        c.rcpt(ALICE)
        subject2 = unique("afterbig")
        assert DELIVERED_RE.match(c.data(make_message(subject2)).line)
        c.quit()
    assert lim.find(ALICE, subject) == []
    lim.fetch_one(ALICE, subject2)
    lim.assert_serves()


def _assert_bdat_refused(c, line):
    """A BDAT whose size is over the limit is answered at once (its bytes are
    not read) and the session ends."""
    assert c.cmd(line).line == TOO_BIG
    assert c.wait_closed() == b""


@pytest.mark.parametrize("size", ["18446744073709551615", "102401"])
def test_bdat_single_chunk_over_limit(lim, size):
    # 100K = 102400: one octet over, and the largest chunk size there is
    subject = unique("bigbdat")
    c, ehlo = _session(lim)
    assert _size_limit(ehlo) == 102400
    with c:
        c.mail()
        c.rcpt(ALICE)
        _assert_bdat_refused(c, "BDAT %s LAST" % size)
    assert lim.find(ALICE, subject) == []
    lim.assert_serves()


def test_bdat_over_limit_outside_transaction(lim):
    """The chunk of a failed BDAT is skipped, unless it is over the limit."""
    c, _ = _session(lim)
    with c:
        _assert_bdat_refused(c, "BDAT 18446744073709551615")
    lim.assert_serves()


def test_bdat_chunks_over_limit(lim):
    c, ehlo = _session(lim)
    limit = _size_limit(ehlo)
    subject = unique("bigbdat2")
    msg = make_message(subject, _big_body(2 * limit))
    half = len(msg) // 3
    part1, part2 = msg[:half], msg[half:]
    assert len(part1) < limit < len(msg)
    with c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        assert c.read_reply().line == "250 2.0.0 %d octets received" % len(part1)
        # the running total crosses the limit
        _assert_bdat_refused(c, "BDAT %d LAST" % len(part2))
    assert lim.find(ALICE, subject) == []
    lim.assert_serves()


def test_bdat_chunks_up_to_limit(lim):
    """Chunks adding up to exactly the limit are a message of the largest size
    accepted (our trace headers do not count)."""
    c, ehlo = _session(lim)
    limit = _size_limit(ehlo)
    subject = unique("bdatlimit")
    msg = make_message(subject, _big_body(limit))[:limit - 2] + b"\r\n"
    assert len(msg) == limit
    part1, part2 = msg[:1000], msg[1000:]
    with c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        assert c.read_reply().line == "250 2.0.0 1000 octets received"
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    rest = split_stored(lim.fetch_one(ALICE, subject))[2]
    assert rest == msg
    lim.assert_serves()


# ---------------------------------------------------------------- text lines


def test_text_line_1000_accepted(lim):
    subject = unique("line1000")
    long_line = b"L" * 998 + b"\r\n"
    assert len(long_line) == 1000
    msg = make_message(subject, b"before\r\n" + long_line + b"after\r\n")
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    rest = split_stored(lim.fetch_one(ALICE, subject))[2]
    assert rest == msg


@pytest.fixture(scope="module")
def strict(hermod_bin):
    yield from module_server(hermod_bin, "strictline",
                             limits={"max_message_size": MAX_SIZE,
                                     "strict_line_length": "yes"})


@pytest.mark.parametrize("octets", [1001, 5000, 90000])
def test_text_line_long_accepted_by_default(lim, octets):
    """[limits] strict_line_length = no (the default): long lines are stored
    as sent, bounded only by the message size."""
    subject = unique("longline%d" % octets)
    long_line = b"L" * (octets - 2) + b"\r\n"
    msg = make_message(subject, b"before\r\n" + long_line + b"after\r\n")
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    rest = split_stored(lim.fetch_one(ALICE, subject))[2]
    assert rest == msg
    lim.assert_serves()


def test_text_line_long_bdat_accepted_by_default(lim):
    subject = unique("longbdat")
    msg = make_message(subject, b"x" * 3000 + b"\r\n")
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    rest = split_stored(lim.fetch_one(ALICE, subject))[2]
    assert rest == msg


def test_text_line_longer_than_message_limit(lim):
    """Without the line limit one line is still bounded by max_message_size."""
    subject = unique("hugeline")
    msg = make_message(subject, b"L" * 150000 + b"\r\n")
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(msg + b".\r\n")
        assert c.read_reply().line == TOO_BIG
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert lim.find(ALICE, subject) == []
    lim.assert_serves()


def test_text_line_1000_accepted_strict(strict):
    subject = unique("line1000s")
    long_line = b"L" * 998 + b"\r\n"
    msg = make_message(subject, b"before\r\n" + long_line + b"after\r\n")
    c, _ = _session(strict)
    with c:
        c.mail()
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    rest = split_stored(strict.fetch_one(ALICE, subject))[2]
    assert rest == msg


@pytest.mark.parametrize("octets", [1001, 5000])
def test_text_line_too_long_strict(strict, octets):
    subject = unique("line%d" % octets)
    long_line = b"L" * (octets - 2) + b"\r\n"
    msg = make_message(subject, b"before\r\n" + long_line + b"after\r\n")
    c, _ = _session(strict)
    with c:
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(msg)
        # no reply before the end of the message
        assert c.pending(0.5) == b""
        c.send(b".\r\n")
        assert c.read_reply().line == LINE_TOO_LONG
        # next transaction on the same connection works
        c.mail()
        c.rcpt(ALICE)
        subject2 = unique("afterline")
        assert DELIVERED_RE.match(c.data(make_message(subject2)).line)
        c.quit()
    assert strict.find(ALICE, subject) == []
    strict.fetch_one(ALICE, subject2)
    strict.assert_serves()


def test_text_line_too_long_strict_bdat(strict):
    subject = unique("longbdats")
    msg = make_message(subject, b"x" * 3000 + b"\r\n")
    c, _ = _session(strict)
    with c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert c.read_reply().line == LINE_TOO_LONG
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert strict.find(ALICE, subject) == []
    strict.assert_serves()


# ---------------------------------------------------------------- syntax


@pytest.mark.parametrize("line", [
    "MAIL FROM:alice",
    "MAIL FROM:<alice",
    "MAIL FROM:<a b@remote.test>",
    "MAIL FROM:<sender@remote.test> SIZE=abc",
    "MAIL FROM:<sender@remote.test> SIZE=1 SIZE=2",
    "MAIL TO:<sender@remote.test>",
    "MAIL",
])
def test_mail_bad_syntax(lim, line):
    c, _ = _session(lim)
    with c:
        r = c.cmd(line)
        assert r.line.startswith("501 5.5.4 "), r
        c.mail()          # no sender was set by the bad command
        c.quit()
    lim.assert_serves()


@pytest.mark.parametrize("line", [
    "RCPT TO:<a b@c>",
    "RCPT TO:alice@example.test",
    "RCPT TO:<alice@example.test",
    "RCPT TO:<@example.test>",
    "RCPT TO:<>",
    "RCPT FROM:<alice@example.test>",
    "RCPT",
])
def test_rcpt_bad_syntax(lim, line):
    c, _ = _session(lim)
    with c:
        c.mail()
        r = c.cmd(line)
        assert r.line.startswith("501 5.5.4 "), r
        assert c.cmd("DATA").line == "503 5.5.1 Need RCPT first"
        c.quit()
    lim.assert_serves()


@pytest.mark.parametrize("line", ["BDAT", "BDAT x", "BDAT -1", "BDAT 1x LAST"])
def test_bdat_bad_syntax(lim, line):
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        r = c.cmd(line)
        assert r.line.startswith("501 5.5.4 "), r
        assert c.cmd("RSET").line == "250 2.0.0 Ok"
        c.quit()
    lim.assert_serves()


def test_unknown_parameter(lim):
    c, _ = _session(lim)
    with c:
        r = c.cmd("MAIL FROM:<sender@remote.test> FOO=BAR")
        assert r.line.startswith("555 5.5.4 "), r
        c.mail()
        r = c.cmd("RCPT TO:<alice@example.test> FOO=BAR")
        assert r.line.startswith("555 5.5.4 "), r
        r = c.cmd("RCPT TO:<alice@example.test> XYZZY")
        assert r.line.startswith("555 5.5.4 "), r
        c.rcpt(ALICE)
        c.quit()
    lim.assert_serves()


def test_unknown_command(lim):
    c, _ = _session(lim)
    with c:
        assert c.cmd("FOO bar").line == "500 5.5.2 Command unrecognized"
        assert c.cmd("MAILFROM:<x@remote.test>").line == "500 5.5.2 Command unrecognized"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    lim.assert_serves()


# ---------------------------------------------------------------- order


def test_mail_before_ehlo(lim):
    with lim.connect() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<sender@remote.test>").line == \
            "503 5.5.1 Send EHLO or HELO first"
        c.ehlo()
        c.mail()
        c.quit()
    lim.assert_serves()


def test_wrong_order(lim):
    c, _ = _session(lim)
    with c:
        assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL first"
        c.mail()
        assert c.cmd("DATA").line == "503 5.5.1 Need RCPT first"
        assert c.cmd("BDAT 0 LAST").line == "503 5.5.1 Need RCPT first"
        assert c.cmd("MAIL FROM:<other@remote.test>").line == \
            "503 5.5.1 Sender already specified"
        # the failed RCPT does not count as accepted
        assert c.cmd("RCPT TO:<nobody@example.test>").line == "550 5.1.1 User unknown"
        assert c.cmd("DATA").line == "503 5.5.1 Need RCPT first"
        c.rcpt(ALICE)
        subject = unique("order")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    lim.fetch_one(ALICE, subject)
    lim.assert_serves()


def test_data_after_bdat(lim):
    c, _ = _session(lim)
    with c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT 5\r\nhello")
        assert c.read_reply().line == "250 2.0.0 5 octets received"
        assert c.cmd("DATA").line == "503 5.5.1 DATA not allowed after BDAT"
        assert c.cmd("RSET").line == "250 2.0.0 Ok"
        c.quit()
    lim.assert_serves()


# ---------------------------------------------------------------- error limit


def test_too_many_errors(lim):
    with lim.connect() as c:
        c.greet()
        c.ehlo()
        got_421_at = None
        for i in range(1, MAX_ERRORS + 2):
            try:
                r = c.cmd("BOGUS%d" % i)
            except ConnectionClosed:
                raise AssertionError("closed without 421 after %d errors" % (i - 1))
            if r.code == 421:
                assert r.line == "421 4.7.0 Too many errors"
                got_421_at = i
                break
            assert r.line == "500 5.5.2 Command unrecognized", (i, r)
        # max_errors errors are each answered; the command after them gets the 421
        assert got_421_at == MAX_ERRORS + 1, got_421_at
        c.wait_closed()
    lim.assert_serves()


def test_errors_below_limit_keep_session(lim):
    with lim.connect() as c:
        c.greet()
        c.ehlo()
        for i in range(MAX_ERRORS - 2):
            assert c.cmd("BOGUS").line == "500 5.5.2 Command unrecognized"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


# ---------------------------------------------------------------- connections


def _open_n(srv, n, source=None):
    """Opens n sessions that all got 220. Retries while the server may still
    be counting connections that were closed just before (bounded)."""
    deadline = time.monotonic() + 15
    while True:
        conns, ok = [], True
        for _ in range(n):
            c = srv.connect(source=source)
            conns.append(c)
            r = c.read_reply()
            if r.code != 220:
                ok = False
                break
        if ok:
            return conns
        for c in conns:
            c.close()
        assert time.monotonic() < deadline, "could not open %d sessions: %r" % (n, r)
        time.sleep(0.2)


def _expect_refused(srv, source=None):
    with srv.connect(source=source) as c:
        r = c.read_reply()
        assert r.line == "421 4.7.0 Too many connections"
        c.wait_closed()


def _serves_eventually(srv):
    """After closing connections the server frees their slots (the close is
    asynchronous, so retry for a while), then delivers as usual."""
    conns = _open_n(srv, 1)
    conns[0].close()
    srv.assert_serves()


def _loopback_alias_usable(addr):
    try:
        s = socket.socket()
        s.bind((addr, 0))
        s.close()
        return True
    except OSError:
        return False


def test_max_connections_per_ip(make_server):
    srv = make_server(limits={"max_connections_per_ip": 3})
    conns = _open_n(srv, 3)
    try:
        _expect_refused(srv)
        _expect_refused(srv)
        # the existing sessions are unaffected
        for c in conns:
            assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        if _loopback_alias_usable("127.0.0.2"):
            # another address is not limited by 127.0.0.1's count
            with srv.connect(source="127.0.0.2") as other:
                assert other.read_reply().code == 220
                other.quit()
    finally:
        for c in conns:
            c.close()
    _serves_eventually(srv)


def test_max_connections_global(make_server):
    if not (_loopback_alias_usable("127.0.0.2") and _loopback_alias_usable("127.0.0.3")):
        pytest.skip("cannot bind 127.0.0.2/127.0.0.3")
    srv = make_server(limits={"max_connections": 2, "max_connections_per_ip": 100})
    conns = _open_n(srv, 1) + _open_n(srv, 1, source="127.0.0.2")
    try:
        _expect_refused(srv, source="127.0.0.3")
        _expect_refused(srv)
    finally:
        for c in conns:
            c.close()
    _serves_eventually(srv)


def test_idle_timeout(make_server):
    srv = make_server(limits={"idle_timeout": "2s"})
    c1 = srv.connect()           # silent after the greeting
    c2 = srv.connect()           # silent in the middle of a transaction
    with c1, c2:
        c1.greet()
        c2.greet()
        c2.ehlo()
        c2.mail()
        c2.rcpt(ALICE)
        for c in (c1, c2):
            r = c.read_reply()      # arrives on its own after ~2 s (30 s cap)
            assert r.line == "421 4.4.2 Timeout"
            c.wait_closed()
    # a client that keeps talking is not cut off, and new clients are served
    with srv.connect() as c3:
        c3.greet()
        c3.ehlo()
        for _ in range(3):
            time.sleep(0.5)
            assert c3.cmd("NOOP").line == "250 2.0.0 Ok"
        c3.quit()
    srv.assert_serves()


def test_command_timeout(make_server):
    # A command line that was started must be finished within command_timeout,
    # even when the session's idle timeout is much longer (slow-loris clients).
    srv = make_server(limits={"idle_timeout": "60s", "command_timeout": "2s"})
    with srv.connect() as c:
        c.greet()
        c.ehlo()
        c.send(b"NOOP")              # no CRLF: the line never completes
        r = c.read_reply()           # arrives on its own after ~2 s (30 s cap)
        assert r.line == "421 4.4.2 Timeout"
        c.wait_closed()
    srv.assert_serves()
