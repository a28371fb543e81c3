"""POP3 smoke test (issue 4): poplib against a real hermod on loopback.

Login with the loopback plaintext exception, STAT/LIST/RETR byte for byte
against `hermod message show`, DELE + QUIT removes, a drop without QUIT keeps
everything, the maildrop lock, and a few exact error replies from
docs/pop3.md. The full suite (fetchmail, curl, STLS, SASL) lives elsewhere."""

import poplib
import socket

import pytest

from conftest import (ALICE, BOB, PASSWORDS, DELIVERED_RE, b64, free_port, make_message,
                      plain_response, unique)


class POP3_SSLName(poplib.POP3_SSL):
    """POP3_SSL to 127.0.0.1 verifying the certificate for mx.example.test."""

    def _create_socket(self, timeout):
        sock = poplib.POP3._create_socket(self, timeout)
        return self.context.wrap_socket(sock, server_hostname="mx.example.test")


def pop3_server(make_server, **kw):
    port = free_port()
    extra = {"listen": {"pop3": "127.0.0.1:%d" % port},
             "auth": {"allow_plaintext_on_loopback": "yes", "max_delay": "1"}}
    srv = make_server(extra=extra, **kw)
    srv.pop3_port = port
    return srv


def login(srv, user=ALICE):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    assert p.getwelcome() == b"+OK hermod POP3 server ready"
    assert p.user(user) == b"+OK"
    resp = p.pass_(PASSWORDS[user])
    assert resp.startswith(b"+OK Logged in, "), resp
    return p


def deliver_some(srv, n, to=ALICE):
    subjects = []
    for i in range(n):
        s = unique("pop")
        # a line starting with '.' checks the dot-stuffing round trip
        body = b"line one\r\n.dotted line\r\n..two dots\r\nlast\r\n"
        reply = srv.deliver([to], make_message(s, body, to=to))
        assert DELIVERED_RE.match(reply.line), reply
        subjects.append(s)
    return subjects


def test_retrieve_byte_exact(make_server):
    srv = pop3_server(make_server)
    deliver_some(srv, 3)
    rows = srv.messages(ALICE)
    assert len(rows) == 3
    p = login(srv)
    total = sum(r["size"] for r in rows)
    assert p.stat() == (3, total)
    resp, listing, _ = p.list()
    assert resp == b"+OK 3 messages (%d octets)" % total
    assert listing == [b"%d %d" % (i + 1, r["size"]) for i, r in enumerate(rows)]
    assert p.list(2) == b"+OK 2 %d" % rows[1]["size"]
    resp, uidls, _ = p.uidl()
    assert resp == b"+OK"
    assert len(uidls) == 3 and len(set(u.split()[1] for u in uidls)) == 3
    for i, r in enumerate(rows):
        stored = srv.show(ALICE, "INBOX", r["uid"])
        resp, lines, octets = p.retr(i + 1)
        assert resp == b"+OK %d octets" % r["size"]
        # poplib un-stuffs the dots and strips CRLF; rebuild the message
        got = b"".join(l + b"\r\n" for l in lines)
        assert got == stored
        assert len(stored) == r["size"]
    resp, lines, _ = p.top(1, 1)
    assert resp == b"+OK"
    head = srv.show(ALICE, "INBOX", rows[0]["uid"]).split(b"\r\n\r\n", 1)[0]
    assert b"".join(l + b"\r\n" for l in lines) == head + b"\r\n\r\nline one\r\n"
    assert p.quit() == b"+OK Bye, 0 messages deleted"
    assert len(srv.messages(ALICE)) == 3


def test_dele_quit_removes_and_drop_keeps(make_server):
    srv = pop3_server(make_server)
    deliver_some(srv, 3)
    rows = srv.messages(ALICE)

    # drop without QUIT: nothing deleted
    p = login(srv)
    assert p.dele(1) == b"+OK Message 1 deleted"
    p.close()  # no QUIT: closes the file and the socket
    p = login(srv)  # the lock is released when the dropped session ends
    assert p.stat()[0] == 3
    assert p.dele(1) == b"+OK Message 1 deleted"
    with pytest.raises(poplib.error_proto) as e:
        p.retr(1)
    assert e.value.args[0] == b"-ERR Message 1 already deleted"
    assert p.stat() == (2, rows[1]["size"] + rows[2]["size"])
    assert p.rset() == b"+OK 3 messages (%d octets)" % sum(r["size"] for r in rows)
    assert p.dele(1) == b"+OK Message 1 deleted"
    assert p.dele(3) == b"+OK Message 3 deleted"
    assert p.quit() == b"+OK Bye, 2 messages deleted"
    left = srv.messages(ALICE)
    assert [r["uid"] for r in left] == [rows[1]["uid"]]


