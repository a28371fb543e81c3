"""Inbound SMTP basics: greeting, EHLO, delivery (smtplib, swaks, raw),
recipient resolution (account, alias, catch-all, plus-address), one blob per
multi-recipient message, added trace fields, relay protection, simple
commands. After each error case a fresh client must still be served."""

import signal
import smtplib
import subprocess

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, HOSTNAME, make_message, split_stored,
                      header_value, unique)

EHLO_LINES = [
    "250-" + HOSTNAME,
    "250-PIPELINING",
    "250-SIZE %d" % (40 * 1024 * 1024),
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-DSN",
    "250 CHUNKING",
]


def _session(server):
    c = server.connect()
    c.greet()
    c.ehlo()
    return c


# ---------------------------------------------------------------- greeting/EHLO


def test_greeting(server):
    with server.connect() as c:
        r = c.read_reply()
        assert r.lines == ["220 %s ESMTP hermod" % HOSTNAME]
        c.quit()


def test_ehlo_extensions_exact(server):
    with server.connect() as c:
        c.greet()
        r = c.cmd("EHLO client.remote.test")
        assert r.lines == EHLO_LINES
        # EHLO again is allowed and gives the same answer
        assert c.cmd("EHLO client.remote.test").lines == EHLO_LINES
        c.quit()


def test_helo(server):
    with server.connect() as c:
        c.greet()
        assert c.cmd("HELO client.remote.test").lines == ["250 " + HOSTNAME]
        c.mail()
        c.rcpt(ALICE)
        subject = unique("helo")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    server.fetch_one(ALICE, subject)


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_ehlo_helo_without_domain(server, verb):
    with server.connect() as c:
        c.greet()
        r = c.cmd(verb)
        assert r.line == "501 5.5.4 Syntax: %s hostname" % verb
        # the session goes on
        assert c.cmd("EHLO client.remote.test").lines == EHLO_LINES
        c.quit()
    server.assert_serves()


def test_commands_case_insensitive(server):
    subject = unique("case")
    with server.connect() as c:
        c.greet()
        assert c.cmd("ehlo client.remote.test").code == 250
        assert c.cmd("mail from:<sender@remote.test>").line == "250 2.1.0 Ok"
        assert c.cmd("rcpt to:<alice@EXAMPLE.test>").line == "250 2.1.5 Ok"
        assert c.cmd("data").code == 354
        c.send(make_message(subject) + b".\r\n")
        assert DELIVERED_RE.match(c.read_reply().line)
        c.quit()
    server.fetch_one(ALICE, subject)


# ---------------------------------------------------------------- delivery


def test_deliver_smtplib(server):
    subject = unique("smtplib")
    msg = make_message(subject, b"Hello Alice,\r\n\r\nthis is a test.\r\n", to=ALICE)
    before = server.mailboxes(ALICE)
    with smtplib.SMTP(server.host, server.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        code, _ = s.ehlo()
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                    "enhancedstatuscodes", "chunking"):
            assert s.has_extn(ext), ext
        refused = s.sendmail("sender@remote.test", [ALICE], msg)
        assert refused == {}
    rows = server.find(ALICE, subject)
    assert len(rows) == 1
    row = rows[0]
    assert row["flags"] == []
    raw = server.show(ALICE, "INBOX", row["uid"])
    assert row["size"] == len(raw)
    rp, received, rest = split_stored(raw)
    assert rp == "<sender@remote.test>"
    assert rest == msg
    after = server.mailboxes(ALICE)
    assert after["INBOX"][0] == before["INBOX"][0] + 1


