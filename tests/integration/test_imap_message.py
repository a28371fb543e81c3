"""IMAP message and mailbox-management commands through the store (docs/imap.md):
CREATE (incl. USE), DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE and LSUB, APPEND and
MULTIAPPEND with APPENDUID, STORE / UID STORE (.SILENT, UNCHANGEDSINCE),
EXPUNGE / UID EXPUNGE, COPY / MOVE with COPYUID, CLOSE; change reporting to a
second session (EXISTS, EXPUNGE, FETCH FLAGS only where RFC 9051 7.5 allows
them) and IDLE woken by an SMTP delivery. Every reply exact; each test works in
mailboxes of its own."""

import imaplib
import re

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, PASSWORDS, IMAPClient, make_message,
                      module_server, unique)

UIDVALIDITY_RE = re.compile(r"^\* OK \[UIDVALIDITY (\d+)\] UIDs valid$")


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapmsg", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def login(srv, user=BOB):
    c = IMAPClient(srv.host, srv.imap_port)
    c.login(user, PASSWORDS[user])
    return c


def append(c, box, data, flags=None, tag=None):
    """APPEND with a non-synchronizing literal; returns (untagged, tagged)."""
    tag = tag or c.next_tag()
    fl = " (%s)" % flags if flags is not None else ""
    c.send(("%s APPEND %s%s {%d+}\r\n" % (tag, box, fl, len(data))).encode() + data + b"\r\n")
    return c.read_until_tagged(tag)


def appenduid(tagged):
    m = re.match(r"^\S+ OK \[APPENDUID (\d+) (\S+)\] APPEND completed$", tagged)
    assert m, tagged
    return int(m.group(1)), m.group(2)


def new_box(c, prefix="box"):
    name = unique(prefix)
    assert c.cmd("CREATE %s" % name, tag="cr") == ([], "cr OK CREATE completed")
    return name


def select(c, box):
    untagged, tagged = c.cmd("SELECT %s" % box, tag="sel")
    assert tagged == "sel OK [READ-WRITE] SELECT completed", (untagged, tagged)
    uv = [int(UIDVALIDITY_RE.match(l).group(1)) for l in untagged if UIDVALIDITY_RE.match(l)]
    return untagged, uv[0]


# --------------------------------------------------------------------------
# CREATE, DELETE, RENAME, SUBSCRIBE


def test_create_delete_rename(srv):
    with login(srv) as c:
        name = unique("cr")
        assert c.cmd("CREATE %s/child" % name, tag="a1") == ([], "a1 OK CREATE completed")
        assert c.cmd('LIST "" "%s*"' % name, tag="a2") == (
            ['* LIST (\\HasChildren) "/" "%s"' % name,
             '* LIST (\\HasNoChildren) "/" "%s/child"' % name], "a2 OK LIST completed")
        assert c.cmd("CREATE %s" % name, tag="a3") == (
            [], "a3 NO [ALREADYEXISTS] Mailbox already exists")
        assert c.cmd("CREATE inbox", tag="a4") == (
            [], "a4 NO [ALREADYEXISTS] Mailbox already exists")
        assert c.cmd("CREATE a//b", tag="a5") == ([], "a5 NO [CANNOT] Invalid mailbox name")
        assert c.cmd("RENAME %s %s-new" % (name, name), tag="a6") == (
            [], "a6 OK RENAME completed")
        assert c.cmd('LIST "" "%s*"' % name, tag="a7") == (
            ['* LIST (\\HasChildren) "/" "%s-new"' % name,
             '* LIST (\\HasNoChildren) "/" "%s-new/child"' % name], "a7 OK LIST completed")
        assert c.cmd("RENAME %s x" % name, tag="a8") == (
            [], "a8 NO [NONEXISTENT] Mailbox does not exist")
        assert c.cmd("RENAME %s-new/child Trash" % name, tag="a9") == (
            [], "a9 NO [ALREADYEXISTS] Mailbox already exists")
        assert c.cmd("DELETE %s-new/child" % name, tag="b1") == ([], "b1 OK DELETE completed")
        assert c.cmd("DELETE %s-new" % name, tag="b2") == ([], "b2 OK DELETE completed")
        assert c.cmd("DELETE %s-new" % name, tag="b3") == (
            [], "b3 NO [NONEXISTENT] Mailbox does not exist")
        assert c.cmd("DELETE INBOX", tag="b4") == ([], "b4 NO [CANNOT] INBOX cannot be deleted")
        c.logout()


