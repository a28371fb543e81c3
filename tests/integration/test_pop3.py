"""POP3 (issue 4, docs/pop3.md): every command and its exact reply, with
poplib and a raw client, over pop3s (implicit TLS) and pop3 + STLS.

Covers the greeting, CAPA before/after STLS and after login, USER/PASS, AUTH
PLAIN (initial response and empty challenge), AUTH SCRAM-SHA-256 with an
independent client (RFC 5802/7677, written again here for POP3's "+ "
continuations), STAT/LIST/RETR/TOP/UIDL/DELE/RSET/NOOP/QUIT; octet counts
checked byte for byte against RETR (wire form with dot-stuffing, and the
un-stuffed data) and `hermod message show`; a message with lines starting
with "."; a message sent by BDAT without a final CRLF; bad input (unknown
command, wrong state, bad and deleted message numbers, overlong lines, the
error limit); plaintext refused before TLS and the loopback exception; the
STLS injection test; [pop3] expire and login_delay."""

import base64
import hashlib
import hmac
import os
import poplib
import re
import socket

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, HOSTNAME, PASSWORDS, POP3_GREETING,
                      POP3Client, b64, dot_stuff, make_message, module_server,
                      plain_response, unique)

NOT_VALID = "-ERR Command not valid in this state"
NO_SUCH = "-ERR No such message"
SYNTAX = "-ERR Syntax error"
UNKNOWN = "-ERR Unknown command"
AUTH_FAILED = "-ERR [AUTH] Authentication failed"
PLAINTEXT_REFUSED = "-ERR [AUTH] Plaintext authentication disallowed without TLS"
IN_USE = "-ERR [IN-USE] Mailbox is locked by another POP3 session"

# Capabilities that are always there (docs/pop3.md, defaults).
BASE_CAPS = ["TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "EXPIRE NEVER",
             "IMPLEMENTATION hermod"]
# the default [auth] mechanisms, as POP3 lists them after TLS
DEFAULT_SASL = "SASL SCRAM-SHA-256 PLAIN LOGIN"

DOT_BODY = (b"first line\r\n"
            b".a line starting with a dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b" .not at the start\r\n"
            b"last line\r\n")


@pytest.fixture(scope="module")
def pop(hermod_bin, tls_cert):
    """TLS server with pop3 (STLS) and pop3s, no loopback exception. The
    failure limits are high: this module fails logins on purpose."""
    yield from module_server(hermod_bin, "pop3", tls=tls_cert, pop3=True,
                             extra={"auth": {"max_failures": "1000",
                                             "account_max_failures": "1000"}})


# --------------------------------------------------------------------------
# helpers


class POP3Name(poplib.POP3):
    """poplib.POP3 to 127.0.0.1 whose host name (for STLS verification) is
    mx.example.test."""

    def __init__(self, port, **kw):
        kw.setdefault("timeout", 30)
        super().__init__(HOSTNAME, port, **kw)

    def _create_socket(self, timeout):
        return socket.create_connection(("127.0.0.1", self.port), timeout)


class POP3_SSLName(poplib.POP3_SSL):
    """poplib.POP3_SSL to 127.0.0.1 verifying the certificate for
    mx.example.test."""

    def __init__(self, port, context, **kw):
        kw.setdefault("timeout", 30)
        super().__init__(HOSTNAME, port, context=context, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def new_account(srv):
    """A fresh account of its own (isolation on a shared server)."""
    addr = "%s@example.test" % unique("pop")
    pw = unique("pw")
    srv.cli("user", "add", addr, "--password-stdin", input=pw + "\n")
    return addr, pw


def deliver(srv, to, msg):
    reply = srv.deliver([to], msg)
    assert DELIVERED_RE.match(reply.line), reply
    return reply


def fill(srv, to, n, body=DOT_BODY):
    """n messages with dot lines; returns the rows of `message list`."""
    for _ in range(n):
        deliver(srv, to, make_message(unique("m"), body, to=to))
    rows = srv.messages(to)
    assert len(rows) == n
    return rows


def logged_in_line(rows):
    return "+OK Logged in, %d messages (%d octets)" % (len(rows), sum(r["size"] for r in rows))


def session(srv, user, pw, tls="implicit"):
    c = srv.pop3(tls=tls)
    c.login(user, pw)
    return c


def stuffed(data):
    """The wire form of a multi-line body for data ending in CRLF."""
    assert data.endswith(b"\r\n")
    return dot_stuff(data) + b".\r\n"


def _saslname(s):
    return s.replace("=", "=3D").replace(",", "=2C")


def scram_pop3(c, user, password, initial_response=True):
    """RFC 5802/7677 SCRAM-SHA-256 ("n,,") over a POP3Client; RFC 5034: the
    server-final message comes as a "+ " challenge answered with an empty
    line. Returns (final status line, server signature verified or None)."""
    gs2 = "n,,"
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=%s,r=%s" % (_saslname(user), cnonce)
    if initial_response:
        st = c.cmd("AUTH SCRAM-SHA-256 " + b64(gs2 + first_bare))
    else:
        st = c.cmd("AUTH SCRAM-SHA-256")
        assert st == "+ ", st
        st = c.cmd(b64(gs2 + first_bare))
    if not st.startswith("+ "):
        return st, None
    server_first = base64.b64decode(st[2:]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce), server_first
    iters = int(attrs["i"])
    assert iters >= 4096, iters
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 iters)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_no_proof = "c=%s,r=%s" % (b64(gs2), attrs["r"])
    auth_message = ("%s,%s,%s" % (first_bare, server_first, final_no_proof)).encode()
    sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    server_sig = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    st = c.cmd(b64("%s,p=%s" % (final_no_proof, base64.b64encode(proof).decode())))
    verified = None
    if st.startswith("+ "):
        server_final = base64.b64decode(st[2:]).decode()
        verified = server_final.startswith("v=") and \
            base64.b64decode(server_final[2:]) == server_sig
        st = c.cmd("")
    return st, verified


