"""IMAP mailbox commands (docs/imap.md): LIST in its RFC 3501, RFC 5258
LIST-EXTENDED, RFC 6154 SPECIAL-USE and RFC 5819 LIST-STATUS forms, STATUS
(incl. SIZE and DELETED), SELECT / EXAMINE responses for rev1 and IMAP4rev2
clients, UNSELECT, CLOSE, and their bad-input replies; every reply exact."""

import re

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, PASSWORDS, IMAPClient, make_message,
                      module_server, unique)

DEFAULT_LIST = [
    '* LIST (\\HasNoChildren) "/" "INBOX"',
    '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
    '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
    '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
    '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
    '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
]
PERMANENT = ("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
             "Flags permitted")
FLAGS = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
HMS_RE = re.compile(r"^\* OK \[HIGHESTMODSEQ \d+\] Highest$")


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapmbox", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def login(srv, user=BOB):
    c = IMAPClient(srv.host, srv.imap_port)
    c.login(user, PASSWORDS[user])
    return c


def test_list_default_mailboxes(srv):
    with login(srv) as c:
        assert c.cmd('LIST "" "*"', tag="a1") == (DEFAULT_LIST, "a1 OK LIST completed")
        assert c.cmd('LIST "" %', tag="a2") == (DEFAULT_LIST, "a2 OK LIST completed")
        assert c.cmd('LIST "" inbox', tag="a3") == (DEFAULT_LIST[:1], "a3 OK LIST completed")
        assert c.cmd('LIST "" "T*"', tag="a4") == ([DEFAULT_LIST[3]], "a4 OK LIST completed")
        assert c.cmd('LIST "" ""', tag="a5") == (['* LIST (\\Noselect) "/" ""'],
                                                "a5 OK LIST completed")
        assert c.cmd('LIST "" nothing*', tag="a6") == ([], "a6 OK LIST completed")
        c.logout()


def test_list_extended_and_special_use(srv):
    with login(srv) as c:
        untagged, tagged = c.cmd('LIST (SPECIAL-USE) "" "*"', tag="a1")
        assert untagged == DEFAULT_LIST[1:]
        assert tagged == "a1 OK LIST completed"
        untagged, tagged = c.cmd('LIST "" ("INBOX" "Sent") RETURN (SPECIAL-USE CHILDREN)',
                                 tag="a2")
        assert untagged == DEFAULT_LIST[:2]
        assert c.cmd('LIST (FOO) "" "*"', tag="a3") == ([], "a3 BAD Unknown selection option")
        assert c.cmd('LIST "" "*" RETURN (FOO)', tag="a4") == (
            [], "a4 BAD Unknown return option")
        assert c.cmd('LIST (RECURSIVEMATCH) "" "*"', tag="a5") == (
            [], "a5 BAD RECURSIVEMATCH without SUBSCRIBED")
        assert c.cmd('LIST "" "*" EXTRA', tag="a6") == ([], "a6 BAD Unexpected arguments")
        c.logout()


def test_list_status(srv):
    subject = unique("liststatus")
    assert DELIVERED_RE.match(srv.deliver([BOB], make_message(subject)).line)
    rows = srv.messages(BOB)
    size = sum(r["size"] for r in rows)
    with login(srv) as c:
        untagged, tagged = c.cmd('LIST "" "INBOX" RETURN (STATUS (MESSAGES SIZE UNSEEN))',
                                 tag="a1")
        assert untagged == [DEFAULT_LIST[0],
                            '* STATUS "INBOX" (MESSAGES %d SIZE %d UNSEEN %d)'
                            % (len(rows), size, len(rows))]
        assert tagged == "a1 OK LIST completed"
        c.logout()


