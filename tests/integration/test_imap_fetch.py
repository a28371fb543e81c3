"""FETCH in the IMAP session (docs/imap.md): the session's side of it --
sequence sets against its view, \\Seen set by BODY[] (and the FLAGS answered
with it), large literals streamed in bounded steps byte for byte, UID FETCH,
BINARY with APPEND literal8, no EXPUNGE while answering FETCH (RFC 9051 7.5),
and curl's imap:// download. The responses' own grammar is tested with the
module (tests/unit/test_imap_fetch.c)."""

import re
import shutil
import subprocess

import pytest

from conftest import BOB, PASSWORDS, IMAPClient, make_message, module_server, unique


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapfetch", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def login(srv):
    c = IMAPClient(srv.host, srv.imap_port)
    c.login(BOB, PASSWORDS[BOB])
    return c


def append(c, box, data):
    tag = c.next_tag()
    c.send(("%s APPEND %s {%d+}\r\n" % (tag, box, len(data))).encode() + data + b"\r\n")
    untagged, tagged = c.read_until_tagged(tag)
    assert tagged.startswith(tag + " OK [APPENDUID "), tagged


def box_with(c, msgs):
    box = unique("f")
    c.ok("CREATE %s" % box)
    for m in msgs:
        append(c, box, m)
    c.ok("SELECT %s" % box)
    return box


def read_literal_response(c, tag):
    """One "* n FETCH (... {len}" response with its literal; returns
    (head line, literal bytes, rest of the response line)."""
    head = c.read_line()
    m = re.search(r"\{(\d+)\}$", head)
    assert m, head
    n = int(m.group(1))
    while len(c.buf) < n:
        c._fill()
    data, c.buf = c.buf[:n], c.buf[n:]
    rest = c.read_line()
    return head, data, rest


def test_fetch_flags_size_uid(srv):
    msgs = [make_message(unique("s%d" % i)) for i in range(3)]
    with login(srv) as c:
        box_with(c, msgs)
        assert c.cmd("FETCH 1:* (FLAGS UID RFC822.SIZE)", tag="a1") == (
            ["* %d FETCH (FLAGS () UID %d RFC822.SIZE %d)" % (i + 1, i + 1, len(m))
             for i, m in enumerate(msgs)], "a1 OK FETCH completed")
        assert c.cmd("UID FETCH 2:* FLAGS", tag="a2") == (
            ["* 2 FETCH (UID 2 FLAGS ())", "* 3 FETCH (UID 3 FLAGS ())"],
            "a2 OK UID FETCH completed")
        assert c.cmd("FETCH 4 FLAGS", tag="a3") == (
            [], "a3 BAD Invalid sequence set: message number out of range")
        assert c.cmd("UID FETCH 9 FLAGS", tag="a4") == ([], "a4 OK UID FETCH completed")
        assert c.cmd("FETCH 1 (BOGUS)", tag="a5") == ([], "a5 BAD Unknown FETCH attribute")
        assert c.cmd("FETCH 1", tag="a6") == (
            [], "a6 BAD Expected a sequence set and data items")
        c.logout()


def test_body_sets_seen_peek_does_not(srv):
    msgs = [make_message(unique("seen")) for _ in range(2)]
    with login(srv) as c:
        box = box_with(c, msgs)
        c.send("a1 FETCH 1 BODY.PEEK[]\r\n")
        head, data, rest = read_literal_response(c, "a1")
        assert head == "* 1 FETCH (BODY[] {%d}" % len(msgs[0])
        assert data == msgs[0]
        assert rest == ")"
        assert c.read_line() == "a1 OK FETCH completed"
        c.send("a2 FETCH 2 BODY[]\r\n")
        head, data, rest = read_literal_response(c, "a2")
        assert (head, data, rest) == ("* 2 FETCH (BODY[] {%d}" % len(msgs[1]), msgs[1],
                                      " FLAGS (\\Seen))")
        assert c.read_line() == "a2 OK FETCH completed"
        assert c.cmd("FETCH 1:2 FLAGS", tag="a3") == (
            ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS (\\Seen))"], "a3 OK FETCH completed")
        # EXAMINE: nothing is set
        c.ok("EXAMINE %s" % box)
        c.send("a4 FETCH 1 BODY[]\r\n")
        head, data, rest = read_literal_response(c, "a4")
        assert rest == ")"
        assert c.read_line() == "a4 OK FETCH completed"
        c.logout()
    assert [r["flags"] for r in srv.messages(BOB, box)] == [[], ["\\Seen"]]