# --------------------------------------------------------------------------
# greeting and CAPA


def test_greeting_pop3_and_pop3s(pop):
    for tls in (None, "implicit"):
        c = pop.pop3(tls=tls)
        assert c.greeting == POP3_GREETING
        assert c.cmd("QUIT") == "+OK Bye"
        assert c.wait_closed() == b""
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    assert p.getwelcome() == POP3_GREETING.encode()
    assert p.quit() == b"+OK Bye"


def test_capa_before_and_after_stls(pop):
    c = pop.pop3()
    caps = c.capa()
    assert sorted(caps) == sorted(BASE_CAPS + ["STLS"]), caps
    c.stls(pop.context())
    caps = c.capa()
    assert "STLS" not in caps
    assert "USER" in caps
    sasl = [x for x in caps if x.startswith("SASL ")]
    assert sasl == [DEFAULT_SASL], caps
    assert sorted(x for x in caps if x not in ("USER",) and not x.startswith("SASL ")) == \
        sorted(BASE_CAPS), caps
    c.quit()


def test_capa_pop3s_and_poplib(pop):
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    caps = p.capa()
    for k in ("TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "USER"):
        assert caps.get(k) == [], caps
    assert caps["EXPIRE"] == ["NEVER"]
    assert caps["IMPLEMENTATION"] == ["hermod"]
    assert "STLS" not in caps
    assert caps["SASL"] == ["SCRAM-SHA-256", "PLAIN", "LOGIN"], caps
    p.quit()


def test_capa_in_transaction(pop):
    user, pw = new_account(pop)
    c = session(pop, user, pw)
    caps = c.capa()
    for k in BASE_CAPS:
        assert k in caps, caps
    assert "STLS" not in caps
    c.quit()


def test_stls_not_valid_inside_tls_or_after_login(pop):
    c = pop.pop3(tls="implicit")
    assert c.cmd("STLS") == NOT_VALID
    assert "USER" in c.capa()
    c.quit()
    c = pop.pop3(tls="stls")
    assert c.cmd("STLS") == NOT_VALID
    user, pw = new_account(pop)
    c.login(user, pw)
    assert c.cmd("STLS") == NOT_VALID
    c.quit()


def test_stls_poplib(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 1)
    p = POP3Name(pop.pop3_port)
    assert p.stls(pop.context()) == b"+OK Begin TLS negotiation"
    assert p.user(user) == b"+OK"
    assert p.pass_(pw) == logged_in_line(rows).encode()
    assert p.quit() == b"+OK Bye, 0 messages deleted"


def test_no_certificate_no_stls(make_server):
    srv = make_server(pop3=True)
    c = srv.pop3()
    caps = c.capa()
    assert sorted(caps) == sorted(BASE_CAPS), caps
    assert c.cmd("STLS") == NOT_VALID
    assert c.cmd("USER " + ALICE) == PLAINTEXT_REFUSED
    c.quit()


# --------------------------------------------------------------------------
# USER / PASS


@pytest.mark.parametrize("tls", ["implicit", "stls"])
def test_user_pass_good(pop, tls):
    user, pw = new_account(pop)
    rows = fill(pop, user, 2)
    c = pop.pop3(tls=tls)
    assert c.cmd("USER " + user) == "+OK"
    assert c.cmd("PASS " + pw) == logged_in_line(rows)
    assert c.cmd("QUIT") == "+OK Bye, 0 messages deleted"
    assert c.wait_closed() == b""


def test_user_pass_poplib(pop):
    user, pw = new_account(pop)
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    assert p.user(user) == b"+OK"
    assert p.pass_(pw) == b"+OK Logged in, 0 messages (0 octets)"
    assert p.stat() == (0, 0)
    resp, listing, _ = p.list()
    assert resp == b"+OK 0 messages (0 octets)" and listing == []
    resp, uidls, _ = p.uidl()
    assert resp == b"+OK" and uidls == []
    assert p.quit() == b"+OK Bye, 0 messages deleted"


def test_password_with_spaces(pop):
    """RFC 1939: PASS takes the rest of the line (spaces included)."""
    addr = "%s@example.test" % unique("sp")
    pw = "with two  spaces x"
    pop.cli("user", "add", addr, "--password-stdin", input=pw + "\n")
    c = pop.pop3(tls="implicit")
    c.login(addr, pw)
    c.quit()


@pytest.mark.parametrize("user,password", [
    (ALICE, "wrong-password"),
    (ALICE, PASSWORDS[BOB]),
    ("nobody@example.test", "whatever"),
    ("alice@other.test", PASSWORDS[ALICE]),
])
def test_user_pass_bad(pop, user, password):
    c = pop.pop3(tls="implicit")
    assert c.cmd("USER " + user) == "+OK"
    assert c.cmd("PASS " + password) == AUTH_FAILED
    # back in AUTHORIZATION: PASS needs USER again, STAT is not valid
    assert c.cmd("PASS " + password) == NOT_VALID
    assert c.cmd("STAT") == NOT_VALID
    # and a good login still works on the same connection
    good, gpw = new_account(pop)
    c.login(good, gpw)
    assert c.cmd("STAT") == "+OK 0 0"
    c.quit()


def test_user_pass_bad_poplib(pop):
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    p.user(ALICE)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("nope")
    assert e.value.args[0] == AUTH_FAILED.encode()
    assert p.quit() == b"+OK Bye"


def test_pass_without_user_and_syntax(pop):
    c = pop.pop3(tls="implicit")
    assert c.cmd("PASS x") == NOT_VALID
    assert c.cmd("USER") == SYNTAX
    assert c.cmd("QUIT") == "+OK Bye"


def test_commands_case_insensitive(pop):
    user, pw = new_account(pop)
    fill(pop, user, 1)
    c = pop.pop3(tls="implicit")
    assert c.cmd("user " + user) == "+OK"
    assert c.cmd("pass " + pw).startswith("+OK Logged in, 1 messages")
    assert c.cmd("noop") == "+OK"
    assert c.cmd("Stat").startswith("+OK 1 ")
    assert c.cmd("quit") == "+OK Bye, 0 messages deleted"


# --------------------------------------------------------------------------
# AUTH


@pytest.mark.parametrize("tls", ["implicit", "stls"])
def test_auth_plain_initial_response(pop, tls):
    user, pw = new_account(pop)
    rows = fill(pop, user, 1)
    c = pop.pop3(tls=tls)
    assert c.cmd("AUTH PLAIN " + plain_response(user, pw)) == logged_in_line(rows)
    assert c.cmd("NOOP") == "+OK"
    c.quit()


def test_auth_plain_empty_challenge(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd(plain_response(user, pw)) == "+OK Logged in, 0 messages (0 octets)"
    c.quit()


def test_auth_plain_empty_initial_response(pop):
    # RFC 5034 4: "=" is an initial response of zero length
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    assert c.cmd("AUTH PLAIN =") == "+ "
    assert c.cmd(plain_response(user, pw)) == "+OK Logged in, 0 messages (0 octets)"
    c.quit()


def test_auth_plain_poplib_utf8_path(pop):
    """poplib has no AUTH; raw commands through its _shortcmd."""
    user, pw = new_account(pop)
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    assert p._shortcmd("AUTH PLAIN " + plain_response(user, pw)) == \
        b"+OK Logged in, 0 messages (0 octets)"
    assert p.quit() == b"+OK Bye, 0 messages deleted"


def test_auth_errors(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    assert c.cmd("AUTH PLAIN " + plain_response(user, "wrong")) == AUTH_FAILED
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("*") == "-ERR Authentication cancelled"
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("!!!not base64!!!") == "-ERR Cannot decode response"
    assert c.cmd("AUTH NOSUCH-MECH") == "-ERR Unrecognized authentication type"
    assert c.cmd("AUTH PLAIN " + plain_response(user, pw)) == \
        "+OK Logged in, 0 messages (0 octets)"
    c.quit()


@pytest.mark.parametrize("tls,initial", [("implicit", True), ("implicit", False),
                                         ("stls", True)])
def test_auth_scram_sha256(pop, tls, initial):
    user, pw = new_account(pop)
    rows = fill(pop, user, 1)
    c = pop.pop3(tls=tls)
    st, verified = scram_pop3(c, user, pw, initial_response=initial)
    assert st == logged_in_line(rows)
    assert verified is True, "server signature (v=) missing or wrong"
    assert c.cmd("STAT") == "+OK 1 %d" % rows[0]["size"]
    c.quit()


def test_auth_scram_sha256_bad_password(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    st, verified = scram_pop3(c, user, "not-the-password")
    assert st == AUTH_FAILED
    assert verified is not True
    c.login(user, pw)
    c.quit()


def test_auth_after_login_not_valid(pop):
    user, pw = new_account(pop)
    c = session(pop, user, pw)
    assert c.cmd("AUTH PLAIN " + plain_response(user, pw)) == NOT_VALID
    assert c.cmd("USER " + user) == NOT_VALID
    assert c.cmd("PASS " + pw) == NOT_VALID
    c.quit()


# --------------------------------------------------------------------------
# the TRANSACTION commands, byte for byte


def test_stat_list_retr_byte_exact(pop):
    user, pw = new_account(pop)
    bodies = [DOT_BODY, b"plain body\r\n", b".\r\n..\r\n...\r\n", (b"x" * 900 + b"\r\n") * 6]
    for b in bodies:
        deliver(pop, user, make_message(unique("exact"), b, to=user))
    rows = pop.messages(user)
    assert len(rows) == len(bodies)
    stored = [pop.show(user, "INBOX", r["uid"]) for r in rows]
    total = sum(len(s) for s in stored)
    for r, s in zip(rows, stored):
        assert r["size"] == len(s), (r, len(s))

    c = pop.pop3(tls="implicit")
    assert c.login(user, pw) == "+OK Logged in, %d messages (%d octets)" % (len(rows), total)
    assert c.cmd("STAT") == "+OK %d %d" % (len(rows), total)
    st, lines = c.multi_lines("LIST")
    assert st == "+OK %d messages (%d octets)" % (len(rows), total)
    assert lines == ["%d %d" % (i + 1, len(s)) for i, s in enumerate(stored)]
    for i, s in enumerate(stored):
        assert c.cmd("LIST %d" % (i + 1)) == "+OK %d %d" % (i + 1, len(s))
    for i, s in enumerate(stored):
        st, data, wire = c.multi("RETR %d" % (i + 1))
        assert st == "+OK %d octets" % len(s)
        assert wire == stuffed(s), "wire form differs for message %d" % (i + 1)
        assert data == s
        assert len(data) == len(s)
    # the dot lines really are stuffed on the wire and not in the count
    _, data, wire = c.multi("RETR 1")
    assert b"\r\n..a line starting with a dot\r\n" in wire
    assert b"\r\n...two dots\r\n" in wire
    assert b"\r\n..\r\n" in wire
    assert len(wire) > len(data) + 3
    assert c.cmd("QUIT") == "+OK Bye, 0 messages deleted"
    assert [r["uid"] for r in pop.messages(user)] == [r["uid"] for r in rows]


def test_poplib_retr_matches_show(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 3)
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    p.user(user)
    p.pass_(pw)
    total = sum(r["size"] for r in rows)
    assert p.stat() == (3, total)
    resp, listing, _ = p.list()
    assert resp == b"+OK 3 messages (%d octets)" % total
    assert listing == [b"%d %d" % (i + 1, r["size"]) for i, r in enumerate(rows)]
    for i, r in enumerate(rows):
        resp, lines, octets = p.retr(i + 1)
        assert resp == b"+OK %d octets" % r["size"]
        assert b"".join(l + b"\r\n" for l in lines) == pop.show(user, "INBOX", r["uid"])
    assert p.quit() == b"+OK Bye, 0 messages deleted"


def test_bdat_without_final_crlf(pop):
    """A message sent by BDAT LAST without a final CRLF is stored (and served)
    with one; the octet count is exact for what RETR sends."""
    user, pw = new_account(pop)
    subject = unique("bdat")
    msg = make_message(subject, b"no final newline\r\n.dot line\r\nthe end", to=user)
    assert not msg.endswith(b"\r\n")
    with pop.connect() as s:
        s.greet()
        r = s.ehlo()
        assert any(l[4:].upper() == "CHUNKING" for l in r.lines), r
        s.mail()
        s.rcpt(user)
        s.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        r = s.read_reply()
        assert DELIVERED_RE.match(r.line), r
        s.quit()
    stored = pop.fetch_one(user, subject)
    assert stored.endswith(b"\r\n.dot line\r\nthe end\r\n")
    rows = pop.messages(user)
    assert rows[0]["size"] == len(stored)
    c = session(pop, user, pw)
    assert c.cmd("LIST 1") == "+OK 1 %d" % len(stored)
    st, data, wire = c.multi("RETR 1")
    assert st == "+OK %d octets" % len(stored)
    assert data == stored
    assert wire.endswith(b"\r\n..dot line\r\nthe end\r\n.\r\n")
    c.quit()


def test_top(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 1)
    stored = pop.show(user, "INBOX", rows[0]["uid"])
    head, body = stored.split(b"\r\n\r\n", 1)
    head += b"\r\n"
    body_lines = body.split(b"\r\n")[:-1]
    c = session(pop, user, pw)
    for n in (0, 1, 2, 3, 4, len(body_lines), len(body_lines) + 5, 1000000,
              4294967296, 10 ** 30):  # RFC 1939: any non-negative count
        st, data, wire = c.multi("TOP 1 %d" % n)
        assert st == "+OK", (n, st)
        want = head + b"\r\n" + b"".join(l + b"\r\n" for l in body_lines[:n])
        assert data == want, n
        assert wire == stuffed(want), n
    # TOP with all lines is RETR
    _, data, _ = c.multi("TOP 1 %d" % len(body_lines))
    assert data == stored
    c.quit()


def test_top_poplib(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 2)
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    p.user(user)
    p.pass_(pw)
    resp, lines, _ = p.top(2, 1)
    assert resp == b"+OK"
    head = pop.show(user, "INBOX", rows[1]["uid"]).split(b"\r\n\r\n", 1)[0]
    assert b"".join(l + b"\r\n" for l in lines) == head + b"\r\n\r\nfirst line\r\n"
    p.quit()


def test_uidl(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 3)
    c = session(pop, user, pw)
    st, lines = c.multi_lines("UIDL")
    assert st == "+OK"
    assert len(lines) == 3
    uids = {}
    validity = set()
    for i, (line, r) in enumerate(zip(lines, rows)):
        n, uid = line.split(" ")
        assert n == str(i + 1)
        assert re.match(r"^[0-9A-F]{16}$", uid), uid
        assert int(uid[:8], 16) == r["uid"], (uid, r)
        validity.add(uid[8:])
        uids[i + 1] = uid
        assert c.cmd("UIDL %d" % (i + 1)) == "+OK %d %s" % (i + 1, uid)
    assert len(validity) == 1 and int(validity.pop(), 16) != 0
    # RFC 1939: the unique-id is 1-70 characters in 0x21-0x7E
    c.quit()
    # poplib agrees
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    p.user(user)
    p.pass_(pw)
    resp, listing, _ = p.uidl()
    assert listing == [("%d %s" % (n, u)).encode() for n, u in sorted(uids.items())]
    assert p.uidl(2) == ("+OK 2 %s" % uids[2]).encode()
    p.quit()


def test_dele_rset_noop_quit(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 4)
    sizes = [r["size"] for r in rows]
    total = sum(sizes)
    c = session(pop, user, pw)
    assert c.cmd("NOOP") == "+OK"
    assert c.cmd("DELE 2") == "+OK Message 2 deleted"
    assert c.cmd("STAT") == "+OK 3 %d" % (total - sizes[1])
    st, lines = c.multi_lines("LIST")
    assert st == "+OK 3 messages (%d octets)" % (total - sizes[1])
    assert lines == ["1 %d" % sizes[0], "3 %d" % sizes[2], "4 %d" % sizes[3]]
    st, lines = c.multi_lines("UIDL")
    assert [l.split()[0] for l in lines] == ["1", "3", "4"]
    # every access to a deleted message
    for cmd in ("RETR 2", "LIST 2", "UIDL 2", "TOP 2 0", "DELE 2"):
        assert c.cmd(cmd) == "-ERR Message 2 already deleted", cmd
    assert c.cmd("RSET") == "+OK 4 messages (%d octets)" % total
    assert c.cmd("STAT") == "+OK 4 %d" % total
    st, data, _ = c.multi("RETR 2")
    assert st == "+OK %d octets" % sizes[1]
    assert c.cmd("DELE 1") == "+OK Message 1 deleted"
    assert c.cmd("DELE 4") == "+OK Message 4 deleted"
    assert c.cmd("NOOP") == "+OK"
    assert c.cmd("QUIT") == "+OK Bye, 2 messages deleted"
    assert c.wait_closed() == b""
    left = pop.messages(user)
    assert [r["uid"] for r in left] == [rows[1]["uid"], rows[2]["uid"]]
    # the next session numbers the rest from 1
    c = session(pop, user, pw)
    assert c.cmd("STAT") == "+OK 2 %d" % (sizes[1] + sizes[2])
    assert c.cmd("LIST 1") == "+OK 1 %d" % sizes[1]
    assert c.cmd("LIST 3") == NO_SUCH
    c.quit()


def test_poplib_dele_rset(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 2)
    p = POP3_SSLName(pop.pop3s_port, pop.context())
    p.user(user)
    p.pass_(pw)
    assert p.noop() == b"+OK"
    assert p.dele(1) == b"+OK Message 1 deleted"
    assert p.rset() == b"+OK 2 messages (%d octets)" % sum(r["size"] for r in rows)
    assert p.dele(2) == b"+OK Message 2 deleted"
    assert p.quit() == b"+OK Bye, 1 messages deleted"
    assert [r["uid"] for r in pop.messages(user)] == [rows[0]["uid"]]


def test_pipelined_session_over_tls(pop):
    user, pw = new_account(pop)
    rows = fill(pop, user, 2)
    stored = [pop.show(user, "INBOX", r["uid"]) for r in rows]
    c = pop.pop3(tls="implicit")
    c.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 2 0\r\nUIDL 1\r\nDELE 2\r\n"
           "RETR 2\r\nRSET\r\nNOOP\r\nQUIT\r\n" % (user, pw))
    assert c.read_line() == "+OK"
    assert c.read_line() == logged_in_line(rows)
    assert c.read_line() == "+OK 2 %d" % sum(len(s) for s in stored)
    assert c.read_line().startswith("+OK 2 messages")
    c.read_multi_wire()
    assert c.read_line() == "+OK %d octets" % len(stored[0])
    assert c.read_multi_wire() == stuffed(stored[0])
    assert c.read_line() == "+OK"
    assert c.unstuff(c.read_multi_wire()) == stored[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert c.read_line().startswith("+OK 1 %08X" % rows[0]["uid"])
    assert c.read_line() == "+OK Message 2 deleted"
    assert c.read_line() == "-ERR Message 2 already deleted"
    assert c.read_line().startswith("+OK 2 messages")
    assert c.read_line() == "+OK"
    assert c.read_line() == "+OK Bye, 0 messages deleted"
    assert c.wait_closed() == b""


def test_pipelined_retr_batch(pop):
    """RETR/TOP lines already buffered behind a RETR are read in one worker job (at
    most 64): the replies stay in order and exact, and whatever is not a valid
    RETR/TOP of a live message (DELE, a deleted or unknown message, a syntax error)
    ends the batch where it stands and is answered as usual."""
    user, pw = new_account(pop)
    n = 70
    rows = fill(pop, user, n)
    stored = [pop.show(user, "INBOX", r["uid"]) for r in rows]
    c = session(pop, user, pw)
    cmds = ["RETR %d" % i for i in range(1, 31)]
    cmds += ["DELE 5", "RETR 5", "RETR 31", "RETR 999", "retr 32", "RETR", "TOP 33 0",
             "RETR 34 x", "RETR 33", "TOP 5 1"]
    cmds += ["RETR %d" % i for i in range(34, n + 1)]
    cmds += ["RETR 1", "TOP 2 0", "STAT"]
    # a bare LF ends a line too
    c.send("".join(x + ("\n" if i % 7 == 3 else "\r\n") for i, x in enumerate(cmds)))
    deleted = False
    for cmd in cmds:
        verb, _, arg = cmd.partition(" ")
        if deleted and cmd in ("RETR 5", "TOP 5 1"):
            assert c.read_line() == "-ERR Message 5 already deleted", cmd
        elif cmd == "DELE 5":
            assert c.read_line() == "+OK Message 5 deleted"
            deleted = True
        elif cmd == "RETR 999":
            assert c.read_line() == NO_SUCH
        elif cmd in ("RETR", "RETR 34 x"):
            assert c.read_line() == SYNTAX, cmd
        elif cmd == "STAT":
            assert c.read_line() == "+OK %d %d" % (n - 1, sum(len(x) for x in stored)
                                                  - len(stored[4]))
        elif verb == "TOP":
            i = int(arg.split()[0]) - 1
            assert c.read_line() == "+OK", cmd
            head = stored[i].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            assert c.unstuff(c.read_multi_wire()) == head, cmd
        else:
            i = int(arg) - 1
            assert c.read_line() == "+OK %d octets" % len(stored[i]), cmd
            assert c.read_multi_wire() == stuffed(stored[i]), cmd
    c.quit()


# --------------------------------------------------------------------------
# bad input


BAD_NUMBERS = ["0", "-1", "99999", "abc", "4294967297", "1x", "+1"]


@pytest.mark.parametrize("template", ["RETR %s", "LIST %s", "UIDL %s", "DELE %s",
                                      "TOP %s 1"])
def test_bad_message_numbers(pop, template):
    user, pw = new_account(pop)
    fill(pop, user, 2)
    c = session(pop, user, pw)
    for n in BAD_NUMBERS[:5]:
        assert c.cmd(template % n) == NO_SUCH, template % n
    c.quit()
    # a new session works (and another set of bad numbers)
    c = session(pop, user, pw)
    for n in BAD_NUMBERS[5:]:
        assert c.cmd(template % n) == NO_SUCH, template % n
    assert c.cmd("STAT").startswith("+OK 2 ")
    c.quit()


def test_missing_and_extra_arguments(pop):
    user, pw = new_account(pop)
    fill(pop, user, 1)
    c = session(pop, user, pw)
    for cmd in ("RETR", "DELE", "TOP", "TOP 1"):
        assert c.cmd(cmd) == SYNTAX, cmd
    assert c.cmd("NOOP") == "+OK"
    c.quit()
    c = session(pop, user, pw)
    for cmd in ("TOP 1 x", "TOP 1 -1"):
        assert c.cmd(cmd) == SYNTAX, cmd
    assert c.cmd("NOOP") == "+OK"
    c.quit()


def test_unknown_command(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    assert c.cmd("XYZZY") == UNKNOWN
    assert c.cmd("APOP %s 0123456789abcdef0123456789abcdef" % user) == UNKNOWN
    assert c.cmd("NOOP") == NOT_VALID   # NOOP is a TRANSACTION command
    c.login(user, pw)
    assert c.cmd("XYZZY") == UNKNOWN
    assert c.cmd("LAST") == UNKNOWN
    assert c.cmd("NOOP") == "+OK"
    c.quit()


def test_wrong_state_before_login(pop):
    c = pop.pop3(tls="implicit")
    for cmd in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1"):
        assert c.cmd(cmd) == NOT_VALID, cmd
    c.quit()
    c = pop.pop3(tls="implicit")
    for cmd in ("TOP 1 1", "UIDL", "RSET", "NOOP"):
        assert c.cmd(cmd) == NOT_VALID, cmd
    user, pw = new_account(pop)
    c.login(user, pw)
    assert c.cmd("STAT") == "+OK 0 0"
    c.quit()


def test_wrong_state_after_login(pop):
    user, pw = new_account(pop)
    c = session(pop, user, pw, tls="stls")
    for cmd in ("USER " + user, "PASS " + pw, "STLS", "AUTH PLAIN"):
        assert c.cmd(cmd) == NOT_VALID, cmd
    assert c.cmd("NOOP") == "+OK"
    c.quit()


def test_line_length_limit(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    # exactly 255 octets with CRLF: allowed (a USER of an unknown name is +OK)
    line = "USER " + "u" * (255 - 2 - 5)
    assert len(line) + 2 == 255
    assert c.cmd(line) == "+OK"
    line256 = "USER " + "u" * (256 - 2 - 5)
    assert c.cmd(line256) == "-ERR Line too long"
    assert c.cmd("NOOP " + "x" * 300) == "-ERR Line too long"
    # a very long line: refused once, and the session carries on
    assert c.cmd("X" * 100000) == "-ERR Line too long"
    assert c.pending(0.5) == b""
    c.login(user, pw)
    assert c.cmd("STAT " + "1" * 300) == "-ERR Line too long"
    assert c.cmd("NOOP") == "+OK"
    c.quit()
    c = session(pop, user, pw)
    c.quit()


def test_too_many_errors_closes(pop):
    limit = int(pop.limits["max_errors"])
    c = pop.pop3(tls="implicit")
    replies = []
    for i in range(limit + 1):
        try:
            replies.append(c.cmd("BOGUS%d" % i))
        except Exception:
            break
        if replies[-1] == "-ERR Too many errors":
            break
    assert replies[-1] == "-ERR Too many errors", replies
    assert replies[:limit - 1] == [UNKNOWN] * (limit - 1), replies
    assert all(r == UNKNOWN for r in replies[:-1]), replies
    assert c.wait_closed() == b""
    # a new session works
    user, pw = new_account(pop)
    c = session(pop, user, pw)
    c.quit()


def test_too_many_errors_pipelined(pop):
    limit = int(pop.limits["max_errors"])
    c = pop.pop3(tls="implicit")
    c.send("".join("BOGUS\r\n" for _ in range(limit + 5)))
    data = c.wait_closed()
    lines = data.decode().split("\r\n")
    assert lines[-1] == ""
    assert lines[-2] == "-ERR Too many errors", lines
    assert set(lines[:-2]) == {UNKNOWN}, lines
    assert limit - 1 <= len(lines) - 2 <= limit, lines


def test_empty_line_and_nul(pop):
    user, pw = new_account(pop)
    c = session(pop, user, pw)
    st = c.cmd("")
    assert st.startswith("-ERR "), st
    st = c.cmd(b"NO\x00OP")
    assert st.startswith("-ERR "), st
    assert c.cmd("NOOP") == "+OK"
    c.quit()


# --------------------------------------------------------------------------
# plaintext before TLS


def test_plaintext_refused_before_tls(pop):
    user, pw = new_account(pop)
    c = pop.pop3()
    assert c.cmd("USER " + user) == PLAINTEXT_REFUSED
    assert c.cmd("PASS " + pw) == PLAINTEXT_REFUSED
    assert c.cmd("AUTH PLAIN " + plain_response(user, pw)) == PLAINTEXT_REFUSED
    assert c.cmd("AUTH PLAIN") == PLAINTEXT_REFUSED
    assert c.cmd("AUTH SCRAM-SHA-256") == PLAINTEXT_REFUSED
    # still usable: STLS, then the same login works
    c.stls(pop.context())
    c.login(user, pw)
    c.quit()


def test_plaintext_refused_poplib(pop):
    p = POP3Name(pop.pop3_port)
    with pytest.raises(poplib.error_proto) as e:
        p.user(ALICE)
    assert e.value.args[0] == PLAINTEXT_REFUSED.encode()
    assert p.quit() == b"+OK Bye"


@pytest.mark.parametrize("tls", [False, True])
def test_plaintext_allowed_on_loopback(make_server, tls):
    srv = make_server(tls=tls, pop3=True,
                      extra={"auth": {"allow_plaintext_on_loopback": "yes"}})
    deliver(srv, ALICE, make_message(unique("lb"), DOT_BODY))
    rows = srv.messages(ALICE)
    c = srv.pop3()
    caps = c.capa()
    assert "USER" in caps
    assert ("STLS" in caps) == tls
    sasl = [x for x in caps if x.startswith("SASL ")]
    assert len(sasl) == 1 and "PLAIN" in sasl[0].split(), caps
    assert "SCRAM-SHA-256-PLUS" not in sasl[0].split()  # no channel binding without TLS
    c.login(ALICE, PASSWORDS[ALICE])
    st, data, _ = c.multi("RETR 1")
    assert data == srv.show(ALICE, "INBOX", rows[0]["uid"])
    c.quit()
    c = srv.pop3()
    st, verified = scram_pop3(c, BOB, PASSWORDS[BOB])
    assert st == "+OK Logged in, 0 messages (0 octets)" and verified
    c.quit()
    p = POP3Name(srv.pop3_port)
    p.user(BOB)
    assert p.pass_(PASSWORDS[BOB]) == b"+OK Logged in, 0 messages (0 octets)"
    p.quit()


# --------------------------------------------------------------------------
# STLS injection


def test_stls_injection(pop):
    user, pw = new_account(pop)
    c = pop.pop3()
    c.send("STLS\r\nCAPA\r\n")
    assert c.read_line() == "+OK Begin TLS negotiation"
    dropped = c.tls(pop.context())
    assert dropped == b"", "plaintext after +OK to STLS: %r" % dropped
    # the CAPA sent before the handshake must not be answered inside TLS
    assert c.pending(1.0) == b""
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    c.login(user, pw)
    c.quit()


def test_stls_injection_of_login(pop):
    user, pw = new_account(pop)
    c = pop.pop3()
    c.send("STLS\r\nUSER %s\r\nPASS %s\r\nSTAT\r\n" % (user, pw))
    assert c.read_line() == "+OK Begin TLS negotiation"
    assert c.tls(pop.context()) == b""
    assert c.pending(1.0) == b""
    assert c.cmd("STAT") == NOT_VALID   # nothing of the injection ran
    c.login(user, pw)
    c.quit()


# --------------------------------------------------------------------------
# [pop3] expire, login_delay


def test_capa_expire_and_login_delay(make_server):
    srv = make_server(tls=True, pop3=True,
                      extra={"pop3": {"expire": "30", "login_delay": "1h"}})
    c = srv.pop3(tls="implicit")
    caps = c.capa()
    assert "EXPIRE 30" in caps and "EXPIRE NEVER" not in caps, caps
    assert "LOGIN-DELAY 3600" in caps, caps
    c.login(ALICE, PASSWORDS[ALICE])
    c.quit()
    c = srv.pop3(tls="implicit")
    assert c.cmd("USER " + ALICE) == "+OK"
    assert c.cmd("PASS " + PASSWORDS[ALICE]) == \
        "-ERR [LOGIN-DELAY] Minimum time between logins not reached"
    # another account is not affected
    c.login(BOB, PASSWORDS[BOB])
    c.quit()


def test_expire_never_explicit(make_server):
    srv = make_server(tls=True, pop3=True, extra={"pop3": {"expire": "never"}})
    c = srv.pop3(tls="implicit")
    caps = c.capa()
    assert "EXPIRE NEVER" in caps and not any(x.startswith("LOGIN-DELAY") for x in caps)
    c.quit()


@pytest.mark.parametrize("key,value", [("expire", "soon"), ("expire", "-1"),
                                       ("login_delay", "1x"), ("nosuchkey", "1")])
def test_pop3_config_errors(make_server, key, value):
    srv = make_server(tls=True, pop3=True, start=False, setup=False,
                      extra={"pop3": {key: value}})
    p = srv.cli("check", check=False)
    assert p.returncode != 0
    err = p.stderr.decode("utf-8", "replace")
    assert re.search(r"hermod\.conf:\d+: ", err), err
    assert key in err, err


# --------------------------------------------------------------------------
# more AUTH, throttling, limits


def test_auth_login_if_offered(pop):
    c = pop.pop3(tls="implicit")
    caps = c.capa()
    assert [x for x in caps if x.startswith("SASL ")] == [DEFAULT_SASL], caps
    user, pw = new_account(pop)
    st = c.cmd("AUTH LOGIN")
    assert st.startswith("+ "), st
    assert base64.b64decode(st[2:]).lower().startswith(b"username"), st
    st = c.cmd(b64(user))
    assert st.startswith("+ "), st
    assert base64.b64decode(st[2:]).lower().startswith(b"password"), st
    assert c.cmd(b64(pw)) == "+OK Logged in, 0 messages (0 octets)"
    c.quit()


def test_scram_cancel_midway(pop):
    user, pw = new_account(pop)
    c = pop.pop3(tls="implicit")
    st = c.cmd("AUTH SCRAM-SHA-256 " + b64("n,,n=%s,r=abcdefghijklmnop" % user))
    assert st.startswith("+ "), st
    assert c.cmd("*") == "-ERR Authentication cancelled"
    st = c.cmd("AUTH SCRAM-SHA-256 " + b64("garbage"))
    assert st.startswith("-ERR "), st
    c.login(user, pw)
    c.quit()


def test_too_many_auth_failures(make_server):
    srv = make_server(tls=True, pop3=True,
                      extra={"auth": {"max_failures": "3", "max_delay": "0"}})
    c = srv.pop3(tls="implicit")
    for _ in range(3):
        assert c.cmd("USER " + ALICE) == "+OK"
        assert c.cmd("PASS wrong") == AUTH_FAILED
    c.close()
    too_many = "-ERR [SYS/TEMP] Too many failed authentications, try again later"
    c = srv.pop3(tls="implicit")
    assert c.cmd("USER " + ALICE) == "+OK"
    assert c.cmd("PASS " + PASSWORDS[ALICE]) == too_many
    assert c.cmd("AUTH PLAIN " + plain_response(BOB, PASSWORDS[BOB])) == too_many
    c.close()


def test_idle_timeout(make_server):
    srv = make_server(tls=True, pop3=True, limits={"idle_timeout": "1s"})
    c = srv.pop3(tls="implicit")
    assert c.wait_closed() == b"-ERR Timeout\r\n"
    c = srv.pop3(tls="implicit")
    c.login(ALICE, PASSWORDS[ALICE])
    assert c.wait_closed() == b"-ERR Timeout\r\n"
    # nothing was held: the lock is free again
    c = srv.pop3(tls="implicit")
    c.login(ALICE, PASSWORDS[ALICE])
    c.quit()


def test_connection_limit_per_ip(make_server):
    srv = make_server(pop3=True, limits={"max_connections_per_ip": "2"},
                      extra={"auth": {"allow_plaintext_on_loopback": "yes"}})
    a, b = srv.pop3(), srv.pop3()
    c = POP3Client(srv.host, srv.pop3_port, greet=False)
    assert c.wait_closed() == b"-ERR [SYS/TEMP] Too many connections\r\n"
    a.quit()
    b.quit()
