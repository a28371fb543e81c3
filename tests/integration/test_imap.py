"""IMAP sessions (issue 8, docs/imap.md): greeting, CAPABILITY before and after
TLS and login, LOGIN and AUTHENTICATE (SASL-IR, continuation, cancel),
STARTTLS and imaps, ENABLE, ID, NAMESPACE, NOOP, LOGOUT, IDLE's framing, and
bad input (unknown commands, missing arguments, wrong states, invalid tags and
sequence sets, overlong lines and literals, the error limit): each reply exact,
and the session or the next client served afterwards. Raw sockets for exact
wire checks, imaplib for a real client."""

import imaplib
import zlib
import shutil
import subprocess

import pytest

from conftest import ALICE, BOB, PASSWORDS, IMAPClient, module_server, plain_response

COMMON = ("LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT UIDPLUS MOVE MULTIAPPEND "
          "APPENDLIMIT=41943040 CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED "
          "LIST-STATUS STATUS=SIZE UTF8=ACCEPT BINARY ESEARCH SEARCHRES CONDSTORE QRESYNC")
# before login over TLS (or on loopback with the exception): the default mechanisms
PRE_TLS_CAPS = ("IMAP4rev2 IMAP4rev1 AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN SASL-IR " + COMMON)
PRE_PLAIN_CAPS = ("IMAP4rev2 IMAP4rev1 STARTTLS AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN "
                  "SASL-IR " + COMMON)
PRE_NOPLAIN_CAPS = ("IMAP4rev2 IMAP4rev1 STARTTLS LOGINDISABLED AUTH=SCRAM-SHA-256 SASL-IR "
                    + COMMON)
POST_CAPS = "IMAP4rev2 IMAP4rev1 COMPRESS=DEFLATE " + COMMON
AUTH_FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed"


@pytest.fixture(scope="module")
def imap(hermod_bin, tls_cert):
    """TLS server with imap (STARTTLS) and imaps; plaintext login allowed on
    loopback (the test-access exception of [auth])."""
    yield from module_server(hermod_bin, "imap", tls=tls_cert, imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes",
                                             "max_failures": "1000",
                                             "account_max_failures": "1000"}})


@pytest.fixture(scope="module")
def strict(hermod_bin, tls_cert):
    """No loopback exception: passwords only inside TLS."""
    yield from module_server(hermod_bin, "imapstrict", tls=tls_cert, imap=True,
                             extra={"auth": {"max_failures": "1000",
                                             "account_max_failures": "1000"}})


def client(srv, **kw):
    return IMAPClient(srv.host, srv.imap_port, **kw)


def logged_in(srv, user=ALICE):
    c = client(srv)
    c.login(user, PASSWORDS[user])
    return c


# --------------------------------------------------------------------------
# greeting, CAPABILITY, STARTTLS, imaps


def test_greeting_and_capability_before_login(imap):
    with client(imap) as c:
        assert c.greeting == "* OK [CAPABILITY %s] hermod IMAP server ready" % PRE_PLAIN_CAPS
        untagged, tagged = c.cmd("CAPABILITY", tag="a1")
        assert untagged == ["* CAPABILITY " + PRE_PLAIN_CAPS]
        assert tagged == "a1 OK CAPABILITY completed"
        c.logout()


def test_capability_without_plaintext_exception(strict, tls_cert):
    with client(strict) as c:
        assert c.greeting == "* OK [CAPABILITY %s] hermod IMAP server ready" % PRE_NOPLAIN_CAPS
        _, tagged = c.cmd('LOGIN "%s" "%s"' % (ALICE, PASSWORDS[ALICE]), tag="a1")
        assert tagged == ("a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed "
                          "without TLS")
        _, tagged = c.cmd("AUTHENTICATE PLAIN " + (plain_response(ALICE, PASSWORDS[ALICE])),
                          tag="a2")
        assert tagged == ("a2 NO [PRIVACYREQUIRED] Plaintext authentication disallowed "
                          "without TLS")
        c.starttls(tls_cert.context())
        untagged, tagged = c.cmd("CAPABILITY", tag="a3")
        assert untagged == ["* CAPABILITY " + PRE_TLS_CAPS]
        tagged = c.login(ALICE, PASSWORDS[ALICE])
        assert tagged == "t2 OK [CAPABILITY %s] Logged in" % POST_CAPS
        c.logout()


