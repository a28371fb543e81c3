"""PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030)."""

import re

from conftest import (ALICE, BOB, DELIVERED_RE, make_message, split_stored, unique)


def _session(server):
    c = server.connect()
    c.greet()
    c.ehlo()
    return c


def _replies(c, n):
    return [c.read_reply() for _ in range(n)]


# ---------------------------------------------------------------- PIPELINING


def test_pipelined_envelope(server):
    subject = unique("pipe")
    msg = make_message(subject, b"pipelined\r\n")
    with _session(server) as c:
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        rs = _replies(c, 4)
        assert [r.line for r in rs] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                                        "354 End data with <CR><LF>.<CR><LF>"]
        c.send(msg + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    for who in (ALICE, BOB):
        assert split_stored(server.fetch_one(who, subject))[2] == msg


def test_pipelined_with_rejections(server):
    subject = unique("pipe-rej")
    msg = make_message(subject)
    with _session(server) as c:
        c.send(b"RSET\r\n"
               b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<user@other.test>\r\n"
               b"RCPT TO:<alice+p@example.test>\r\n"
               b"NOOP\r\n"
               b"DATA\r\n")
        rs = _replies(c, 7)
        assert [r.line for r in rs] == [
            "250 2.0.0 Ok", "250 2.1.0 Ok", "550 5.1.1 User unknown",
            "554 5.7.1 Relay access denied", "250 2.1.5 Ok", "250 2.0.0 Ok",
            "354 End data with <CR><LF>.<CR><LF>"]
        c.send(msg + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    server.fetch_one(ALICE, subject)
    server.assert_serves()


def test_pipelined_data_without_rcpt(server):
    """The only RCPT of a pipelined group fails: DATA gets 503, in order."""
    with _session(server) as c:
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"DATA\r\n")
        rs = _replies(c, 3)
        assert [r.line for r in rs] == ["250 2.1.0 Ok", "550 5.1.1 User unknown",
                                        "503 5.5.1 Need RCPT first"]
        c.quit()
    server.assert_serves()


def test_pipelined_transactions_back_to_back(server):
    """Two complete transactions, everything after each DATA sent at once
    once 354 arrived; then RSET + QUIT pipelined."""
    subjects = [unique("b2b") for _ in range(2)]
    with _session(server) as c:
        for s in subjects:
            c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
            assert [r.code for r in _replies(c, 3)] == [250, 250, 354]
            c.send(make_message(s) + b".\r\n")
            assert DELIVERED_RE.match(c.read_reply().line)
        c.send(b"RSET\r\nNOOP\r\nQUIT\r\n")
        assert [r.line for r in _replies(c, 3)] == ["250 2.0.0 Ok", "250 2.0.0 Ok",
                                                    "221 2.0.0 Bye"]
        c.wait_closed()
    for s in subjects:
        server.fetch_one(ALICE, s)


# ---------------------------------------------------------------- BDAT


def test_bdat_chunks_and_last_zero(server):
    subject = unique("bdat")
    msg = make_message(subject, b"first part\r\nsecond part\r\nthird\r\n")
    chunks = [msg[:37], msg[37:90], msg[90:]]
    with _session(server) as c:
        c.mail()
        c.rcpt(ALICE)
        for ch in chunks:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            assert c.read_reply().line == "250 2.0.0 %d octets received" % len(ch)
        c.send(b"BDAT 0 LAST\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == b"".join(chunks)


def test_bdat_single_last(server):
    subject = unique("bdat1")
    msg = make_message(subject, b"one chunk\r\n")
    with _session(server) as c:
        c.mail()
        c.rcpt(BOB)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    assert split_stored(server.fetch_one(BOB, subject))[2] == msg


def test_bdat_8bit(server):
    subject = unique("bdat8")
    # every octet value except NUL, CR, LF, in lines well under 1000 octets
    octets = bytes(b for b in range(1, 256) if b not in (10, 13))
    body = b"".join(octets[i:i + 60] + b"\r\n" for i in range(0, len(octets), 60)) * 4
    body += "UTF-8: gr\u00fc\u00dfe \u65e5\u672c\r\n".encode()
    msg = make_message(subject, body,
                       extra_headers=["MIME-Version: 1.0",
                                      "Content-Type: text/plain; charset=iso-8859-1",
                                      "Content-Transfer-Encoding: 8bit"])
    with _session(server) as c:
        c.mail(params="BODY=8BITMIME")
        c.rcpt(ALICE)
        mid = len(msg) // 2
        c.send(b"BDAT %d\r\n" % mid + msg[:mid])
        assert c.read_reply().line == "250 2.0.0 %d octets received" % mid
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - mid) + msg[mid:])
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == msg