def test_lock_and_errors(make_server):
    srv = pop3_server(make_server)
    deliver_some(srv, 1)
    p = login(srv)
    q = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    q.user(ALICE)
    with pytest.raises(poplib.error_proto) as e:
        q.pass_(PASSWORDS[ALICE])
    assert e.value.args[0] == b"-ERR [IN-USE] Mailbox is locked by another POP3 session"
    # another account is not affected
    q.user(BOB)
    assert q.pass_(PASSWORDS[BOB]) == b"+OK Logged in, 0 messages (0 octets)"
    assert q.quit() == b"+OK Bye, 0 messages deleted"

    for cmd, want in [(b"RETR 9", b"-ERR No such message"),
                      (b"RETR 0", b"-ERR No such message"),
                      (b"RETR x", b"-ERR No such message"),
                      (b"RETR", b"-ERR Syntax error"),
                      (b"XYZZY", b"-ERR Unknown command"),
                      (b"USER bob", b"-ERR Command not valid in this state"),
                      (b"NOOP", b"+OK")]:
        p._putcmd(cmd.decode())
        assert p._getline()[0] == want, cmd
    p.quit()

    # wrong password, PASS without USER, overlong line
    r = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    r.user(ALICE)
    with pytest.raises(poplib.error_proto) as e:
        r.pass_("wrong")
    assert e.value.args[0] == b"-ERR [AUTH] Authentication failed"
    r._putcmd("PASS x")
    assert r._getline()[0] == b"-ERR Command not valid in this state"
    r._putcmd("NOOP " + "x" * 300)
    assert r._getline()[0] == b"-ERR Line too long"
    assert r.quit() == b"+OK Bye"


def test_capa_and_pipelining(make_server):
    srv = pop3_server(make_server)
    deliver_some(srv, 2)
    p = login(srv)
    caps = p.capa()
    for c in ("TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "USER"):
        assert c in caps, caps
    assert caps["EXPIRE"] == ["NEVER"]
    assert caps["IMPLEMENTATION"] == ["hermod"]
    assert "PLAIN" in caps["SASL"]
    p.quit()
    # all commands in one write: replies in order
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=30) as s:
        s.sendall(b"USER %s\r\nPASS %s\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nNOOP\r\nQUIT\r\n"
                  % (ALICE.encode(), PASSWORDS[ALICE].encode()))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"+OK hermod POP3 server ready\r\n+OK\r\n+OK Logged in, 2 messages")
    assert data.count(b"\r\n..dotted line\r\n") == 2
    assert data.endswith(b"+OK\r\n+OK Bye, 0 messages deleted\r\n")


def test_tls_stls_and_sasl(make_server):
    port, sport = free_port(), free_port()
    srv = make_server(tls=True, extra={"listen": {"pop3": "127.0.0.1:%d" % port,
                                                   "pop3s": "127.0.0.1:%d" % sport},
                                       "auth": {"max_delay": "1"}})
    deliver_some(srv, 1)
    ctx = srv.context()

    # before TLS (no loopback exception): STLS offered, no passwords
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    for cmd in ("USER %s" % ALICE, "PASS x", "AUTH PLAIN"):
        p._putcmd(cmd)
        assert p._getline()[0] == b"-ERR [AUTH] Plaintext authentication disallowed without TLS"
    # STLS injection: a command pipelined behind STLS must not run inside TLS
    p._putcmd("STLS\r\nUSER injected")
    assert p._getline()[0] == b"+OK Begin TLS negotiation"
    p.sock = ctx.wrap_socket(p.sock, server_hostname="mx.example.test")
    p.file = p.sock.makefile("rb")
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps
    assert "SCRAM-SHA-256" in caps["SASL"] and "PLAIN" in caps["SASL"]
    p._putcmd("PASS x")  # USER injected was discarded
    assert p._getline()[0] == b"-ERR Command not valid in this state"
    p._putcmd("STLS")
    assert p._getline()[0] == b"-ERR Command not valid in this state"
    p._putcmd("AUTH PLAIN " + plain_response(ALICE, PASSWORDS[ALICE]))
    assert p._getline()[0] == b"+OK Logged in, 1 messages (%d octets)" % \
        srv.messages(ALICE)[0]["size"]
    assert p.quit() == b"+OK Bye, 0 messages deleted"

    # pop3s with SCRAM-SHA-256 through poplib's raw commands
    import hashlib, hmac, base64, os as _os
    q = POP3_SSLName("127.0.0.1", sport, timeout=30, context=ctx)
    nonce = base64.b64encode(_os.urandom(12)).decode()
    first_bare = "n=%s,r=%s" % (ALICE, nonce)
    q._putcmd("AUTH SCRAM-SHA-256 " + b64("n,," + first_bare))
    line = q._getline()[0]
    assert line.startswith(b"+ ")
    server_first = base64.b64decode(line[2:]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORDS[ALICE].encode(),
                                 base64.b64decode(attrs["s"]), int(attrs["i"]))
    ckey = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    skey = hashlib.sha256(ckey).digest()
    final_wo = "c=biws,r=%s" % attrs["r"]
    auth_msg = ",".join([first_bare, server_first, final_wo]).encode()
    sig = hmac.new(skey, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    q._putcmd(b64(final_wo + ",p=" + base64.b64encode(proof).decode()))
    line = q._getline()[0]
    assert line.startswith(b"+ ")  # server-final as a last challenge
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    want_v = base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest())
    assert base64.b64decode(line[2:]) == b"v=" + want_v
    q._putcmd("")
    assert q._getline()[0].startswith(b"+OK Logged in, 1 messages")
    assert q.quit() == b"+OK Bye, 0 messages deleted"