def test_starttls_twice_and_after_login(imap, tls_cert):
    with client(imap) as c:
        c.starttls(tls_cert.context())
        _, tagged = c.cmd("STARTTLS", tag="a1")
        assert tagged == "a1 BAD TLS is already active"
        c.login(ALICE, PASSWORDS[ALICE])
        _, tagged = c.cmd("STARTTLS", tag="a2")
        assert tagged == "a2 BAD Command not valid in this state"
        c.logout()


def test_starttls_discards_injected_commands(imap, tls_cert):
    """RFC 9051 6.2.1: what follows STARTTLS in the same packet is dropped."""
    with client(imap) as c:
        c.send("a1 STARTTLS\r\na2 CAPABILITY\r\n")
        assert c.read_line() == "a1 OK Begin TLS negotiation now"
        assert c.tls(tls_cert.context()) == b""
        untagged, tagged = c.cmd("NOOP", tag="a3")
        assert (untagged, tagged) == ([], "a3 OK NOOP completed")


def test_imaps_implicit_tls(imap, tls_cert):
    with IMAPClient(imap.host, imap.imaps_port, tls_context=tls_cert.context()) as c:
        assert c.greeting == "* OK [CAPABILITY %s] hermod IMAP server ready" % PRE_TLS_CAPS
        c.login(BOB, PASSWORDS[BOB])
        c.logout()


def test_imaplib_over_imaps(imap, tls_cert):
    ctx = tls_cert.context()
    ctx.check_hostname = False  # the certificate names mx.example.test, not 127.0.0.1
    m = imaplib.IMAP4_SSL(imap.host, imap.imaps_port, ssl_context=ctx)
    try:
        assert m.login(ALICE, PASSWORDS[ALICE])[0] == "OK"
        typ, data = m.list()
        assert typ == "OK"
        assert b'(\\HasNoChildren) "/" "INBOX"' in data
        assert m.select("INBOX")[0] == "OK"
        assert m.noop()[0] == "OK"
    finally:
        m.logout()


# --------------------------------------------------------------------------
# LOGIN and AUTHENTICATE


def test_login_ok_and_wrong_password(imap):
    with client(imap) as c:
        _, tagged = c.cmd('LOGIN "%s" "wrong"' % ALICE, tag="a1")
        assert tagged == "a1 " + AUTH_FAILED
        _, tagged = c.cmd("LOGIN nobody@example.test x", tag="a2")
        assert tagged == "a2 " + AUTH_FAILED
        _, tagged = c.cmd('LOGIN "%s" "%s"' % (ALICE, PASSWORDS[ALICE]), tag="a3")
        assert tagged == "a3 OK [CAPABILITY %s] Logged in" % POST_CAPS
        _, tagged = c.cmd('LOGIN "%s" "%s"' % (ALICE, PASSWORDS[ALICE]), tag="a4")
        assert tagged == "a4 BAD Command not valid in this state"
        c.logout()


def test_login_with_literals(imap):
    with client(imap) as c:
        pw = PASSWORDS[ALICE].encode()
        c.send(b"a1 LOGIN {%d}\r\n" % len(ALICE))
        assert c.read_line() == "+ Ready for literal data"
        c.send(ALICE.encode() + b" {%d+}\r\n" % len(pw) + pw + b"\r\n")
        _, tagged = c.read_until_tagged("a1")
        assert tagged == "a1 OK [CAPABILITY %s] Logged in" % POST_CAPS
        c.logout()


def test_authenticate_plain_sasl_ir(imap):
    with client(imap) as c:
        _, tagged = c.cmd("AUTHENTICATE PLAIN " + (plain_response(ALICE, PASSWORDS[ALICE])),
                          tag="a1")
        assert tagged == "a1 OK [CAPABILITY %s] Logged in" % POST_CAPS
        c.logout()