def test_deliver_swaks(server):
    subject = unique("swaks")
    body = "swaks body line 1\nline 2 " + subject
    p = subprocess.run(
        ["swaks", "--server", "%s:%d" % (server.host, server.port),
         "--to", ALICE, "--from", "x@remote.test", "--helo", "client.remote.test",
         "--timeout", "30", "--body", body, "--header", "Subject: " + subject],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "250 2.0.0 Ok: delivered as" in out
    raw = server.fetch_one(ALICE, subject)
    rp, _received, rest = split_stored(raw)
    assert rp == "<x@remote.test>"
    assert header_value(rest, "Subject") == subject
    assert b"swaks body line 1\r\nline 2 " + subject.encode() in rest


def test_deliver_swaks_pipelining(server):
    subject = unique("swakspipe")
    p = subprocess.run(
        ["swaks", "--server", "%s:%d" % (server.host, server.port), "--pipeline",
         "--to", "%s,%s" % (ALICE, BOB), "--from", "x@remote.test",
         "--helo", "client.remote.test", "--timeout", "30",
         "--body", "pipelined", "--header", "Subject: " + subject],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=120)
    assert p.returncode == 0, p.stdout.decode("utf-8", "replace")
    server.fetch_one(ALICE, subject)
    server.fetch_one(BOB, subject)


@pytest.mark.parametrize("rcpt,account", [
    ("info@example.test", ALICE),            # alias
    ("anything@catch.test", BOB),            # catch-all @catch.test
    ("whoever.else@CATCH.test", BOB),        # catch-all, domain case-insensitive
    ("alice+news@example.test", ALICE),      # plus-address
    ("bob+a.b-c@example.test", BOB),         # plus-address
    ("alice@EXAMPLE.TEST", ALICE),           # domain case-insensitive
])
def test_recipient_resolution(server, rcpt, account):
    subject = unique("resolve")
    msg = make_message(subject, b"for " + rcpt.encode() + b"\r\n", to=rcpt)
    reply = server.deliver([rcpt], msg)
    assert DELIVERED_RE.match(reply.line), reply
    raw = server.fetch_one(account, subject)
    assert split_stored(raw)[2] == msg
    other = BOB if account == ALICE else ALICE
    assert server.find(other, subject) == []


def test_alias_added_by_cli_while_running(server):
    src = unique("list") + "@example.test"
    server.cli("alias", "add", src, BOB)
    listing = server.cli("alias", "list").stdout
    assert src in listing
    subject = unique("newalias")
    assert DELIVERED_RE.match(server.deliver([src], make_message(subject, to=src)).line)
    server.fetch_one(BOB, subject)


def test_multi_recipient_stored_once(server):
    subject = unique("multi")
    body = ("one blob for all recipients " + subject + "\r\n").encode() * 50
    msg = make_message(subject, body, to=ALICE)
    blobs_before = server.blob_count()
    reply = server.deliver([ALICE, BOB], msg)
    assert DELIVERED_RE.match(reply.line), reply
    raw_a = server.fetch_one(ALICE, subject)
    raw_b = server.fetch_one(BOB, subject)
    assert raw_a == raw_b
    assert split_stored(raw_a)[2] == msg
    assert server.blob_count() == blobs_before + 1


def test_trace_fields(server):
    subject = unique("trace")
    msg = make_message(subject)
    with server.connect() as c:
        c.greet()
        c.ehlo("client.remote.test")
        c.mail("trace-sender@remote.test")
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    raw = server.fetch_one(ALICE, subject)
    rp, received, rest = split_stored(raw)
    assert rp == "<trace-sender@remote.test>"
    assert rest == msg
    # RFC 5321 4.4: from <EHLO name> (TCP info) by <our host> ...; <date>
    rec = received.decode("latin-1")
    assert "client.remote.test" in rec, rec
    assert "127.0.0.1" in rec, rec
    assert "by " + HOSTNAME in rec, rec
    assert ";" in rec, rec
    # exactly one Return-Path in the stored message
    assert raw.count(b"Return-Path:") == 1


def test_null_sender(server):
    subject = unique("nullsender")
    msg = make_message(subject, sender="MAILER-DAEMON@remote.test")
    with server.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").line == "250 2.1.0 Ok"
        c.rcpt(ALICE)
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    rp, _, rest = split_stored(server.fetch_one(ALICE, subject))
    assert rp == "<>"
    assert rest == msg


def test_several_transactions_one_connection(server):
    subjects = [unique("seq") for _ in range(3)]
    with server.connect() as c:
        c.greet()
        c.ehlo()
        for s in subjects:
            c.mail()
            c.rcpt(ALICE)
            assert DELIVERED_RE.match(c.data(make_message(s)).line)
        c.quit()
    for s in subjects:
        server.fetch_one(ALICE, s)


def test_smtputf8(server):
    subject = unique("utf8")
    with server.connect() as c:
        c.greet()
        c.ehlo()
        r = c.cmd("MAIL FROM:<j\u00f6rg@remote.test>")
        assert r.line == "553 5.6.7 SMTPUTF8 required for this address", r
        r = c.cmd("MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8")
        assert r.line == "250 2.1.0 Ok", r
        c.rcpt(ALICE)
        msg = make_message(subject, "Gr\u00fc\u00dfe\r\n".encode(),
                           sender="j\u00f6rg@remote.test")
        assert DELIVERED_RE.match(c.data(msg).line)
        c.quit()
    rp, _, rest = split_stored(server.fetch_one(ALICE, subject))
    assert rp == "<j\u00f6rg@remote.test>"
    assert rest == msg


# ---------------------------------------------------------------- rejections


RELAY_DENIED = "554 5.7.1 Relay access denied"
USER_UNKNOWN = "550 5.1.1 User unknown"


@pytest.mark.parametrize("rcpt_path,expected", [
    ("<user@other.test>", RELAY_DENIED),
    ("<USER@OTHER.TEST>", RELAY_DENIED),
    ("<user@sub.example.test>", RELAY_DENIED),         # subdomain is not ours
    ("<user%other.test@example.test>", RELAY_DENIED),  # percent hack
    ("<other.test!user@example.test>", RELAY_DENIED),  # bang path
    ("<@example.test:user@other.test>", RELAY_DENIED),  # source route: real rcpt user@other.test
    ("<@example.test,@mx.example.test:user@other.test>", RELAY_DENIED),
    # quoted local part holding an address: sender-specified routing, refused
    ('<"user@other.test"@example.test>', RELAY_DENIED),
    # trailing dot: not a valid RFC 5321 Domain: a syntax error, before any
    # relay decision
    ("<user@other.test.>", "501 5.5.4 invalid domain"),
    ("<user@[127.0.0.1]>", RELAY_DENIED),               # address literal
])
def test_relay_denied(server, rcpt_path, expected):
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail("someone@remote.test")
        r = c.cmd("RCPT TO:" + rcpt_path)
        assert r.line == expected, (rcpt_path, r)
        # nothing was accepted as a recipient
        assert c.cmd("DATA").line == "503 5.5.1 Need RCPT first"
        c.quit()
    server.assert_serves()


def test_relay_denied_local_sender(server):
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<user@other.test>").line == RELAY_DENIED
        # a good recipient in the same transaction still works, and only it
        # receives the message
        c.rcpt(BOB)
        subject = unique("mixed")
        assert DELIVERED_RE.match(c.data(make_message(subject, sender=ALICE)).line)
        c.quit()
    server.fetch_one(BOB, subject)
    assert server.find(ALICE, subject) == []
    server.assert_serves()


def test_relay_denied_null_sender(server):
    with server.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").line == "250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<user@other.test>").line == RELAY_DENIED
        c.quit()
    server.assert_serves()


@pytest.mark.parametrize("rcpt", ["nobody@example.test", "nobody+tag@example.test",
                                  "alice.smith@example.test"])
def test_unknown_user(server, rcpt):
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail()
        assert c.cmd("RCPT TO:<%s>" % rcpt).line == USER_UNKNOWN
        c.quit()
    server.assert_serves()


# ---------------------------------------------------------------- simple commands


def test_vrfy(server):
    with _session(server) as c:
        assert c.cmd("VRFY alice").line == \
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
        assert c.cmd("VRFY <nobody@example.test>").line == \
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
        c.quit()
    server.assert_serves()


def test_help(server):
    with _session(server) as c:
        assert c.cmd("HELP").line == ("214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL "
                                      "RCPT DATA BDAT RSET NOOP QUIT HELP VRFY")
        c.quit()
    server.assert_serves()


@pytest.mark.parametrize("line", ["EXPN staff", "STARTTLS", "AUTH PLAIN"])
def test_not_implemented(server, line):
    with _session(server) as c:
        assert c.cmd(line).line == "502 5.5.1 Command not implemented"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    server.assert_serves()


def test_noop_rset(server):
    with _session(server) as c:
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        assert c.cmd("RSET").line == "250 2.0.0 Ok"
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        # RSET aborts the transaction
        assert c.cmd("RSET").line == "250 2.0.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL first"
        assert c.cmd("DATA").code == 503
        # a new transaction works after RSET
        c.mail()
        c.rcpt(ALICE)
        subject = unique("afterrset")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    server.fetch_one(ALICE, subject)
    server.assert_serves()


def test_quit(server):
    with _session(server) as c:
        c.send("QUIT\r\n")
        assert c.read_reply().lines == ["221 2.0.0 Bye"]
        assert c.wait_closed() == b""
    server.assert_serves()


def test_client_disconnects_mid_data(server):
    subject = unique("aborted")
    with _session(server) as c:
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(make_message(subject, b"never finished\r\n"))
    # no terminator: nothing may be stored
    server.assert_serves()
    assert server.find(ALICE, subject) == []


# ---------------------------------------------------------------- CLI views


def test_new_account_mailboxes(server):
    boxes = server.mailboxes(BOB)
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert name in boxes, boxes


# ---------------------------------------------------------------- shutdown


def test_sigterm_closes_sessions(make_server):
    srv = make_server()
    c = srv.connect()
    c.greet()
    c.ehlo()
    srv.proc.send_signal(signal.SIGTERM)
    r = c.read_reply()
    assert r.line == "421 4.3.2 Shutting down"
    c.wait_closed()
    c.close()
    srv.proc.wait(timeout=30)
    rc = srv.stop()
    assert rc == 0, srv.stderr_tail()
    # it starts again on the same data dir and port
    srv.start()
    srv.assert_serves()


# ---------------------------------------------------------------- DSN (RFC 3461)


def test_dsn_parameters_after_ehlo(server):
    """EHLO advertises DSN: its parameters are accepted (and kept)."""
    subject = unique("dsn")
    with server.connect() as c:
        c.greet()
        c.ehlo()
        c.mail(params="RET=HDRS ENVID=QQ+2B314159")
        assert c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40example.test"
                     % ALICE).line == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % BOB).line == "250 2.1.5 Ok"
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    server.fetch_one(ALICE, subject)
    server.fetch_one(BOB, subject)


@pytest.mark.parametrize("cmd", [
    "MAIL FROM:<sender@remote.test> RET=FULL",
    "MAIL FROM:<sender@remote.test> ENVID=x",
])
def test_dsn_mail_parameters_after_helo(server, cmd):
    """After HELO no extension was advertised: RFC 5321 4.1.1.11 555."""
    with server.connect() as c:
        c.greet()
        assert c.cmd("HELO client.remote.test").code == 250
        assert c.cmd(cmd).line == "555 5.5.4 unsupported parameter"
        c.mail()
        c.quit()
    server.assert_serves()


@pytest.mark.parametrize("param", ["NOTIFY=NEVER", "ORCPT=rfc822;alice+40example.test"])
def test_dsn_rcpt_parameters_after_helo(server, param):
    with server.connect() as c:
        c.greet()
        assert c.cmd("HELO client.remote.test").code == 250
        c.mail()
        assert c.cmd("RCPT TO:<%s> %s" % (ALICE, param)).line == \
            "555 5.5.4 unsupported parameter"
        c.rcpt(ALICE)
        c.quit()
    server.assert_serves()
