"""RFC 5321 4.5.1: every domain takes mail for its postmaster, and the bare
"<postmaster>" (no domain, RFC 5321 4.1.1.3) reaches the postmaster of the
primary domain -- even when no account or alias is called postmaster.

The server has two domains, each with one account and no alias:
example.test (the parent of [server] hostname mx.example.test, so the
primary domain) with alice, and one.test with solo."""

import pytest

from conftest import ALICE, PASSWORDS, DELIVERED_RE, make_message, module_server, unique

SOLO = "solo@one.test"


@pytest.fixture(scope="module")
def pm(hermod_bin):
    gen = module_server(hermod_bin, "postmaster", setup=False)
    srv = next(gen)
    srv.cli("domain", "add", "example.test")
    srv.cli("domain", "add", "one.test")
    srv.cli("user", "add", ALICE, "--password-stdin", input=PASSWORDS[ALICE] + "\n")
    srv.cli("user", "add", SOLO, "--password-stdin", input="solo-secret-3\n")
    assert srv.cli("alias", "list").stdout.strip() == ""
    yield srv
    yield from gen


def _deliver_to(srv, rcpt_arg):
    subject = unique("pm")
    with srv.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        assert c.cmd("RCPT TO:%s" % rcpt_arg).line == "250 2.1.5 Ok"
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    return subject


@pytest.mark.parametrize("rcpt", ["<postmaster>", "<Postmaster>", "<POSTMASTER>"])
def test_bare_postmaster_reaches_primary_domain(pm, rcpt):
    subject = _deliver_to(pm, rcpt)
    pm.fetch_one(ALICE, subject)
    assert pm.find(SOLO, subject) == []
    pm.assert_serves()


@pytest.mark.parametrize("rcpt, account", [
    ("<postmaster@example.test>", ALICE),
    ("<postmaster@one.test>", SOLO),
    ("<PostMaster@ONE.test>", SOLO),
])
def test_postmaster_of_each_local_domain(pm, rcpt, account):
    subject = _deliver_to(pm, rcpt)
    pm.fetch_one(account, subject)
    other = SOLO if account == ALICE else ALICE
    assert pm.find(other, subject) == []
    pm.assert_serves()


def test_other_unknown_users_still_refused(pm):
    with pm.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        assert c.cmd("RCPT TO:<nobody@one.test>").line == "550 5.1.1 User unknown"
        assert c.cmd("RCPT TO:<postmaster@remote.test>").line == \
            "554 5.7.1 Relay access denied"
        # a domain-less address other than postmaster is a syntax error
        assert c.cmd("RCPT TO:<abuse>").line == "501 5.5.4 missing @domain"
        c.rcpt("postmaster@one.test")
        c.quit()
    pm.assert_serves()