def test_status(srv):
    subject = unique("status")
    assert DELIVERED_RE.match(srv.deliver([BOB], make_message(subject)).line)
    rows = srv.messages(BOB)
    with login(srv) as c:
        untagged, tagged = c.cmd("STATUS inbox (MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT)",
                                 tag="a1")
        assert untagged == ['* STATUS "INBOX" (MESSAGES %d UIDNEXT %d UNSEEN %d DELETED 0 '
                            'SIZE %d RECENT 0)' % (len(rows), rows[-1]["uid"] + 1, len(rows),
                                                   sum(r["size"] for r in rows))]
        assert tagged == "a1 OK STATUS completed"
        untagged, tagged = c.cmd("STATUS Trash (MESSAGES UIDVALIDITY)", tag="a2")
        assert len(untagged) == 1 and untagged[0].startswith(
            '* STATUS "Trash" (MESSAGES 0 UIDVALIDITY '), untagged
        assert c.cmd("STATUS Nope (MESSAGES)", tag="a3") == (
            [], "a3 NO [NONEXISTENT] Mailbox does not exist")
        assert c.cmd("STATUS INBOX ()", tag="a4") == (
            [], "a4 BAD Expected a list of status items")
        c.logout()


def test_select_and_examine(srv):
    subject = unique("select")
    assert DELIVERED_RE.match(srv.deliver([ALICE], make_message(subject)).line)
    rows = srv.messages(ALICE)
    n = len(rows)
    with login(srv, ALICE) as c:
        untagged, tagged = c.cmd("SELECT INBOX", tag="a1")
        assert untagged[0] == "* %d EXISTS" % n
        assert untagged[1] == "* 0 RECENT"
        assert untagged[2] == "* OK [UNSEEN 1] First unseen"
        assert untagged[3].startswith("* OK [UIDVALIDITY ")
        assert untagged[4] == "* OK [UIDNEXT %d] Predicted next UID" % (rows[-1]["uid"] + 1)
        assert untagged[5:7] == [FLAGS, PERMANENT]
        assert HMS_RE.match(untagged[7]) and len(untagged) == 8, untagged
        assert tagged == "a1 OK [READ-WRITE] SELECT completed"
        uidvalidity, hms = untagged[3], untagged[7]
        untagged, tagged = c.cmd("EXAMINE INBOX", tag="a2")
        assert untagged == ["* OK [CLOSED] Previous mailbox closed", "* %d EXISTS" % n,
                            "* 0 RECENT", "* OK [UNSEEN 1] First unseen", uidvalidity,
                            "* OK [UIDNEXT %d] Predicted next UID" % (rows[-1]["uid"] + 1),
                            FLAGS, "* OK [PERMANENTFLAGS ()] Read-only mailbox", hms]
        assert tagged == "a2 OK [READ-ONLY] EXAMINE completed"
        assert c.cmd("UNSELECT", tag="a3") == ([], "a3 OK UNSELECT completed")
        assert c.cmd("UNSELECT", tag="a4") == ([], "a4 BAD No mailbox selected")
        # IMAP4rev2: no RECENT / UNSEEN, and the LIST response (RFC 9051 6.3.2)
        c.ok("ENABLE IMAP4rev2")
        untagged, tagged = c.cmd("SELECT Trash", tag="a5")
        assert untagged[0] == "* 0 EXISTS"
        assert untagged[1].startswith("* OK [UIDVALIDITY ")
        assert untagged[2:5] == ["* OK [UIDNEXT 1] Predicted next UID", FLAGS, PERMANENT]
        assert HMS_RE.match(untagged[5]), untagged
        assert untagged[6:] == ['* LIST () "/" "Trash"']
        assert tagged == "a5 OK [READ-WRITE] SELECT completed"
        untagged, tagged = c.cmd("SELECT Nope", tag="a6")
        assert untagged == ["* OK [CLOSED] Previous mailbox closed"]
        assert tagged == "a6 NO [NONEXISTENT] Mailbox does not exist"
        # the failed SELECT left no mailbox selected
        assert c.cmd("CLOSE", tag="a7") == ([], "a7 BAD No mailbox selected")
        c.ok("EXAMINE INBOX")
        assert c.cmd("CLOSE", tag="a8") == ([], "a8 OK CLOSE completed")
        assert c.cmd("SELECT INBOX extra", tag="a9") == ([], "a9 BAD Unexpected arguments")
        c.logout()


def test_mailbox_name_encoding(srv):
    with login(srv) as c:
        # invalid modified UTF-7 (an unterminated shift) from a rev1 client
        assert c.cmd("STATUS &AOQ (MESSAGES)", tag="a1") == (
            [], "a1 BAD Invalid modified UTF-7 in the mailbox name")
        c.logout()
