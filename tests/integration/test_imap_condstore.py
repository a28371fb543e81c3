"""CONDSTORE and QRESYNC (RFC 7162) in the IMAP session (docs/imap.md): ENABLE,
HIGHESTMODSEQ in SELECT and STATUS, MODSEQ in the FETCH responses of STORE,
CHANGEDSINCE, SELECT (QRESYNC ...) with VANISHED (EARLIER) and the changed
messages, VANISHED in place of EXPUNGE, UID FETCH (CHANGEDSINCE n VANISHED).
MODSEQ values are read from the server's answers, then every later reply is
checked exactly against them."""

import re

import pytest

from conftest import BOB, PASSWORDS, IMAPClient, make_message, module_server, unique

HMS_RE = re.compile(r"^\* OK \[HIGHESTMODSEQ (\d+)\] Highest$")
UV_RE = re.compile(r"^\* OK \[UIDVALIDITY (\d+)\] UIDs valid$")


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapcond", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def login(srv):
    c = IMAPClient(srv.host, srv.imap_port)
    c.login(BOB, PASSWORDS[BOB])
    return c


def new_box(c, n):
    box = unique("cs")
    c.ok("CREATE %s" % box)
    for _ in range(n):
        m = make_message(unique("m"))
        tag = c.next_tag()
        c.send(("%s APPEND %s {%d+}\r\n" % (tag, box, len(m))).encode() + m + b"\r\n")
        assert c.read_until_tagged(tag)[1].startswith(tag + " OK [APPENDUID ")
    return box


def select(c, line):
    untagged, tagged = c.cmd(line, tag="sel")
    assert tagged.startswith("sel OK ["), (untagged, tagged)
    hms = [int(HMS_RE.match(l).group(1)) for l in untagged if HMS_RE.match(l)]
    uv = [int(UV_RE.match(l).group(1)) for l in untagged if UV_RE.match(l)]
    assert len(hms) == 1 and len(uv) == 1, untagged
    return untagged, uv[0], hms[0]


def test_condstore(srv):
    with login(srv) as c:
        box = new_box(c, 3)
        assert c.cmd("ENABLE CONDSTORE", tag="a1") == (["* ENABLED CONDSTORE"],
                                                       "a1 OK ENABLE completed")
        _, uv, hms = select(c, "SELECT %s" % box)
        untagged, tagged = c.cmd("STORE 1 +FLAGS (\\Seen)", tag="a2")
        m = re.match(r"^\* 1 FETCH \(FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)$", untagged[0])
        assert m and len(untagged) == 1, untagged
        assert tagged == "a2 OK STORE completed"
        ms1 = int(m.group(1))
        assert ms1 > hms
        assert c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms, tag="a3") == (
            ["* 1 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % ms1], "a3 OK FETCH completed")
        assert c.cmd("STATUS %s (HIGHESTMODSEQ)" % box, tag="a4") == (
            ['* STATUS "%s" (HIGHESTMODSEQ %d)' % (box, ms1)], "a4 OK STATUS completed")
        assert c.cmd("STORE 1 (UNCHANGEDSINCE %d) -FLAGS (\\Seen)" % hms, tag="a5") == (
            [], "a5 OK [MODIFIED 1] Conditional STORE failed")
        untagged, tagged = c.cmd("UID STORE 1 (UNCHANGEDSINCE %d) -FLAGS (\\Seen)" % ms1,
                                 tag="a6")
        assert re.match(r"^\* 1 FETCH \(FLAGS \(\) UID 1 MODSEQ \(\d+\)\)$", untagged[0]), untagged
        assert tagged == "a6 OK UID STORE completed"
        c.logout()


def test_select_condstore_parameter(srv):
    with login(srv) as c:
        box = new_box(c, 1)
        _, _, hms = select(c, "SELECT %s (CONDSTORE)" % box)
        untagged, _ = c.cmd("STORE 1 +FLAGS (\\Flagged)", tag="a1")
        assert re.match(r"^\* 1 FETCH \(FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$", untagged[0])
        assert c.cmd("SELECT %s (FOO)" % box, tag="a2")[1] == "a2 BAD Unexpected arguments"
        c.logout()


def test_qresync(srv):
    with login(srv) as a, login(srv) as b:
        box = new_box(a, 4)
        assert a.cmd("SELECT %s (QRESYNC (1 1))" % box, tag="a0") == (
            [], "a0 BAD QRESYNC is not enabled")
        assert a.cmd("ENABLE QRESYNC", tag="a1") == (["* ENABLED QRESYNC"],
                                                     "a1 OK ENABLE completed")
        _, uv, hms = select(a, "SELECT %s" % box)
        a.ok("UNSELECT")
        # another session changes the mailbox meanwhile
        b.ok("SELECT %s" % box)
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        b.ok("STORE 2 +FLAGS.SILENT (\\Seen)")   # UID 3 now
        untagged, tagged = a.cmd("SELECT %s (QRESYNC (%d %d))" % (box, uv, hms), tag="a2")
        assert tagged == "a2 OK [READ-WRITE] SELECT completed"
        assert untagged[-2] == "* VANISHED (EARLIER) 2"
        m = re.match(r"^\* 2 FETCH \(UID 3 FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)$", untagged[-1])
        assert m, untagged
        ms3 = int(m.group(1))
        # known UIDs limit what VANISHED reports
        untagged, _ = a.cmd("SELECT %s (QRESYNC (%d %d 3:4))" % (box, uv, hms), tag="a3")
        assert untagged[0] == "* OK [CLOSED] Previous mailbox closed"
        assert "* VANISHED (EARLIER) 2" not in untagged
        # a different UIDVALIDITY: no resync data
        untagged, _ = a.cmd("SELECT %s (QRESYNC (%d %d))" % (box, uv + 1, hms), tag="a4")
        assert [l for l in untagged if "VANISHED" in l or "FETCH" in l] == []
        assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms, tag="a5") == (
            ["* VANISHED (EARLIER) 2", "* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (%d))" % ms3],
            "a5 OK UID FETCH completed")
        # expunges are reported as VANISHED
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert a.cmd("EXPUNGE", tag="a6") == (["* VANISHED 1"], "a6 OK EXPUNGE completed")
        assert b.cmd("NOOP", tag="b1") == (["* 1 EXPUNGE"], "b1 OK NOOP completed")
        b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")  # UID 3
        b.ok("EXPUNGE")
        assert a.cmd("NOOP", tag="a7") == (["* VANISHED 3"], "a7 OK NOOP completed")
        assert a.cmd("SELECT %s (QRESYNC (0 1))" % box, tag="a8") == (
            [], "a8 BAD Invalid QRESYNC parameters")
        a.logout()
        b.logout()