def test_create_special_use(srv):
    with login(srv) as c:
        name = unique("su")
        assert c.cmd("CREATE %s (USE (\\Flagged))" % name, tag="a1") == (
            [], "a1 OK CREATE completed")
        assert c.cmd('LIST "" %s' % name, tag="a2") == (
            ['* LIST (\\HasNoChildren \\Flagged) "/" "%s"' % name], "a2 OK LIST completed")
        assert c.cmd("CREATE %s-x (USE (\\Important))" % name, tag="a3") == (
            [], "a3 NO [USEATTR] Unknown special-use attribute")
        assert c.cmd("CREATE %s-y (FOO)" % name, tag="a4") == (
            [], "a4 BAD Expected (USE (attributes))")
        c.logout()


def test_subscribe_and_lsub(srv):
    with login(srv) as c:
        name = new_box(c, "sub")
        assert c.cmd("SUBSCRIBE %s" % name, tag="a1") == ([], "a1 OK SUBSCRIBE completed")
        assert c.cmd('LSUB "" %s' % name, tag="a2") == (
            ['* LSUB () "/" "%s"' % name], "a2 OK LSUB completed")
        assert c.cmd('LIST (SUBSCRIBED) "" %s' % name, tag="a3") == (
            ['* LIST (\\HasNoChildren \\Subscribed) "/" "%s"' % name], "a3 OK LIST completed")
        assert c.cmd('LIST "" %s RETURN (SUBSCRIBED)' % name, tag="a4") == (
            ['* LIST (\\HasNoChildren \\Subscribed) "/" "%s"' % name], "a4 OK LIST completed")
        assert c.cmd("UNSUBSCRIBE %s" % name, tag="a5") == ([], "a5 OK UNSUBSCRIBE completed")
        assert c.cmd('LSUB "" %s' % name, tag="a6") == ([], "a6 OK LSUB completed")
        c.logout()


def test_utf7_and_utf8_names(srv):
    with login(srv) as c:
        assert c.cmd('CREATE "Entw&APw-rfe"', tag="a1") == ([], "a1 OK CREATE completed")
        assert c.cmd('LIST "" "Entw*"', tag="a2") == (
            ['* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"'], "a2 OK LIST completed")
        c.ok("ENABLE UTF8=ACCEPT")
        c.send('a3 LIST "" "Entw*"\r\n'.encode())
        untagged, tagged = c.read_until_tagged("a3")
        assert untagged == ['* LIST (\\HasNoChildren) "/" "Entw\u00fcrfe"']
        assert c.cmd('DELETE "Entw\u00fcrfe"', tag="a4") == ([], "a4 OK DELETE completed")
        c.logout()


# --------------------------------------------------------------------------
# APPEND


def test_append_and_appenduid(srv):
    with login(srv) as c:
        box = new_box(c)
        msg = make_message(unique("ap"))
        untagged, tagged = append(c, box, msg, flags="\\Seen $Forwarded", tag="a1")
        assert untagged == []
        uv, uids = appenduid(tagged)
        assert uids == "1"
        c.send(("a2 APPEND %s \"02-Jan-2025 10:00:00 +0100\" {%d}\r\n" % (box, len(msg)))
               .encode())
        assert c.read_line() == "+ Ready for literal data"
        c.send(msg + b"\r\n")
        _, tagged = c.read_until_tagged("a2")
        assert appenduid(tagged) == (uv, "2")
        # MULTIAPPEND: all or nothing, consecutive UIDs
        c.send(("a3 APPEND %s {%d+}\r\n" % (box, len(msg))).encode() + msg +
               (" (\\Flagged) {%d+}\r\n" % len(msg)).encode() + msg + b"\r\n")
        _, tagged = c.read_until_tagged("a3")
        assert appenduid(tagged) == (uv, "3:4")
        untagged, _ = select(c, box)
        assert untagged[0] == "* 4 EXISTS"
        _, tagged = append(c, "NoSuchBox", msg, tag="a4")
        assert tagged == "a4 NO [TRYCREATE] Mailbox does not exist"
        _, tagged = append(c, box, msg, flags="\\Bogus", tag="a5")
        assert tagged == "a5 BAD Invalid system flag"
        c.send(("a6 APPEND %s \"31-Foo-2025 10:00:00 +0100\" {%d+}\r\n" % (box, len(msg)))
               .encode() + msg + b"\r\n")
        assert c.read_until_tagged("a6") == ([], "a6 BAD Invalid date-time")
        assert c.cmd("NOOP", tag="a7") == ([], "a7 OK NOOP completed")
        c.logout()
    rows = srv.messages(BOB, box)
    assert [r["uid"] for r in rows] == [1, 2, 3, 4]
    assert sorted(rows[0]["flags"]) == ["$Forwarded", "\\Seen"]
    assert rows[2]["flags"] == [] and rows[3]["flags"] == ["\\Flagged"]
    assert srv.show(BOB, box, 1) == msg