def test_data_8bit(server):
    subject = unique("data8")
    body = bytes(range(128, 256)) + b"\r\n" + "gr\u00fc\u00dfe\r\n".encode()
    msg = make_message(subject, body)
    with _session(server) as c:
        c.mail(params="BODY=8BITMIME")
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == msg


def test_bdat_no_dot_handling(server):
    """BDAT data is raw: CRLF.CRLF does not end it and dots are not unstuffed."""
    subject = unique("bdatdot")
    body = (b"line one\r\n.\r\nMAIL FROM:<evil@other.test>\r\n"
            b"RCPT TO:<bob@example.test>\r\n..double dot\r\n.\r\nend\r\n")
    msg = make_message(subject, body)
    with _session(server) as c:
        c.mail()
        c.rcpt(ALICE)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert DELIVERED_RE.match(c.read_reply().line)
        # exactly one reply: nothing inside the chunk was read as a command
        assert c.pending(1.0) == b""
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == msg
    assert server.find(BOB, subject) == []


def test_bdat_pipelined(server):
    """MAIL, RCPT, several BDAT chunks and QUIT in one write."""
    subject = unique("bdatpipe")
    msg = make_message(subject, b"".join(b"pipelined chunk line %d\r\n" % i
                                         for i in range(200)))
    cuts = [0, 100, 1000, 2500, len(msg)]
    chunks = [msg[a:b] for a, b in zip(cuts, cuts[1:])]
    data = b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
    data += b"RCPT TO:<bob@example.test>\r\n"
    for ch in chunks[:-1]:
        data += b"BDAT %d\r\n" % len(ch) + ch
    data += b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1]
    data += b"QUIT\r\n"
    with _session(server) as c:
        c.send(data)
        rs = _replies(c, 3 + len(chunks) + 1)
        lines = [r.line for r in rs]
        assert lines[:3] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"]
        assert lines[3:3 + len(chunks) - 1] == [
            "250 2.0.0 %d octets received" % len(ch) for ch in chunks[:-1]]
        assert DELIVERED_RE.match(lines[-2]), lines
        assert lines[-1] == "221 2.0.0 Bye"
        c.wait_closed()
    for who in (ALICE, BOB):
        assert split_stored(server.fetch_one(who, subject))[2] == msg


def test_bdat_two_transactions_pipelined(server):
    subjects = [unique("bdat2x") for _ in range(2)]
    msgs = [make_message(s, b"message %d\r\n" % i) for i, s in enumerate(subjects)]
    data = b""
    for m in msgs:
        data += (b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"BDAT %d LAST\r\n" % len(m) + m)
    with _session(server) as c:
        c.send(data)
        rs = [r.line for r in _replies(c, 6)]
        assert rs[0:2] == ["250 2.1.0 Ok", "250 2.1.5 Ok"]
        assert DELIVERED_RE.match(rs[2])
        assert rs[3:5] == ["250 2.1.0 Ok", "250 2.1.5 Ok"]
        assert DELIVERED_RE.match(rs[5])
        c.quit()
    for s, m in zip(subjects, msgs):
        assert split_stored(server.fetch_one(ALICE, s))[2] == m