def test_large_message_pipelined_and_shutdown(make_server):
    srv = pop3_server(make_server)
    # ~3 MB with many dot-started lines, twice
    body = b"".join(b".%06d %s\r\n" % (i, b"x" * 60) for i in range(45000))
    for _ in range(2):
        reply = srv.deliver([ALICE], make_message(unique("big"), body))
        assert DELIVERED_RE.match(reply.line), reply
    rows = srv.messages(ALICE)
    stored = [srv.show(ALICE, "INBOX", r["uid"]) for r in rows]
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=30) as s:
        s.sendall(b"USER %s\r\nPASS %s\r\nRETR 1\r\nRETR 2\r\nSTAT\r\n"
                  % (ALICE.encode(), PASSWORDS[ALICE].encode()))
        want_tail = b"+OK 2 %d\r\n" % sum(r["size"] for r in rows)
        buf = bytearray()
        while not buf.endswith(want_tail):
            chunk = s.recv(4096)  # a slow reader: the server must hold back
            assert chunk, bytes(buf[-200:])
            buf += chunk
        parts = bytes(buf).split(b"\r\n", 4)
        assert parts[3] == b"+OK %d octets" % rows[0]["size"]
        stuffed = [b"\r\n".join((b"." + l) if l.startswith(b".") else l
                                for l in m.split(b"\r\n")) for m in stored]
        assert parts[4] == (stuffed[0] + b".\r\n+OK %d octets\r\n" % rows[1]["size"]
                            + stuffed[1] + b".\r\n" + want_tail)
        # an idle session is told when the server stops
        srv.proc.send_signal(__import__("signal").SIGTERM)
        rest = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert rest == b"-ERR [SYS/TEMP] Shutting down\r\n"
    assert srv.stop() == 0


def test_login_delay_and_expire(make_server):
    port = free_port()
    srv = make_server(extra={"listen": {"pop3": "127.0.0.1:%d" % port},
                             "auth": {"allow_plaintext_on_loopback": "yes"},
                             "pop3": {"expire": "30", "login_delay": "1h"}})
    srv.pop3_port = port
    p = login(srv)
    caps = p.capa()
    assert caps["EXPIRE"] == ["30"] and caps["LOGIN-DELAY"] == ["3600"]
    assert p.quit() == b"+OK Bye, 0 messages deleted"
    q = poplib.POP3("127.0.0.1", port, timeout=30)
    q.user(ALICE)
    with pytest.raises(poplib.error_proto) as e:
        q.pass_(PASSWORDS[ALICE])
    assert e.value.args[0] == b"-ERR [LOGIN-DELAY] Minimum time between logins not reached"
    q.user(BOB)
    assert q.pass_(PASSWORDS[BOB]).startswith(b"+OK Logged in")
    q.quit()


def test_half_close_after_quit_still_deletes_and_answers(make_server):
    # USER/PASS/DELE/QUIT pipelined, then the client closes its sending side:
    # every reply still arrives and the deletion is made.
    srv = pop3_server(make_server)
    deliver_some(srv, 1)
    before = len(srv.messages(ALICE))
    with socket.create_connection((srv.host, srv.pop3_port), timeout=30) as s:
        s.recv(1000)
        s.sendall(("USER %s\r\nPASS %s\r\nDELE 1\r\nQUIT\r\n"
                   % (ALICE, PASSWORDS[ALICE])).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    lines = data.decode().split("\r\n")
    assert lines[-2].startswith("+OK Bye, 1 messages deleted"), lines
    assert len(srv.messages(ALICE)) == before - 1