def test_append_to_selected_mailbox_reports_exists(srv):
    with login(srv) as c:
        box = new_box(c)
        select(c, box)
        untagged, tagged = append(c, box, make_message(unique("ap")), tag="a1")
        assert untagged == ["* 1 EXISTS"]
        assert tagged.startswith("a1 OK [APPENDUID ")
        c.logout()


def test_imaplib_append(srv):
    m = imaplib.IMAP4(srv.host, srv.imap_port)
    try:
        m.login(BOB, PASSWORDS[BOB])
        box = unique("ia")
        assert m.create(box)[0] == "OK"
        typ, data = m.append(box, "(\\Seen)", None, make_message(unique("ia")))
        assert typ == "OK", data
        assert m.select(box) == ("OK", [b"1"])
    finally:
        m.logout()


# --------------------------------------------------------------------------
# STORE, EXPUNGE, COPY, MOVE


def box_with(c, n):
    box = new_box(c)
    for _ in range(n):
        assert append(c, box, make_message(unique("m")))[1].split()[1] == "OK"
    select(c, box)
    return box


def test_store(srv):
    with login(srv) as c:
        box_with(c, 3)
        assert c.cmd("STORE 1 +FLAGS (\\Seen)", tag="a1") == (
            ["* 1 FETCH (FLAGS (\\Seen))"], "a1 OK STORE completed")
        assert c.cmd("STORE 1:2 +FLAGS.SILENT (\\Flagged)", tag="a2") == (
            [], "a2 OK STORE completed")
        assert c.cmd("UID STORE 2 -FLAGS \\Flagged", tag="a3") == (
            ["* 2 FETCH (FLAGS () UID 2)"], "a3 OK UID STORE completed")
        assert c.cmd("STORE 3 FLAGS ($Label1)", tag="a4") == (
            ["* 3 FETCH (FLAGS ($Label1))"], "a4 OK STORE completed")
        assert c.cmd("STORE 1 +FLAGS (\\Recent)", tag="a5") == (
            [], "a5 BAD Invalid system flag")
        assert c.cmd("STORE 1 +FLAGZ (\\Seen)", tag="a6") == ([], "a6 BAD Unknown data item")
        assert c.cmd("STORE 4 +FLAGS (\\Seen)", tag="a7") == (
            [], "a7 BAD Invalid sequence set: message number out of range")
        assert c.cmd("UID STORE 99 +FLAGS (\\Seen)", tag="a8") == (
            [], "a8 OK UID STORE completed")
        # UNCHANGEDSINCE 1: every message has changed since (RFC 7162 3.1.3)
        assert c.cmd("STORE 2 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)", tag="a9") == (
            [], "a9 OK [MODIFIED 2] Conditional STORE failed")
        assert c.cmd("UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)", tag="b1") == (
            [], "b1 OK [MODIFIED 1:3] Conditional STORE failed")
        c.logout()


def test_store_on_examined_mailbox(srv):
    with login(srv) as c:
        box = box_with(c, 1)
        c.ok("EXAMINE %s" % box)
        assert c.cmd("STORE 1 +FLAGS (\\Seen)", tag="a1") == (
            [], "a1 NO [CANNOT] Mailbox is read-only")
        assert c.cmd("EXPUNGE", tag="a2") == ([], "a2 NO [CANNOT] Mailbox is read-only")
        c.logout()


def test_expunge_and_uid_expunge(srv):
    with login(srv) as c:
        box_with(c, 4)
        c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
        assert c.cmd("UID EXPUNGE 2:3", tag="a1") == (
            ["* 3 EXPUNGE", "* 2 EXPUNGE"], "a1 OK UID EXPUNGE completed")
        assert c.cmd("EXPUNGE", tag="a2") == (
            ["* 2 EXPUNGE", "* 1 EXPUNGE"], "a2 OK EXPUNGE completed")
        assert c.cmd("EXPUNGE x", tag="a3") == ([], "a3 BAD Unexpected arguments")
        c.logout()


