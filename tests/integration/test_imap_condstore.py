"""CONDSTORE and QRESYNC (RFC 7162) in the IMAP session (docs/imap.md): ENABLE,
HIGHESTMODSEQ in SELECT and STATUS, MODSEQ in the FETCH responses of STORE,
CHANGEDSINCE, SELECT (QRESYNC ...) with VANISHED (EARLIER) and the changed
messages, VANISHED in place of EXPUNGE, UID FETCH (CHANGEDSINCE n VANISHED).
MODSEQ values are read from the server's answers, then every later reply is
checked exactly against them."""

import os
import re
import sqlite3

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


def age_expunge_log(srv, box):
    """Makes the expunge log entries of BOB's mailbox box older than the
    pruning age; the next store_open (any CLI command) prunes them."""
    db = sqlite3.connect(os.path.join(srv.data_dir, "hermod.db"), timeout=10)
    try:
        with db:
            n = db.execute(
                "UPDATE expunged SET time = 0 WHERE mailbox = (SELECT m.id FROM mailboxes m"
                " JOIN accounts a ON a.id = m.account WHERE a.address = ? AND m.name = ?)",
                (BOB, box)).rowcount
    finally:
        db.close()
    assert n > 0


def expunge_uid(c, uid):
    c.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
    c.ok("UID EXPUNGE %d" % uid)


def status_hms(c, box):
    untagged, tagged = c.cmd("STATUS %s (HIGHESTMODSEQ)" % box)
    m = re.match(r'^\* STATUS "[^"]+" \(HIGHESTMODSEQ (\d+)\)$', untagged[-1])
    assert m and tagged.endswith(" OK STATUS completed"), (untagged, tagged)
    return int(m.group(1))


def qresync_lines(c, box, params, tag):
    """The QRESYNC part of a SELECT's responses: VANISHED and FETCH lines."""
    untagged, tagged = c.cmd("SELECT %s (QRESYNC (%s))" % (box, params), tag=tag)
    assert tagged == "%s OK [READ-WRITE] SELECT completed" % tag, (untagged, tagged)
    return [l for l in untagged if l.startswith("* VANISHED") or " FETCH " in l]


def test_qresync_after_prune(srv):
    """RFC 7162 3.2.5.2 / 3.2.6 once the expunge log no longer reaches back to
    the client's MODSEQ: VANISHED (EARLIER) names every UID the mailbox no
    longer has (narrowed by known-uids and the sequence match data); before
    the prune, exactly the UIDs expunged since. A session selected across the
    prune still learns of every expunge."""
    with login(srv) as a, login(srv) as b, login(srv) as c:
        box = new_box(a, 6)
        assert a.cmd("ENABLE QRESYNC", tag="a1") == (["* ENABLED QRESYNC"],
                                                     "a1 OK ENABLE completed")
        _, uv, _ = select(a, "SELECT %s" % box)
        expunge_uid(a, 1)
        a.ok("UNSELECT")
        hms0 = status_hms(a, box)              # the client knows UIDs 2..6
        c.ok("SELECT %s" % box)                 # stays selected, view of 2..6
        b.ok("SELECT %s" % box)
        expunge_uid(b, 4)
        hms1 = status_hms(b, box)
        expunge_uid(b, 6)
        hms2 = status_hms(b, box)
        assert hms0 < hms1 < hms2

        # the log covers hms0: exactly what went since
        assert qresync_lines(a, box, "%d %d" % (uv, hms0), "a2") == ["* VANISHED (EARLIER) 4,6"]
        assert qresync_lines(a, box, "%d %d" % (uv, hms1), "a3") == ["* VANISHED (EARLIER) 6"]
        assert qresync_lines(a, box, "%d %d 1:6" % (uv, hms0), "a4") == [
            "* VANISHED (EARLIER) 4,6"]
        assert a.cmd("UID FETCH 1:10 (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms0, tag="a5") == (
            ["* VANISHED (EARLIER) 4,6"], "a5 OK UID FETCH completed")
        # "*" is the last UID there is (5): 6 is not in 1:*
        assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms0, tag="a6") == (
            ["* VANISHED (EARLIER) 4"], "a6 OK UID FETCH completed")

        age_expunge_log(srv, box)
        srv.mailboxes(BOB)                      # a CLI command: store_open prunes

        # below the floor (hms2): every UID without a message, 1 included
        assert qresync_lines(a, box, "%d %d" % (uv, hms0), "a0") == [
            "* VANISHED (EARLIER) 1,4,6"]
        assert qresync_lines(a, box, "%d %d" % (uv, hms1), "a7") == [
            "* VANISHED (EARLIER) 1,4,6"]
        # known-uids narrow it
        assert qresync_lines(a, box, "%d %d 2:6" % (uv, hms0), "a8") == [
            "* VANISHED (EARLIER) 4,6"]
        assert qresync_lines(a, box, "%d %d 5:9" % (uv, hms0), "a9") == [
            "* VANISHED (EARLIER) 6"]
        # sequence match data: messages 1 and 2 still have UIDs 2 and 3, so none
        # of the client's messages up to UID 3 went
        assert qresync_lines(a, box, "%d %d 1:6 (1:2 2:3)" % (uv, hms0), "b1") == [
            "* VANISHED (EARLIER) 4,6"]
        # a pair that no longer matches (message 3 is UID 5 now) proves nothing
        assert qresync_lines(a, box, "%d %d 1:6 (3 4)" % (uv, hms0), "b2") == [
            "* VANISHED (EARLIER) 1,4,6"]
        # at the floor the log is complete again: nothing went since hms2
        assert qresync_lines(a, box, "%d %d" % (uv, hms2), "b3") == []
        assert a.cmd("UID FETCH 1:10 (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms0, tag="b4") == (
            ["* VANISHED (EARLIER) 1,4,6"], "b4 OK UID FETCH completed")
        assert a.cmd("UID FETCH 3:5 (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms0, tag="b5") == (
            ["* VANISHED (EARLIER) 4"], "b5 OK UID FETCH completed")
        assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms2, tag="b6") == (
            [], "b6 OK UID FETCH completed")
        # the session selected since before the expunges (its view at hms0)
        assert c.cmd("NOOP", tag="c1") == (["* 3 EXPUNGE", "* 4 EXPUNGE"],
                                           "c1 OK NOOP completed")
        assert c.cmd("UID FETCH 1:* (UID)", tag="c2") == (
            ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 5)"],
            "c2 OK UID FETCH completed")
        # a new expunge after the prune is logged as before
        expunge_uid(b, 3)
        assert qresync_lines(a, box, "%d %d" % (uv, hms2), "b7") == ["* VANISHED (EARLIER) 3"]
        a.logout()
        b.logout()
        c.logout()
