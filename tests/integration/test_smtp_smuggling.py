"""SMTP smuggling (bare LF / bare CR end-of-data variants) and DATA
transparency. Only <CRLF>.<CRLF> ends a message; bare LF and bare CR never end
or split it and are stored as CRLF.

No test in this module delivers to bob: the smuggled second message would go
to bob, so bob's INBOX must stay empty."""

import pytest

from conftest import ALICE, BOB, DELIVERED_RE, split_stored, unique

SEQUENCES = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
}


def _no_bare_cr_lf(data):
    for i, b in enumerate(data):
        if b == 0x0A and (i == 0 or data[i - 1] != 0x0D):
            return False
        if b == 0x0D and (i + 1 >= len(data) or data[i + 1] != 0x0A):
            return False
    return True


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_smuggling(server, name):
    seq = SEQUENCES[name]
    subject = unique("s-" + name)
    smuggled = unique("smuggled")
    payload = (b"Subject: " + subject.encode() + b"\r\n\r\nhello" + seq +
               b"MAIL FROM:<evil@other.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n"
               b"Subject: " + smuggled.encode() + b"\r\n\r\nx"
               b"\r\n.\r\n")
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail("sender@remote.test")
        c.rcpt(ALICE)
        assert c.cmd("DATA").line == "354 End data with <CR><LF>.<CR><LF>"
        c.send(payload)                       # one write
        r = c.read_reply()
        assert DELIVERED_RE.match(r.line), r
        # exactly one reply: nothing more arrives ...
        extra = c.pending(1.0)
        assert extra == b"", "extra replies after the end of data: %r" % extra
        # ... and the next reply belongs to our next command
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()

    assert server.messages(BOB) == [], "the smuggled message reached bob"
    rows = server.find(ALICE, subject)
    assert len(rows) == 1, rows
    raw = server.show(ALICE, "INBOX", rows[0]["uid"])
    rp, _received, rest = split_stored(raw)
    assert rp == "<sender@remote.test>"
    assert b"MAIL FROM:<evil@other.test>" in rest
    assert b"RCPT TO:<bob@example.test>" in rest
    assert smuggled.encode() in rest
    assert _no_bare_cr_lf(raw), "bare CR or LF stored: %r" % raw
    assert not any(smuggled in r["subject"] for r in server.messages(ALICE))
    server.assert_serves()


def test_bare_lf_cr_stored_as_crlf(server):
    subject = unique("bare")
    body_sent = b"a\nb\rc\r\nd\n\ne\r\r\nf\r\n"
    body_stored = b"a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\nf\r\n"
    head = b"Subject: " + subject.encode() + b"\r\n\r\n"
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(head + body_sent + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    rest = split_stored(server.fetch_one(ALICE, subject))[2]
    assert rest == head + body_stored


def test_bare_lf_dot_does_not_unstuff(server):
    """A dot after a bare LF is not at the start of a line: it is kept."""
    subject = unique("lfdot")
    head = b"Subject: " + subject.encode() + b"\r\n\r\n"
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(head + b"x\n..y\r\n.\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    rest = split_stored(server.fetch_one(ALICE, subject))[2]
    assert rest == head + b"x\r\n..y\r\n"


def test_dot_unstuffing(server):
    subject = unique("dots")
    head = b"Subject: " + subject.encode() + b"\r\n\r\n"
    sent = head + b"..x\r\n...\r\n..\r\nmiddle . dot\r\n.. two\r\nend\r\n.\r\n"
    stored = head + b".x\r\n..\r\n.\r\nmiddle . dot\r\n. two\r\nend\r\n"
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(sent)
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    rest = split_stored(server.fetch_one(ALICE, subject))[2]
    assert rest == stored


def test_terminator_split_across_writes(server):
    """<CRLF>.<CRLF> arriving in pieces still ends the message exactly once."""
    subject = unique("split")
    head = b"Subject: " + subject.encode() + b"\r\n\r\n"
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        for piece in (head + b"body", b"\r", b"\n", b".", b"\r", b"\n"):
            c.send(piece)
        assert DELIVERED_RE.match(c.read_reply().line)
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    rest = split_stored(server.fetch_one(ALICE, subject))[2]
    assert rest == head + b"body\r\n"


def test_header_only_message(server):
    """A message that is only a header section is stored as sent."""
    subject = unique("hdronly")
    msg = b"Subject: " + subject.encode() + b"\r\n"
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(msg + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert split_stored(server.fetch_one(ALICE, subject))[2] == msg