def test_bdat_large_chunked(server):
    subject = unique("bdatbig")
    body = b"".join(b"%08d abcdefghijklmnopqrstuvwxyz0123456789\r\n" % i for i in range(50000))
    msg = make_message(subject, body)
    size = 256 * 1024
    chunks = [msg[i:i + size] for i in range(0, len(msg), size)]
    with _session(server) as c:
        c.mail(params="SIZE=%d" % len(msg))
        c.rcpt(ALICE)
        for ch in chunks:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            assert c.read_reply().line == "250 2.0.0 %d octets received" % len(ch)
        c.send(b"BDAT 0 LAST\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == msg


def test_half_close_still_gets_every_reply(server):
    # A client that pipelines a whole transaction and QUIT, then closes its
    # sending side, must still get every reply, the 250 included: dropping it
    # would make the client send the delivered message again.
    import socket
    subject = unique("half-close")
    with socket.create_connection((server.host, server.port), timeout=30) as s:
        s.recv(1000)
        s.sendall(("EHLO client.remote.test\r\nMAIL FROM:<x@remote.test>\r\n"
                   "RCPT TO:<%s>\r\nDATA\r\nSubject: %s\r\n\r\nbody\r\n.\r\nQUIT\r\n"
                   % (ALICE, subject)).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    lines = data.decode().split("\r\n")
    assert any(DELIVERED_RE.match(l) for l in lines), lines
    assert lines[-2] == "221 2.0.0 Bye", lines
    server.fetch_one(ALICE, subject)


# ------------------------------------------------- pipelined RCPTs, one lookup job


def _rcpt_lookup_jobs(srv):
    """(jobs, rcpts) of the recipient lookups that covered several RCPTs."""
    found = re.findall(rb"event=rcpt-lookup rcpts=(\d+)", srv.stderr_bytes())
    return len(found), sum(int(n) for n in found)


def _mixed_rcpts(n):
    """n RCPT lines mixing local, unknown, remote, postmaster and malformed
    recipients, with the reply each gets (as one RCPT per round trip gets)."""
    lines, replies = [], []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            lines.append(b"RCPT TO:<alice+p%d@example.test>" % i)
            replies.append("250 2.1.5 Ok")
        elif kind == 1:
            lines.append(b"RCPT TO:<nobody%d@example.test>" % i)
            replies.append("550 5.1.1 User unknown")
        elif kind == 2:
            lines.append(b"RCPT TO:<user%d@other.test>" % i)
            replies.append("554 5.7.1 Relay access denied")
        elif kind == 3:
            lines.append(b"RCPT TO:<bad%d@example.test" % i)
            replies.append(SYNTAX_REPLY)
        elif kind == 4:
            lines.append(b"RCPT TO:<Bob@Example.Test>")
            replies.append("250 2.1.5 Ok")
        else:
            lines.append(b"RCPT TO:<postmaster>")
            replies.append("250 2.1.5 Ok")
    return lines, replies


SYNTAX_REPLY = "501 5.5.4 invalid character after address"


def test_pipelined_rcpts_in_one_lookup(make_server):
    """50 pipelined RCPTs: every reply exactly as one by one, in order, and the
    lookups ran in fewer worker jobs than there were RCPTs."""
    srv = make_server(limits={"max_errors": "100", "max_recipients": "100"})
    subject = unique("rcpt-batch")
    msg = make_message(subject)
    lines, want = _mixed_rcpts(50)
    with _session(srv) as c:
        c.send(b"MAIL FROM:<sender@remote.test>\r\n" + b"\r\n".join(lines) + b"\r\nDATA\r\n")
        rs = _replies(c, 52)
        assert [r.line for r in rs] == (["250 2.1.0 Ok"] + want +
                                        ["354 End data with <CR><LF>.<CR><LF>"])
        c.send(msg + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    # one copy per account, however many RCPTs led to it
    for who in (ALICE, BOB):
        assert split_stored(srv.fetch_one(who, subject))[2] == msg
    jobs, covered = _rcpt_lookup_jobs(srv)
    assert jobs >= 1 and covered > jobs
    srv.assert_serves()


def test_pipelined_rcpts_over_max_recipients(make_server):
    """The limit counts accepted recipients, also inside one lookup batch."""
    srv = make_server(limits={"max_recipients": "3"})
    with _session(srv) as c:
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<alice+x@example.test>\r\n"
               b"RCPT TO:<bob+y@example.test>\r\n"
               b"RCPT TO:<alice+z@example.test>\r\n"
               b"RSET\r\n")
        rs = _replies(c, 8)
        assert [r.line for r in rs] == [
            "250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 User unknown", "250 2.1.5 Ok",
            "250 2.1.5 Ok", "452 4.5.3 Too many recipients", "452 4.5.3 Too many recipients",
            "250 2.0.0 Ok"]
        c.quit()
    srv.assert_serves()


def test_pipelined_rcpts_too_many_errors(make_server):
    """max_errors is reached inside a batch: the next command gets the goodbye,
    as it does when each RCPT is looked up on its own."""
    srv = make_server(limits={"max_errors": "3"})
    with _session(srv) as c:
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<nobody1@example.test>\r\n"
               b"RCPT TO:<user@other.test>\r\n"
               b"RCPT TO:<nobody2@example.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n")
        rs = _replies(c, 5)
        assert [r.line for r in rs] == [
            "250 2.1.0 Ok", "550 5.1.1 User unknown", "554 5.7.1 Relay access denied",
            "550 5.1.1 User unknown", "421 4.7.0 Too many errors"]
        c.wait_closed()
    srv.assert_serves()