def test_copy_and_move(srv):
    with login(srv) as c:
        dst = new_box(c, "dst")
        src = box_with(c, 3)
        untagged, uv = select(c, dst)
        select(c, src)
        assert c.cmd("COPY 1:2 %s" % dst, tag="a1") == (
            [], "a1 OK [COPYUID %d 1:2 1:2] COPY completed" % uv)
        assert c.cmd("UID MOVE 3 %s" % dst, tag="a2") == (
            ["* OK [COPYUID %d 3 3] Moved" % uv, "* 3 EXPUNGE"], "a2 OK UID MOVE completed")
        assert c.cmd("MOVE 1 NoSuch", tag="a3") == (
            [], "a3 NO [TRYCREATE] Mailbox does not exist")
        assert c.cmd("MOVE 1 %s" % src, tag="a4") == (
            [], "a4 NO [CANNOT] Cannot move a message to its own mailbox")
        c.logout()
    assert [r["uid"] for r in srv.messages(BOB, dst)] == [1, 2, 3]
    assert [r["uid"] for r in srv.messages(BOB, src)] == [1, 2]


def test_close_expunges_silently(srv):
    with login(srv) as c:
        box = box_with(c, 2)
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert c.cmd("CLOSE", tag="a1") == ([], "a1 OK CLOSE completed")
        c.logout()
    assert [r["uid"] for r in srv.messages(BOB, box)] == [2]


# --------------------------------------------------------------------------
# changes seen by another session (RFC 9051 7.5)


def test_second_session_sees_exists_flags_expunge(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 2)
        select(b, box)
        untagged, tagged = append(b, box, make_message(unique("x")), tag="b1")
        assert untagged == ["* 3 EXISTS"]
        assert a.cmd("NOOP", tag="a1") == (["* 3 EXISTS"], "a1 OK NOOP completed")
        assert b.cmd("STORE 1 +FLAGS (\\Deleted)", tag="b2") == (
            ["* 1 FETCH (FLAGS (\\Deleted))"], "b2 OK STORE completed")
        assert b.cmd("EXPUNGE", tag="b3") == (["* 1 EXPUNGE"], "b3 OK EXPUNGE completed")
        # no EXPUNGE while responding to STORE (RFC 9051 7.5): a's sequence
        # numbers stay what a was told
        assert a.cmd("STORE 3 +FLAGS (\\Seen)", tag="a2") == (
            ["* 3 FETCH (FLAGS (\\Seen))"], "a2 OK STORE completed")
        assert a.cmd("NOOP", tag="a3") == (["* 1 EXPUNGE"], "a3 OK NOOP completed")
        assert b.cmd("NOOP", tag="b4") == (["* 2 FETCH (FLAGS (\\Seen))"],
                                           "b4 OK NOOP completed")
        a.logout()
        b.logout()


def test_idle_woken_by_smtp_delivery(srv):
    with login(srv, ALICE) as c:
        untagged, _ = select(c, "INBOX")
        n = int(untagged[0].split()[1])
        c.send("a1 IDLE\r\n")
        assert c.read_line() == "+ idling"
        assert DELIVERED_RE.match(srv.deliver([ALICE], make_message(unique("idle"))).line)
        assert c.read_line() == "* %d EXISTS" % (n + 1)
        c.send("DONE\r\n")
        assert c.read_line() == "a1 OK IDLE terminated"
        c.logout()


# --------------------------------------------------------------------------
# a message expunged by another session, not yet reported (RFC 2180 4)