def test_large_message_streamed_exactly(srv):
    """A message several times the session's FETCH step (256 KiB) and output
    limit: the literal arrives complete and byte for byte."""
    body = b"".join(b"line %06d %s\r\n" % (i, b"x" * 60) for i in range(40000))
    big = make_message(unique("big"), body=body)
    assert len(big) > 2 * 1024 * 1024
    with login(srv) as c:
        box_with(c, [big, make_message(unique("after"))])
        c.send("a1 FETCH 1:2 (BODY.PEEK[] UID)\r\n")
        head, data, rest = read_literal_response(c, "a1")
        assert head == "* 1 FETCH (BODY[] {%d}" % len(big)
        assert data == big
        assert rest == " UID 1)"
        head, data, rest = read_literal_response(c, "a1")
        assert head.startswith("* 2 FETCH (BODY[] {")
        assert c.read_line() == "a1 OK FETCH completed"
        assert c.cmd("NOOP", tag="a2") == ([], "a2 OK NOOP completed")
        c.logout()


def test_no_expunge_during_fetch(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, [make_message(unique("e")) for _ in range(3)])
        b.ok("SELECT %s" % box)
        b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert b.cmd("EXPUNGE", tag="b1") == (["* 1 EXPUNGE"], "b1 OK EXPUNGE completed")
        # a still numbers three messages, as it was told; message 1 has gone:
        # no response for it and a tagged NO (RFC 2180 4.1.2, RFC 5530)
        assert a.cmd("FETCH 1:3 (UID)", tag="a1") == (
            ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"],
            "a1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist")
        assert a.cmd("FETCH 1 (FLAGS BODY[])", tag="a2") == (
            [], "a2 NO [EXPUNGEISSUED] Some of the requested messages no longer exist")
        assert a.cmd("FETCH 2:3 (UID)", tag="a5") == (
            ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"], "a5 OK FETCH completed")
        # UID FETCH ignores a UID that is gone (RFC 9051 6.4.9)
        assert a.cmd("UID FETCH 1:3 (FLAGS)", tag="a6") == (
            ["* 2 FETCH (UID 2 FLAGS ())", "* 3 FETCH (UID 3 FLAGS ())"],
            "a6 OK UID FETCH completed")
        assert a.cmd("NOOP", tag="a3") == (["* 1 EXPUNGE"], "a3 OK NOOP completed")
        assert a.cmd("FETCH 1:* (UID)", tag="a4") == (
            ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)"], "a4 OK FETCH completed")
        a.logout()
        b.logout()


def test_curl_fetch(srv):
    if shutil.which("curl") is None:
        pytest.fail("curl not found (Debian package curl)", pytrace=False)
    msg = make_message(unique("curl"))
    with login(srv) as c:
        box = box_with(c, [msg])
        c.logout()
    p = subprocess.run(["curl", "-sS", "imap://%s:%d/%s;UID=1" % (srv.host, srv.imap_port, box),
                        "--user", "%s:%s" % (BOB, PASSWORDS[BOB])],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == msg


def test_binary_append_and_fetch(srv):
    """RFC 3516: APPEND with a literal8 (a NUL in the message), BINARY[] and
    BINARY.SIZE of a base64 part, decoded."""
    multipart = (b"From: <a@example.test>\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                 b"Content-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
                 b"Content-Type: application/octet-stream\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--x--\r\n")
    raw = b"Subject: raw\r\n\r\nnul\x00here\r\n"
    with login(srv) as c:
        box = unique("bin")
        c.ok("CREATE %s" % box)
        append(c, box, multipart)
        c.send(b"a1 APPEND " + box.encode() + b" ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
        _, tagged = c.read_until_tagged("a1")
        assert tagged.startswith("a1 OK [APPENDUID ")
        c.send(b"a2 APPEND " + box.encode() + b" {%d+}\r\n" % len(raw) + raw + b"\r\n")
        assert c.read_until_tagged("a2") == ([], "a2 BAD NUL in a literal (use literal8)")
        c.ok("SELECT %s" % box)
        c.send("a3 FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])\r\n")
        assert c.read_line() == "* 1 FETCH (BINARY.SIZE[2] 4 BINARY[2] ~{4}"
        while len(c.buf) < 4:
            c._fill()
        assert c.buf[:4] == b"\x00\x01\x02\x03"
        c.buf = c.buf[4:]
        assert c.read_line() == ")"
        assert c.read_line() == "a3 OK FETCH completed"
        c.send("a4 FETCH 2 BINARY.PEEK[]\r\n")
        assert c.read_line() == "* 2 FETCH (BINARY[] ~{%d}" % len(raw)
        while len(c.buf) < len(raw):
            c._fill()
        assert c.buf[:len(raw)] == raw
        c.buf = c.buf[len(raw):]
        assert c.read_line() == ")"
        assert c.read_line() == "a4 OK FETCH completed"
        c.logout()
