"""SEARCH in the IMAP session (docs/imap.md): SEARCH / UID SEARCH against the
session's view, ESEARCH for RETURN and for IMAP4rev2 clients, SEARCHRES "$",
bad input, and no EXPUNGE while answering SEARCH (RFC 9051 7.5). The search
keys themselves are tested with the module (tests/unit/test_imap_search.c)."""

import pytest

from conftest import BOB, PASSWORDS, IMAPClient, make_message, module_server, unique
from test_imap_fetch import append, box_with, login


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapsearch", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def test_search_esearch_searchres(srv):
    with login(srv) as c:
        box_with(c, [make_message(unique("q")) for _ in range(4)])
        c.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
        assert c.cmd("SEARCH FLAGGED", tag="a1") == (["* SEARCH 2 4"], "a1 OK SEARCH completed")
        assert c.cmd("UID SEARCH UNFLAGGED", tag="a2") == (
            ["* SEARCH 1 3"], "a2 OK UID SEARCH completed")
        assert c.cmd("SEARCH RETURN (MIN MAX COUNT) FLAGGED", tag="a3") == (
            ['* ESEARCH (TAG "a3") MIN 2 MAX 4 COUNT 2'], "a3 OK SEARCH completed")
        assert c.cmd("SEARCH RETURN (SAVE) FLAGGED", tag="a4") == ([], "a4 OK SEARCH completed")
        assert c.cmd("FETCH $ (UID)", tag="a5") == (
            ["* 2 FETCH (UID 2)", "* 4 FETCH (UID 4)"], "a5 OK FETCH completed")
        assert c.cmd("SEARCH BOGUS", tag="a6") == ([], "a6 BAD Unknown search key")
        assert c.cmd("SEARCH CHARSET KOI8-R ALL", tag="a7") == (
            [], "a7 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset")
        c.ok("UNSELECT")
        c.ok("ENABLE IMAP4rev2")
        c.ok("SELECT INBOX")
        untagged, tagged = c.cmd("SEARCH ALL", tag="a8")
        assert len(untagged) == 1 and untagged[0].startswith('* ESEARCH (TAG "a8")'), untagged
        assert tagged == "a8 OK SEARCH completed"
        c.logout()


def test_no_expunge_during_search(srv):
    with login(srv) as a, login(srv) as b:
        box = box_with(a, [make_message(unique("e")) for _ in range(3)])
        b.ok("SELECT %s" % box)
        b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert b.cmd("EXPUNGE", tag="b1") == (["* 1 EXPUNGE"], "b1 OK EXPUNGE completed")
        # a still numbers three messages; the one expunged meanwhile matches
        # nothing (RFC 2180 4.3), the others keep their numbers
        assert a.cmd("SEARCH ALL", tag="a1") == (["* SEARCH 2 3"], "a1 OK SEARCH completed")
        assert a.cmd("SEARCH 1", tag="a4") == (["* SEARCH"], "a4 OK SEARCH completed")
        assert a.cmd("SEARCH 3", tag="a5") == (["* SEARCH 3"], "a5 OK SEARCH completed")
        assert a.cmd("UID SEARCH ALL", tag="a2") == (
            ["* SEARCH 2 3", "* 1 EXPUNGE"], "a2 OK UID SEARCH completed")
        assert a.cmd("SEARCH ALL", tag="a3") == (["* SEARCH 1 2"], "a3 OK SEARCH completed")
        a.logout()
        b.logout()