def test_store_expunged_by_other_session(srv):
    gone = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist"
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 3)
        select(b, box)
        b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert b.cmd("EXPUNGE", tag="b1") == (["* 1 EXPUNGE"], "b1 OK EXPUNGE completed")
        # a still numbers three: the two that are left are changed and
        # reported, the gone one is a tagged NO (RFC 2180 4.2, RFC 5530)
        assert a.cmd("STORE 1:3 +FLAGS (\\Flagged)", tag="a1") == (
            ["* 2 FETCH (FLAGS (\\Flagged))", "* 3 FETCH (FLAGS (\\Flagged))"], "a1 " + gone)
        assert a.cmd("STORE 1 +FLAGS (\\Flagged)", tag="a2") == ([], "a2 " + gone)
        # .SILENT ignores it; UID STORE ignores a UID that is gone and reports
        # the expunge after (RFC 9051 6.4.9)
        assert a.cmd("STORE 1:3 -FLAGS.SILENT (\\Flagged)", tag="a3") == (
            [], "a3 OK STORE completed")
        assert a.cmd("UID STORE 1:3 +FLAGS (\\Seen)", tag="a4") == (
            ["* 2 FETCH (FLAGS (\\Seen) UID 2)", "* 3 FETCH (FLAGS (\\Seen) UID 3)",
             "* 1 EXPUNGE"], "a4 OK UID STORE completed")
        # a was told its own changes: nothing again; b sees where they ended
        assert a.cmd("NOOP", tag="a5") == ([], "a5 OK NOOP completed")
        assert b.cmd("NOOP", tag="b2") == (
            ["* 1 FETCH (FLAGS (\\Seen))", "* 2 FETCH (FLAGS (\\Seen))"], "b2 OK NOOP completed")
        # FETCH BODY[] sets \Seen and says so once
        b.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
        untagged, tagged = b.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-NONE)] BODY[TEXT])",
                                 tag="b3")
        assert tagged == "b3 OK FETCH completed", tagged
        assert untagged[-1].endswith(" FLAGS (\\Seen))"), untagged
        assert b.cmd("NOOP", tag="b4") == ([], "b4 OK NOOP completed")
        assert a.cmd("NOOP", tag="a6") == (["* 1 FETCH (FLAGS (\\Seen))"],
                                           "a6 OK NOOP completed")
        a.logout()
        b.logout()


# --------------------------------------------------------------------------
# the selected mailbox deleted, renamed or re-created (RFC 2180 3)

BYE_GONE = "* BYE Selected mailbox was deleted, have to disconnect"


def test_selected_mailbox_deleted(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 2)
        assert b.cmd("DELETE %s" % box, tag="b1") == ([], "b1 OK DELETE completed")
        a.send("a1 NOOP\r\n")
        assert a.read_line() == BYE_GONE
        a.wait_closed()
        b.logout()


def test_selected_mailbox_deleted_while_idle(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 1)
        a.send("a1 IDLE\r\n")
        assert a.read_line() == "+ idling"
        assert b.cmd("DELETE %s" % box, tag="b1") == ([], "b1 OK DELETE completed")
        assert a.read_line() == BYE_GONE
        a.wait_closed()
        b.logout()


def test_selected_mailbox_recreated(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 2)
        assert b.cmd("DELETE %s" % box, tag="b1") == ([], "b1 OK DELETE completed")
        assert b.cmd("CREATE %s" % box, tag="b2") == ([], "b2 OK CREATE completed")
        assert append(b, box, make_message(unique("new")), tag="b3")[1].split()[1] == "OK"
        # a's UID 1 is not the new mailbox's UID 1 (another UIDVALIDITY): even a
        # command that reports no changes ends the session
        a.send("a1 FETCH 1 (UID FLAGS)\r\n")
        assert a.read_line() == BYE_GONE
        a.wait_closed()
        b.logout()


def test_selected_mailbox_renamed(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, 1)
        assert b.cmd("RENAME %s %s-r" % (box, box), tag="b1") == ([], "b1 OK RENAME completed")
        a.send("a1 STORE 1 +FLAGS (\\Seen)\r\n")
        assert a.read_line() == BYE_GONE
        a.wait_closed()
        b.logout()


def test_imaplib_selected_mailbox_deleted(srv):
    a = imaplib.IMAP4(srv.host, srv.imap_port)
    b = imaplib.IMAP4(srv.host, srv.imap_port)
    try:
        a.login(BOB, PASSWORDS[BOB])
        b.login(BOB, PASSWORDS[BOB])
        box = unique("idel")
        assert a.create(box)[0] == "OK"
        assert a.append(box, None, None, make_message(unique("m")))[0] == "OK"
        assert a.select(box) == ("OK", [b"1"])
        assert a.noop() == ("OK", [b"NOOP completed"])
        assert b.delete(box) == ("OK", [b"DELETE completed"])
        with pytest.raises(imaplib.IMAP4.abort, match="Selected mailbox was deleted"):
            a.noop()
        # re-created: the other session selected it, and it goes too
        assert b.create(box)[0] == "OK"
        a2 = imaplib.IMAP4(srv.host, srv.imap_port)
        a2.login(BOB, PASSWORDS[BOB])
        assert a2.select(box) == ("OK", [b"0"])
        assert b.delete(box)[0] == "OK" and b.create(box)[0] == "OK"
        with pytest.raises(imaplib.IMAP4.abort, match="Selected mailbox was deleted"):
            a2.search(None, "ALL")
    finally:
        b.logout()