def test_authenticate_plain_continuation_and_cancel(imap):
    with client(imap) as c:
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == "+ "
        c.send("*\r\n")
        assert c.read_line() == "a1 BAD Authentication cancelled"
        c.send("a2 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == "+ "
        c.send("%%%\r\n")
        assert c.read_line() == "a2 BAD Invalid base64 data"
        c.send("a3 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == "+ "
        c.send((plain_response(BOB, "wrong")) + "\r\n")
        assert c.read_line() == "a3 " + AUTH_FAILED
        c.send("a4 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == "+ "
        c.send((plain_response(BOB, PASSWORDS[BOB])) + "\r\n")
        assert c.read_line() == "a4 OK [CAPABILITY %s] Logged in" % POST_CAPS
        c.logout()


def test_authenticate_unknown_mechanism(imap):
    with client(imap) as c:
        _, tagged = c.cmd("AUTHENTICATE CRAM-MD5", tag="a1")
        assert tagged == "a1 NO [CANNOT] Unsupported authentication mechanism"
        _, tagged = c.cmd("AUTHENTICATE", tag="a2")
        assert tagged == "a2 BAD Expected a mechanism and an optional initial response"
        c.login(ALICE, PASSWORDS[ALICE])
        c.logout()


def test_imaplib_login_plain_text_on_loopback(imap):
    m = imaplib.IMAP4(imap.host, imap.imap_port)
    try:
        typ, data = m.login(ALICE, PASSWORDS[ALICE])
        assert typ == "OK"
        assert data == [b"[CAPABILITY " + POST_CAPS.encode() + b"] Logged in"]
        assert "IMAP4REV2" in m.capabilities
    finally:
        m.logout()


# --------------------------------------------------------------------------
# ENABLE, ID, NAMESPACE, NOOP, LOGOUT, IDLE


def test_enable(imap):
    with client(imap) as c:
        _, tagged = c.cmd("ENABLE IMAP4rev2", tag="a1")
        assert tagged == "a1 BAD Command not valid before authentication"
        c.login(ALICE, PASSWORDS[ALICE])
        untagged, tagged = c.cmd("ENABLE IMAP4rev2 X-UNKNOWN", tag="a2")
        assert untagged == ["* ENABLED IMAP4rev2"]
        assert tagged == "a2 OK ENABLE completed"
        untagged, tagged = c.cmd("ENABLE IMAP4rev2 UTF8=ACCEPT", tag="a3")
        assert untagged == ["* ENABLED UTF8=ACCEPT"]
        assert tagged == "a3 OK ENABLE completed"
        _, tagged = c.cmd("ENABLE", tag="a4")
        assert tagged == "a4 BAD Missing capability names"
        c.ok("SELECT INBOX")
        _, tagged = c.cmd("ENABLE CONDSTORE", tag="a5")
        assert tagged == "a5 BAD Command not valid in this state"
        c.logout()


def test_id_namespace_noop(imap):
    with client(imap) as c:
        untagged, tagged = c.cmd('ID ("name" "pytest" "version" "1")', tag="a1")
        assert untagged == ['* ID ("name" "hermod" "version" "0.1.0")']
        assert tagged == "a1 OK ID completed"
        untagged, tagged = c.cmd("ID NIL", tag="a2")
        assert untagged == ['* ID ("name" "hermod" "version" "0.1.0")']
        _, tagged = c.cmd('ID ("name")', tag="a3")
        assert tagged == "a3 BAD Expected at most 30 field/value pairs"
        _, tagged = c.cmd("ID", tag="a4")
        assert tagged == "a4 BAD Expected a list of field/value pairs or NIL"
        assert c.cmd("NOOP", tag="a5") == ([], "a5 OK NOOP completed")
        _, tagged = c.cmd("NAMESPACE", tag="a6")
        assert tagged == "a6 BAD Command not valid before authentication"
        c.login(ALICE, PASSWORDS[ALICE])
        assert c.cmd("NAMESPACE", tag="a7") == (['* NAMESPACE (("" "/")) NIL NIL'],
                                                "a7 OK NAMESPACE completed")
        assert c.cmd("NOOP x", tag="a8") == ([], "a8 BAD Unexpected arguments")
        assert c.cmd("NOOP", tag="a9") == ([], "a9 OK NOOP completed")
        c.logout()


def test_idle_framing(imap):
    with logged_in(imap) as c:
        c.send("a1 IDLE\r\n")
        assert c.read_line() == "+ idling"
        c.send("DONE\r\n")
        assert c.read_line() == "a1 OK IDLE terminated"
        c.send("a2 IDLE\r\n")
        assert c.read_line() == "+ idling"
        c.send("a3 NOOP\r\n")
        assert c.read_line() == "a2 BAD Expected DONE"
        assert c.cmd("NOOP", tag="a4") == ([], "a4 OK NOOP completed")
        c.logout()


# --------------------------------------------------------------------------
# bad input


def test_unknown_and_wrong_state_commands(imap):
    with client(imap) as c:
        assert c.cmd("FROBNICATE", tag="a1") == ([], "a1 BAD Unknown command")
        assert c.cmd("SELECT INBOX", tag="a2") == (
            [], "a2 BAD Command not valid before authentication")
        assert c.cmd("UID FROB 1", tag="a3") == ([], "a3 BAD Unknown UID command")
        c.login(ALICE, PASSWORDS[ALICE])
        assert c.cmd("CLOSE", tag="a4") == ([], "a4 BAD No mailbox selected")
        assert c.cmd("EXPUNGE", tag="a5") == ([], "a5 BAD No mailbox selected")
        assert c.cmd("UID COPY 1 Trash", tag="a6") == ([], "a6 BAD No mailbox selected")
        assert c.cmd("UID LIST", tag="a7") == ([], "a7 BAD Unknown UID command")
        assert c.cmd("LOGIN", tag="a8") == ([], "a8 BAD Command not valid in this state")
        c.logout()


def test_missing_arguments(imap):
    with client(imap) as c:
        assert c.cmd("LOGIN alice", tag="a1") == ([], "a1 BAD Expected user name and password")
        c.login(ALICE, PASSWORDS[ALICE])
        assert c.cmd("SELECT", tag="a2") == ([], "a2 BAD Expected a mailbox name")
        assert c.cmd("STATUS INBOX", tag="a3") == (
            [], "a3 BAD Expected a mailbox name and a list of status items")
        assert c.cmd("STATUS INBOX (FOO)", tag="a4") == ([], "a4 BAD Unknown status item")
        assert c.cmd("LIST", tag="a5") == (
            [], "a5 BAD Expected a reference and a mailbox pattern")
        assert c.cmd("CREATE", tag="a6") == ([], "a6 BAD Expected a mailbox name")
        assert c.cmd("RENAME a", tag="a7") == ([], "a7 BAD Expected two mailbox names")
        c.logout()


def test_syntax_errors_from_the_parser(imap):
    with client(imap) as c:
        c.send("\r\n")
        assert c.read_line() == "* BAD Empty command line"
        c.send("a{b NOOP\r\n")
        assert c.read_line() == "* BAD Invalid tag"
        c.send('a1 LOGIN "unterminated\r\n')
        assert c.read_line() == "a1 BAD Unterminated quoted string"
        c.send("a2 NOOP  \r\n")
        assert c.read_line() == "a2 BAD Extra space"
        assert c.cmd("NOOP", tag="a3") == ([], "a3 OK NOOP completed")
        c.logout()


def test_bad_sequence_sets(imap):
    with logged_in(imap) as c:
        c.ok("SELECT INBOX")
        assert c.cmd("STORE 0 +FLAGS (\\Seen)", tag="a1") == (
            [], "a1 BAD Invalid sequence set")
        assert c.cmd("STORE 1:x +FLAGS (\\Seen)", tag="a2") == (
            [], "a2 BAD Invalid sequence set")
        assert c.cmd("COPY 1000000 Trash", tag="a3") == (
            [], "a3 BAD Invalid sequence set: message number out of range")
        assert c.cmd("UID COPY 1000000 Trash", tag="a4") == ([], "a4 OK UID COPY completed")
        c.logout()


def test_line_too_long(imap):
    with client(imap) as c:
        # before login the command line limit is 8192 octets
        c.send("a1 LOGIN " + "x" * 9000 + " y\r\n")
        assert c.read_line() == "a1 BAD [TOOBIG] Command line too long"
        assert c.cmd("NOOP", tag="a2") == ([], "a2 OK NOOP completed")
        # past what the line layer buffers: the stream cannot be trusted any more
        c.send("a3 NOOP " + "x" * 20000 + "\r\n")
        assert c.read_line() == "* BYE [TOOBIG] Command line too long"
        c.wait_closed()
    with client(imap) as c:
        c.logout()


def test_literal_over_limit(imap):
    with client(imap) as c:
        # before login a literal is at most 4096 octets
        c.send("a1 LOGIN {5000}\r\n")
        assert c.read_line() == "a1 BAD [TOOBIG] Literal too large"
        assert c.cmd("NOOP", tag="a2") == ([], "a2 OK NOOP completed")
        c.login(ALICE, PASSWORDS[ALICE])
        # APPEND larger than APPENDLIMIT ([limits] max_message_size 40M)
        c.send("a3 APPEND INBOX {%d}\r\n" % (41 * 1024 * 1024))
        assert c.read_line() == "a3 NO [TOOBIG] Message too large"
        assert c.cmd("NOOP", tag="a4") == ([], "a4 OK NOOP completed")
        c.logout()


def test_too_many_errors(imap):
    with client(imap) as c:
        for i in range(10):
            assert c.cmd("BOGUS", tag="e%d" % i) == ([], "e%d BAD Unknown command" % i)
        c.send("e10 BOGUS\r\n")
        assert c.read_line() == "* BYE Too many errors"
        c.wait_closed()
    with client(imap) as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.logout()


# --------------------------------------------------------------------------
# curl


def test_curl_list(imap):
    """curl's imap:// client: AUTHENTICATE PLAIN with SASL-IR, then LIST."""
    if shutil.which("curl") is None:
        pytest.fail("curl not found (Debian package curl)", pytrace=False)
    p = subprocess.run(["curl", "-sS", "imap://%s:%d/" % (imap.host, imap.imap_port),
                        "--user", "%s:%s" % (ALICE, PASSWORDS[ALICE])],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines() == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"']


def test_curl_imaps_list(imap, tls_cert):
    p = subprocess.run(["curl", "-sS", "--cacert", tls_cert.cert, "--resolve",
                        "mx.example.test:%d:127.0.0.1" % imap.imaps_port,
                        "imaps://mx.example.test:%d/" % imap.imaps_port,
                        "--user", "%s:%s" % (BOB, PASSWORDS[BOB])],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines()[0] == '* LIST (\\HasNoChildren) "/" "INBOX"'


# --------------------------------------------------------------------------
# COMPRESS=DEFLATE (RFC 4978)


def test_compress_deflate(imap):
    with client(imap) as c:
        assert c.cmd("COMPRESS DEFLATE", tag="a1") == (
            [], "a1 BAD Command not valid before authentication")
        c.login(ALICE, PASSWORDS[ALICE])
        assert c.cmd("COMPRESS LZ4", tag="a2") == ([], "a2 BAD Unknown compression mechanism")
        assert c.cmd("COMPRESS DEFLATE", tag="a3") == ([], "a3 OK DEFLATE active")
        assert c.buf == b""
        comp = zlib.compressobj(wbits=-15)
        decomp = zlib.decompressobj(wbits=-15)

        def send(line):
            c.sock.sendall(comp.compress(line) + comp.flush(zlib.Z_SYNC_FLUSH))

        def read_until(tag):
            data = b""
            while not data.endswith(b"\r\n") or (b"\r\n" + tag) not in b"\r\n" + data:
                chunk = c.sock.recv(65536)
                assert chunk, "connection closed; got %r" % data
                data += decomp.decompress(chunk)
            return data.decode().split("\r\n")[:-1]

        send(b"a4 CAPABILITY\r\n")
        assert read_until(b"a4 ") == ["* CAPABILITY IMAP4rev2 IMAP4rev1 " + COMMON,
                                      "a4 OK CAPABILITY completed"]
        send(b"a5 COMPRESS DEFLATE\r\n")
        assert read_until(b"a5 ") == ["a5 NO [COMPRESSIONACTIVE] DEFLATE is already active"]
        send(b'a6 LIST "" INBOX\r\n')
        assert read_until(b"a6 ") == ['* LIST (\\HasNoChildren) "/" "INBOX"',
                                      "a6 OK LIST completed"]
        send(b"a7 LOGOUT\r\n")
        assert read_until(b"a7 ") == ["* BYE Logging out", "a7 OK LOGOUT completed"]


def test_append_before_login(imap):
    with client(imap) as c:
        c.send("a1 APPEND INBOX {5}\r\n")
        assert c.read_line() == "+ Ready for literal data"
        c.send("hello\r\n")
        assert c.read_until_tagged("a1") == ([], "a1 BAD Command not valid before authentication")
        c.send("a2 APPEND INBOX {5+}\r\nhello\r\n")
        assert c.read_until_tagged("a2") == ([], "a2 BAD Command not valid before authentication")
        # a non-synchronizing literal over the pre-login limit cannot be skipped safely
        c.send("a3 APPEND INBOX {50000+}\r\n")
        assert c.read_line() == "* BYE [TOOBIG] Literal too large"
        c.wait_closed()
    with client(imap) as c:
        c.logout()
