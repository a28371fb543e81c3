"""SMTP AUTH (RFC 4954) on the submission listeners (issue 3): PLAIN (both
forms), LOGIN, SCRAM-SHA-256 against an independent client written here from
RFC 5802/7677, SCRAM-SHA-256-PLUS with tls-exporter channel binding (RFC 9266)
through a Node.js client (tests/npm/scram_plus.js), plaintext refused before
TLS (and the loopback exception), the error replies of docs/smtp-replies.md,
brute-force throttling per IP and per account, imported crypt hashes
(SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT), and real clients: swaks and curl."""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from conftest import (ALICE, AUTH_FAILED, AUTH_OK, BOB, HOSTNAME, PASSWORDS, QUEUED_RE,
                      SMTPName, SMTP_SSLName, b64, make_message, module_server,
                      plain_response, run_node, unique)

ALL_MECHS = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN"
AUTH_MECHS_TLS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"}
AUTH_MECHS_DEFAULT = ["SCRAM-SHA-256", "PLAIN", "LOGIN"]
UNRECOGNIZED = "504 5.5.4 Unrecognized authentication type"
AUTH_MECHS_LOOPBACK_PLAIN = {"SCRAM-SHA-256", "PLAIN", "LOGIN"}
TOO_MANY = "454 4.7.0 Too many failed authentications, try again later"
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"

CAROL = "carol@example.test"
CAROL_PW = "carol-imported-pw"


def auth_mechs(reply):
    for line in reply.lines[1:]:
        words = line[4:].split()
        if words and words[0].upper() == "AUTH":
            return set(w.upper() for w in words[1:])
    return None


@pytest.fixture(scope="module")
def sub(hermod_bin, tls_cert):
    """TLS + submission server; throttling limits high enough not to be hit
    by the failures this module makes on purpose (throttling has its own
    servers below). Every mechanism is enabled, SCRAM-SHA-256-PLUS too (off
    by default)."""
    yield from module_server(hermod_bin, "auth", tls=tls_cert, submission=True,
                             extra={"auth": {"max_failures": "1000",
                                             "account_max_failures": "1000",
                                             "mechanisms": ALL_MECHS}})


# ---------------------------------------------------------------- SCRAM client


def _saslname(s):
    return s.replace("=", "=3D").replace(",", "=2C")


class ScramResult:
    def __init__(self, final, server_verified, replies):
        self.final = final                    # the last reply line
        self.server_verified = server_verified  # v= matched (None: none received)
        self.replies = replies


def scram_sha256(client, user, password, initial_response=True, nonce=None, final_answer=""):
    """RFC 5802 / RFC 7677 SCRAM-SHA-256 without channel binding ("n,,"),
    over an SMTP session. Returns a ScramResult; asserts the server-first
    message is well formed."""
    gs2 = "n,,"
    cnonce = nonce or base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=%s,r=%s" % (_saslname(user), cnonce)
    replies = []
    if initial_response:
        r = client.cmd("AUTH SCRAM-SHA-256 " + b64(gs2 + first_bare))
    else:
        r = client.cmd("AUTH SCRAM-SHA-256")
        replies.append(r)
        assert r.line == "334 ", r
        r = client.cmd(b64(gs2 + first_bare))
    replies.append(r)
    if r.code != 334:
        return ScramResult(r.line, None, replies)
    server_first = base64.b64decode(r.line[4:]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce), server_first
    salt = base64.b64decode(attrs["s"])
    iters = int(attrs["i"])
    assert iters >= 4096, "RFC 7677: iteration count at least 4096, got %d" % iters
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_no_proof = "c=%s,r=%s" % (b64(gs2), attrs["r"])
    auth_message = ("%s,%s,%s" % (first_bare, server_first, final_no_proof)).encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    server_sig = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    r = client.cmd(b64("%s,p=%s" % (final_no_proof, base64.b64encode(proof).decode())))
    replies.append(r)
    verified = None
    if r.code == 334:
        server_final = base64.b64decode(r.line[4:]).decode()
        if server_final.startswith("v="):
            verified = base64.b64decode(server_final[2:]) == server_sig
        else:
            verified = False  # e=...
        r = client.cmd(final_answer)
        replies.append(r)
    return ScramResult(r.line, verified, replies)


# ---------------------------------------------------------------- EHLO


def test_ehlo_587_before_tls_no_auth(sub):
    with sub.connect(port=sub.submission_port) as c:
        c.greet()
        r = c.ehlo()
        assert "250-STARTTLS" in r.lines
        assert auth_mechs(r) is None, r
        c.quit()


def test_ehlo_587_after_tls_lists_mechanisms(sub):
    with sub.connect_587(ehlo=False) as c:
        r = c.ehlo()
        assert auth_mechs(r) == AUTH_MECHS_TLS, r
        assert not any(l[4:].upper().startswith("STARTTLS") for l in r.lines)
        c.quit()


def test_ehlo_465_lists_mechanisms(sub):
    with sub.connect_465(ehlo=False) as c:
        r = c.ehlo()
        assert auth_mechs(r) == AUTH_MECHS_TLS, r
        c.quit()


def ehlo_auth_line(reply):
    return [l[4:] for l in reply.lines if l[4:].upper().startswith("AUTH ")]


def test_default_mechanisms_leave_out_scram_plus(make_server):
    """[auth] mechanisms defaults to SCRAM-SHA-256 PLAIN LOGIN: GNU SASL
    clients (mutt) pick -PLUS whenever offered and cannot do it. -PLUS is
    then unknown, and a SCRAM "y" flag is no downgrade (-PLUS was not
    offered), so such a client logs in."""
    srv = make_server(tls=True, submission=True)
    for connect in (srv.connect_465, srv.connect_587):
        with connect(ehlo=False) as c:
            r = c.ehlo()
            assert ehlo_auth_line(r) == ["AUTH " + " ".join(AUTH_MECHS_DEFAULT)], r
            r = c.cmd("AUTH SCRAM-SHA-256-PLUS " +
                      b64("p=tls-exporter,,n=%s,r=abcdefghijkl" % ALICE))
            assert r.line == UNRECOGNIZED, r
            res = scram_sha256(c, ALICE, PASSWORDS[ALICE])
            assert res.final == AUTH_OK and res.server_verified is True, res.replies
            c.quit()
    with srv.connect_465() as c:
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64("y,,n=%s,r=abcdefghijkl" % ALICE))
        assert r.code == 334, r
        server_first = base64.b64decode(r.line[4:]).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", PASSWORDS[ALICE].encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_no_proof = "c=%s,r=%s" % (b64("y,,"), attrs["r"])
        auth_message = ("n=%s,r=abcdefghijkl,%s,%s" % (ALICE, server_first,
                                                       final_no_proof)).encode()
        sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        r = c.cmd(b64("%s,p=%s" % (final_no_proof, base64.b64encode(proof).decode())))
        assert r.code == 334, r
        assert c.cmd("").line == AUTH_OK
        c.quit()


def test_reload_applies_mechanisms(make_server):
    """A SIGHUP reload with a new [auth] mechanisms list changes what new
    sessions are offered and accept."""
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"mechanisms": "PLAIN LOGIN"}})
    with srv.connect_465(ehlo=False) as c:
        assert ehlo_auth_line(c.ehlo()) == ["AUTH PLAIN LOGIN"]
        c.quit()
    conf = open(srv.config_path).read()
    assert "mechanisms = PLAIN LOGIN" in conf
    before = srv.stderr_bytes().decode().count("event=reloaded")
    with open(srv.config_path, "w") as f:
        f.write(conf.replace("mechanisms = PLAIN LOGIN", "mechanisms = SCRAM-SHA-256"))
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while srv.stderr_bytes().decode().count("event=reloaded") <= before:
        assert time.monotonic() < deadline, srv.stderr_tail()
        time.sleep(0.05)
    with srv.connect_465(ehlo=False) as c:
        assert ehlo_auth_line(c.ehlo()) == ["AUTH SCRAM-SHA-256"]
        assert c.cmd("AUTH PLAIN").line == UNRECOGNIZED
        res = scram_sha256(c, ALICE, PASSWORDS[ALICE])
        assert res.final == AUTH_OK, res.replies
        c.quit()


def test_mechanisms_configured(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"mechanisms": "login,PLAIN"}})
    with srv.connect_465(ehlo=False) as c:
        r = c.ehlo()
        assert ehlo_auth_line(r) == ["AUTH PLAIN LOGIN"], r
        assert c.cmd("AUTH SCRAM-SHA-256").line == UNRECOGNIZED
        assert c.cmd("AUTH SCRAM-SHA-256-PLUS").line == UNRECOGNIZED
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    srv2 = make_server(tls=True, submission=True,
                       extra={"auth": {"mechanisms": "SCRAM-SHA-256"}})
    with srv2.connect_465(ehlo=False) as c:
        r = c.ehlo()
        assert ehlo_auth_line(r) == ["AUTH SCRAM-SHA-256"], r
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == UNRECOGNIZED
        assert c.cmd("AUTH LOGIN").line == UNRECOGNIZED
        res = scram_sha256(c, ALICE, PASSWORDS[ALICE])
        assert res.final == AUTH_OK, res.replies
        c.quit()


def test_no_auth_on_port_25(sub):
    with sub.connect() as c:
        c.greet()
        r = c.ehlo()
        assert auth_mechs(r) is None
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == "502 5.5.1 Command not implemented"
        c.starttls(sub.context())
        r = c.ehlo()
        assert auth_mechs(r) is None
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == "502 5.5.1 Command not implemented"
        assert c.cmd("AUTH LOGIN").line == "502 5.5.1 Command not implemented"
        c.quit()


# ---------------------------------------------------------------- PLAIN / LOGIN


@pytest.mark.parametrize("port", ["587", "465"])
def test_plain_initial_response(sub, port):
    c = sub.connect_587() if port == "587" else sub.connect_465()
    with c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


def test_plain_empty_challenge(sub):
    with sub.connect_587() as c:
        r = c.cmd("AUTH PLAIN")
        assert r.line == "334 ", r
        assert c.cmd(plain_response(BOB, PASSWORDS[BOB])).line == AUTH_OK
        c.quit()


def test_plain_empty_initial_response(sub):
    # RFC 4954 4: "=" is an initial response of zero length
    with sub.connect_587() as c:
        r = c.cmd("AUTH PLAIN =")
        assert r.line == "334 ", r
        assert c.cmd(plain_response(BOB, PASSWORDS[BOB])).line == AUTH_OK
        c.quit()


def test_plain_authzid_same_as_user(sub):
    with sub.connect_465() as c:
        r = c.cmd("AUTH PLAIN " + plain_response(ALICE, PASSWORDS[ALICE], authzid=ALICE))
        assert r.line == AUTH_OK
        c.quit()


def test_plain_authzid_other_user_refused(sub):
    with sub.connect_465() as c:
        r = c.cmd("AUTH PLAIN " + plain_response(ALICE, PASSWORDS[ALICE], authzid=BOB))
        assert r.line == AUTH_FAILED, r
        c.quit()


@pytest.mark.parametrize("user,password", [
    (ALICE, "wrong-password"),
    (ALICE, PASSWORDS[BOB]),
    ("nobody@example.test", "whatever"),
    ("alice@other.test", PASSWORDS[ALICE]),
    (ALICE, ""),
])
def test_plain_bad_credentials(sub, user, password):
    with sub.connect_587() as c:
        assert c.auth_plain(user, password).line == AUTH_FAILED
        # not authenticated: MAIL still needs AUTH; a good AUTH then works
        assert c.cmd("MAIL FROM:<%s>" % ALICE).line == "530 5.7.0 Authentication required"
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_login_mechanism(sub):
    with sub.connect_587() as c:
        r = c.cmd("AUTH LOGIN")
        assert r.code == 334, r
        assert base64.b64decode(r.line[4:]).lower().startswith(b"username"), r
        r = c.cmd(b64(ALICE))
        assert r.code == 334, r
        assert base64.b64decode(r.line[4:]).lower().startswith(b"password"), r
        assert c.cmd(b64(PASSWORDS[ALICE])).line == AUTH_OK
        c.quit()


def test_login_with_initial_response(sub):
    with sub.connect_465() as c:
        r = c.cmd("AUTH LOGIN " + b64(BOB))
        assert r.code == 334, r
        assert c.cmd(b64(PASSWORDS[BOB])).line == AUTH_OK
        c.quit()


def test_login_bad_password(sub):
    with sub.connect_587() as c:
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(ALICE)).code == 334
        assert c.cmd(b64("not-the-password")).line == AUTH_FAILED
        c.quit()


def test_smtplib_login(sub):
    with SMTPName(sub.host, sub.submission_port) as s:
        s.starttls(context=sub.context())
        s.ehlo()
        code, resp = s.login(ALICE, PASSWORDS[ALICE])
        assert code == 235 and resp == b"2.7.0 Authentication successful"
    with SMTP_SSLName(sub.host, sub.submissions_port, context=sub.context()) as s:
        s.ehlo()
        s.user, s.password = BOB, PASSWORDS[BOB]
        code, resp = s.auth("LOGIN", s.auth_login)
        assert code == 235, resp


# ---------------------------------------------------------------- SCRAM-SHA-256


@pytest.mark.parametrize("initial_response", [True, False])
def test_scram_sha256_good(sub, initial_response):
    with sub.connect_587() as c:
        res = scram_sha256(c, ALICE, PASSWORDS[ALICE], initial_response=initial_response)
        assert res.final == AUTH_OK, res.replies
        assert res.server_verified is True, "server signature (v=) missing or wrong: %r" % (
            res.replies,)
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


def test_scram_sha256_465(sub):
    with sub.connect_465() as c:
        res = scram_sha256(c, BOB, PASSWORDS[BOB])
        assert res.final == AUTH_OK, res.replies
        assert res.server_verified is True
        c.quit()


@pytest.mark.parametrize("user,password", [
    (ALICE, "wrong-password"),
    ("nobody@example.test", "whatever"),
])
def test_scram_sha256_bad(sub, user, password):
    with sub.connect_587() as c:
        res = scram_sha256(c, user, password)
        assert res.final == AUTH_FAILED, res.replies
        assert res.server_verified is not True
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_scram_cancel_at_server_final_then_auth_again(sub):
    # Cancelling after the server's last SCRAM message ends that exchange; a
    # new AUTH starts afresh (and the server stays up for everyone).
    with sub.connect_587() as c:
        res = scram_sha256(c, ALICE, PASSWORDS[ALICE], final_answer="*")
        assert res.server_verified is True
        assert res.final == "501 5.7.0 Authentication cancelled", res.replies
        r = c.cmd("AUTH PLAIN")
        assert r.line == "334 ", r
        r = c.cmd("")
        assert r.line == "501 5.5.4 Malformed authentication data", r
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    sub.assert_serves()


def test_scram_salt_is_per_user_and_stable(sub):
    """The server-first message carries the stored salt: the same for the same
    user each time, different between users (keys were made when the password
    was set)."""
    def server_first(user):
        with sub.connect_465() as c:
            r = c.cmd("AUTH SCRAM-SHA-256 " + b64("n,,n=%s,r=abcdefghijkl" % user))
            assert r.code == 334, r
            c.cmd("*")
            c.close()
            return dict(kv.split("=", 1) for kv in
                        base64.b64decode(r.line[4:]).decode().split(","))
    a1, a2, b = server_first(ALICE), server_first(ALICE), server_first(BOB)
    assert a1["s"] == a2["s"]
    assert a1["s"] != b["s"]
    assert a1["r"] != a2["r"]  # fresh server nonce each time


def test_scram_malformed(sub):
    with sub.connect_465() as c:
        # client-first without the GS2 header
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64("n=alice,r=abc"))
        assert r.line == "501 5.5.4 Malformed authentication data", r
        # "y,," / "p=" header on a non-PLUS mechanism, or garbage
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64("garbage"))
        assert r.line == "501 5.5.4 Malformed authentication data", r
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_scram_client_final_nonce_mismatch(sub):
    with sub.connect_465() as c:
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64("n,,n=%s,r=clientnonce123" % ALICE))
        assert r.code == 334
        # wrong nonce (not the server's combined nonce)
        r = c.cmd(b64("c=biws,r=clientnonce123XXX,p=" + b64(b"\0" * 32)))
        assert r.line == AUTH_FAILED, r
        c.quit()


# ---------------------------------------------------------------- SCRAM-SHA-256-PLUS


def _scram_plus(srv, user, password, mode="implicit", bad_cb=False,
                mech="SCRAM-SHA-256-PLUS"):
    port = srv.submissions_port if mode == "implicit" else srv.submission_port
    args = ["--host", srv.host, "--port", port, "--mode", mode, "--servername", HOSTNAME,
            "--ca", srv.cert_path, "--user", user, "--pass", password, "--mech", mech]
    if bad_cb:
        args.append("--bad-cb")
    p = run_node("scram_plus.js", args)
    assert p.returncode == 0, "scram_plus.js failed:\n%s\n%s" % (p.stdout, p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_scram_plus_good(sub, npm_dir, mode):
    out = _scram_plus(sub, ALICE, PASSWORDS[ALICE], mode=mode)
    assert out["tls"] == "TLSv1.3", out
    assert "SCRAM-SHA-256-PLUS" in " ".join(out["ehlo"]), out
    assert out["final"] == AUTH_OK, out
    assert out["server_verified"] is True, out
    assert out["replies"][-1] == "250 2.0.0 Ok", out  # the NOOP after AUTH


def test_scram_plus_bad_password(sub, npm_dir):
    out = _scram_plus(sub, ALICE, "wrong-password")
    assert out["final"] == AUTH_FAILED, out
    assert out["server_verified"] is not True


def test_scram_plus_wrong_channel_binding(sub, npm_dir):
    out = _scram_plus(sub, ALICE, PASSWORDS[ALICE], bad_cb=True)
    assert out["final"] == AUTH_FAILED, out
    assert out["server_verified"] is not True


def test_scram_plus_node_client_without_binding(sub, npm_dir):
    """The same Node client, plain SCRAM-SHA-256 (cross-checks the Python one)."""
    out = _scram_plus(sub, BOB, PASSWORDS[BOB], mech="SCRAM-SHA-256")
    assert out["final"] == AUTH_OK, out
    assert out["server_verified"] is True


def test_scram_plus_flag_y_refused(sub):
    """A client that says "y" (supports binding, thinks the server does not)
    while the server advertises -PLUS is a downgrade attack (RFC 5802 6):
    refused at once, on the client-first message."""
    with sub.connect_465() as c:
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64("y,,n=%s,r=abcdefghijkl" % ALICE))
        assert r.line == AUTH_FAILED, r
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_scram_plus_not_offered_without_tls(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"allow_plaintext_on_loopback": "yes"}})
    with srv.connect(port=srv.submission_port) as c:
        c.greet()
        r = c.ehlo()
        assert auth_mechs(r) == AUTH_MECHS_LOOPBACK_PLAIN, r
        r = c.cmd("AUTH SCRAM-SHA-256-PLUS " + b64("p=tls-exporter,,n=%s,r=abcdefgh" % ALICE))
        assert r.line == UNRECOGNIZED, r
        c.quit()


# ---------------------------------------------------------------- plaintext rules


def test_plaintext_refused_before_tls(sub):
    with sub.connect_587(starttls=False) as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == MUST_STARTTLS
        assert c.cmd("AUTH LOGIN").line == MUST_STARTTLS
        assert c.cmd("AUTH PLAIN").line == MUST_STARTTLS
        # after STARTTLS it works
        c.starttls(sub.context())
        c.ehlo()
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_plaintext_allowed_on_loopback_when_configured(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"allow_plaintext_on_loopback": "yes"}})
    with srv.connect_587(starttls=False) as c:
        assert not c.tls_active
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.mail(ALICE)
        c.rcpt(BOB)
        subject = unique("loopback-plain")
        r = c.data(make_message(subject, sender=ALICE, to=BOB))
        assert QUEUED_RE.match(r.line), r
        c.quit()
    srv.fetch_one(BOB, subject)
    with srv.connect_587(starttls=False) as c:
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(BOB)).code == 334
        assert c.cmd(b64(PASSWORDS[BOB])).line == AUTH_OK
        c.quit()


# ---------------------------------------------------------------- error replies


def test_unknown_mechanism(sub):
    with sub.connect_587() as c:
        for mech in ("CRAM-MD5", "XOAUTH2", "FOO", "SCRAM-SHA-1"):
            assert c.cmd("AUTH " + mech).line == "504 5.5.4 Unrecognized authentication type"
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_auth_without_mechanism(sub):
    with sub.connect_587() as c:
        r = c.cmd("AUTH")
        assert r.code == 501 and r.line.startswith("501 5.5.4 "), r
        c.quit()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "SCRAM-SHA-256"])
def test_cancel(sub, mech):
    before = sub.stderr_bytes().decode("utf-8", "replace").count("event=auth-cancelled")
    with sub.connect_587() as c:
        assert c.cmd("AUTH " + mech).code == 334
        assert c.cmd("*").line == "501 5.7.0 Authentication cancelled"
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    # one log line for the aborted exchange
    lines = [l for l in sub.stderr_bytes().decode("utf-8", "replace").splitlines()
             if "event=auth-cancelled" in l]
    assert len(lines) == before + 1, lines
    assert re.search(r"event=auth-cancelled ip=127\.0\.0\.1 mech=%s user=\"\"$"
                     % re.escape(mech), lines[-1]), lines[-1]


def test_cancel_login_after_username(sub):
    with sub.connect_587() as c:
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(ALICE)).code == 334
        assert c.cmd("*").line == "501 5.7.0 Authentication cancelled"
        c.quit()


@pytest.mark.parametrize("form", ["initial", "challenge"])
def test_bad_base64(sub, form):
    with sub.connect_587() as c:
        if form == "initial":
            r = c.cmd("AUTH PLAIN !!!not*base64!!!")
        else:
            assert c.cmd("AUTH PLAIN").line == "334 "
            r = c.cmd("!!!not*base64!!!")
        assert r.line == "501 5.5.2 Cannot decode response", r
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


def test_plain_malformed(sub):
    with sub.connect_587() as c:
        # no NUL separators
        r = c.cmd("AUTH PLAIN " + b64("alice@example.test"))
        assert r.line == "501 5.5.4 Malformed authentication data", r
        c.quit()


def test_auth_twice(sub):
    with sub.connect_587() as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == "503 5.5.1 Already authenticated"
        assert c.cmd("AUTH LOGIN").line == "503 5.5.1 Already authenticated"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


def test_auth_before_ehlo(sub):
    with sub.connect(port=sub.submissions_port, tls_context=sub.context()) as c:
        c.greet()
        r = c.auth_plain(ALICE, PASSWORDS[ALICE])
        assert r.line.startswith("503 5.5.1 "), r
        c.quit()


def test_starttls_resets_auth_state(sub):
    """A half-done AUTH exchange does not survive anything: after the
    client's '*' and STARTTLS the session starts from scratch."""
    with sub.connect_587(starttls=False) as c:
        assert c.cmd("AUTH PLAIN").line == MUST_STARTTLS
        c.starttls(sub.context())
        r = c.auth_plain(ALICE, PASSWORDS[ALICE])
        assert r.line.startswith("503 5.5.1 "), r  # EHLO needed again
        c.ehlo()
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()


# ---------------------------------------------------------------- throttling


def _fail(srv, user, source):
    with srv.connect_465(source=source) as c:
        r = c.auth_plain(user, "definitely-wrong")
        c.close()
        return r


def test_throttle_per_ip(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"max_failures": "3", "max_delay": "1",
                                      "failure_window": "15m", "lockout": "15m"}})
    for _ in range(3):
        assert _fail(srv, ALICE, "127.0.0.1").line == AUTH_FAILED
    # the right password from the same IP is now refused, on both ports
    with srv.connect_465() as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == TOO_MANY
        c.quit()
    with srv.connect_587() as c:
        assert c.auth_plain(BOB, PASSWORDS[BOB]).line == TOO_MANY
        res = scram_sha256(c, BOB, PASSWORDS[BOB])
        assert res.final == TOO_MANY, res.replies
        c.quit()
    # another client address is not affected
    with srv.connect_465(source="127.0.0.2") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    with srv.connect_587(source="127.0.0.2") as c:
        assert c.auth_plain(BOB, PASSWORDS[BOB]).line == AUTH_OK
        c.quit()
    # every failure is logged with the client's IP and the account
    log = srv.stderr_bytes().decode("utf-8", "replace")
    fails = [l for l in log.splitlines() if "ip=127.0.0.1" in l and ALICE in l]
    assert len(fails) >= 3, log[-3000:]


def test_throttle_per_account_delays_but_never_locks_owner_out(make_server):
    """F4: 6 IPs x 9 wrong passwords (54 failures, over account_max_failures
    50, each IP under its own max_failures 10) used to lock the account out
    for 15 minutes, even for its owner. Now the account is only slowed: its
    owner logs in from the address it used before and from a fresh one, and
    a failure from a fresh address is still answered 535 (after max_delay),
    not refused."""
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"max_failures": "10", "account_max_failures": "50",
                                      "max_delay": "1", "failure_window": "15m",
                                      "lockout": "15m"}})
    with srv.connect_465(source="127.0.0.8") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    attackers = ["127.0.0.%d" % i for i in range(2, 8)]

    def attack(ip):
        return [_fail(srv, ALICE, ip).line for _ in range(9)]

    with concurrent.futures.ThreadPoolExecutor(len(attackers)) as pool:
        results = list(pool.map(attack, attackers))
    assert results == [[AUTH_FAILED] * 9] * len(attackers), results
    # the owner, from the address it logged in from before
    with srv.connect_465(source="127.0.0.8") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    # and from an address it never used
    with srv.connect_587(source="127.0.0.9") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    # an unknown address with a wrong password: slowed, answered, not refused
    assert _fail(srv, ALICE, "127.0.0.10").line == AUTH_FAILED
    # each attacking address is still under its own limit: its 10th failure
    # locks it out, and then even the right password is refused
    assert _fail(srv, ALICE, "127.0.0.2").line == AUTH_FAILED
    with srv.connect_465(source="127.0.0.2") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == TOO_MANY
        c.quit()
    # other accounts from the other attacking addresses are fine
    with srv.connect_465(source="127.0.0.3") as c:
        assert c.auth_plain(BOB, PASSWORDS[BOB]).line == AUTH_OK
        c.quit()
    log = srv.stderr_bytes().decode("utf-8", "replace")
    for ip in attackers:
        n = sum(1 for l in log.splitlines()
                if "event=auth-failed ip=%s " % ip in l and ALICE in l)
        assert n == (10 if ip == "127.0.0.2" else 9), (ip, n, log[-3000:])


def _auth_answered_late(c, user, password, not_before):
    """Sends AUTH PLAIN and returns its reply, checking that none came within
    not_before seconds (a lower bound only: a slow machine answers later, never
    earlier)."""
    c.send("AUTH PLAIN " + plain_response(user, password) + "\r\n")
    early = c.pending(not_before)
    assert early == b"", "answered before the throttle delay: %r" % early
    return c.read_reply()


def test_throttle_right_guess_waits_like_a_failure(make_server):
    """A right password is not told apart by a prompt answer: on an account
    under attack a login from an unknown address waits max_delay (3 s here) as a
    failure would, and so does one from an address with failures of its own;
    the owner's known address is exempt, and the delay never refuses."""
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"max_failures": "10", "account_max_failures": "5",
                                      "max_delay": "3", "failure_window": "15m",
                                      "lockout": "15m"}})
    with srv.connect_465(source="127.0.0.8") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    for _ in range(5):
        assert _fail(srv, ALICE, "127.0.0.2").line == AUTH_FAILED
    # an address that never logged in to the account: waits, then succeeds
    with srv.connect_465(source="127.0.0.9") as c:
        assert _auth_answered_late(c, ALICE, PASSWORDS[ALICE], 1.5).line == AUTH_OK
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    # the attacking address itself, with the right password: waits too
    with srv.connect_465(source="127.0.0.2") as c:
        assert _auth_answered_late(c, ALICE, PASSWORDS[ALICE], 1.5).line == AUTH_OK
        c.quit()
    # the owner's address, and another account from a clean address: answered
    with srv.connect_465(source="127.0.0.8") as c:
        assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
        c.quit()
    with srv.connect_465(source="127.0.0.11") as c:
        assert c.auth_plain(BOB, PASSWORDS[BOB]).line == AUTH_OK
        c.quit()
    srv.assert_serves()


def test_success_does_not_count_as_failure(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"auth": {"max_failures": "3", "max_delay": "1"}})
    assert _fail(srv, ALICE, "127.0.0.1").line == AUTH_FAILED
    assert _fail(srv, ALICE, "127.0.0.1").line == AUTH_FAILED
    for _ in range(5):
        with srv.connect_465() as c:
            assert c.auth_plain(ALICE, PASSWORDS[ALICE]).line == AUTH_OK
            c.quit()


# ---------------------------------------------------------------- imported hashes


def _openssl_passwd(flag, password, salt="abcdefgh"):
    p = subprocess.run(["openssl", "passwd", flag, "-salt", salt, password],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=True)
    return p.stdout.decode().strip()


@pytest.mark.parametrize("scheme,flag,prefix", [
    ("SHA512-CRYPT", "-6", "$6$"),
    ("SHA256-CRYPT", "-5", "$5$"),
])
def test_imported_crypt_hash(make_server, scheme, flag, prefix):
    h = _openssl_passwd(flag, CAROL_PW)
    assert h.startswith(prefix)
    srv = make_server(tls=True, submission=True)
    srv.cli("user", "add", CAROL, "--hash", "{%s}%s" % (scheme, h))
    with srv.connect_587() as c:
        assert c.auth_plain(CAROL, "wrong").line == AUTH_FAILED
        assert c.auth_plain(CAROL, CAROL_PW).line == AUTH_OK
        c.quit()
    with srv.connect_465() as c:
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(CAROL)).code == 334
        assert c.cmd(b64(CAROL_PW)).line == AUTH_OK
        c.quit()
    # no SCRAM keys for an imported hash: SCRAM fails cleanly
    with srv.connect_465() as c:
        res = scram_sha256(c, CAROL, CAROL_PW)
        assert res.final == AUTH_FAILED, res.replies
        assert c.auth_plain(CAROL, CAROL_PW).line == AUTH_OK
        c.quit()
    assert srv.alive()


def test_imported_hash_then_passwd_gets_scram(make_server):
    """Setting a new password stores SCRAM keys, so SCRAM works afterwards."""
    srv = make_server(tls=True, submission=True)
    srv.cli("user", "add", CAROL, "--hash", "{SHA512-CRYPT}" + _openssl_passwd("-6", CAROL_PW))
    srv.cli("user", "passwd", CAROL, "--password-stdin", input="carol-new-pw\n")
    with srv.connect_465() as c:
        res = scram_sha256(c, CAROL, "carol-new-pw")
        assert res.final == AUTH_OK, res.replies
        c.quit()


def test_imported_blf_crypt(make_server):
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd not installed (Debian package apache2-utils)")
    p = subprocess.run(["htpasswd", "-bnBC", "5", "", CAROL_PW], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, check=True)
    h = p.stdout.decode().strip().split(":", 1)[1]
    assert h.startswith("$2")
    srv = make_server(tls=True, submission=True)
    srv.cli("user", "add", CAROL, "--hash", "{BLF-CRYPT}" + h)
    with srv.connect_465() as c:
        assert c.auth_plain(CAROL, "wrong").line == AUTH_FAILED
        assert c.auth_plain(CAROL, CAROL_PW).line == AUTH_OK
        c.quit()


def test_python_crypt_sha512_hash(make_server):
    crypt = pytest.importorskip("crypt")
    h = crypt.crypt(CAROL_PW, crypt.mksalt(crypt.METHOD_SHA512))
    srv = make_server(tls=True, submission=True)
    srv.cli("user", "add", CAROL, "--hash", "{SHA512-CRYPT}" + h)
    with srv.connect_465() as c:
        assert c.auth_plain(CAROL, CAROL_PW).line == AUTH_OK
        c.quit()


def test_bad_hash_rejected_by_cli(make_server):
    srv = make_server(tls=True, submission=True)
    p = srv.cli("user", "add", CAROL, "--hash", "{NOSUCH-SCHEME}xyz", check=False)
    assert p.returncode != 0
    p = srv.cli("user", "add", CAROL, "--hash", "{SHA512-CRYPT}not-a-crypt-hash", check=False)
    assert p.returncode != 0


# ---------------------------------------------------------------- swaks, curl


def _swaks(srv, port, extra, subject, user=ALICE, password=None, to=BOB):
    argv = ["swaks", "--server", "%s:%d" % (srv.host, port), "--from", user, "--to", to,
            "--helo", "client.example.test", "--timeout", "30",
            "--auth-user", user, "--auth-password", password or PASSWORDS[user],
            "--header", "Subject: " + subject, "--header", "From: <%s>" % user,
            "--body", "via swaks"] + extra
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth(sub, mech):
    subject = unique("swaks-" + mech)
    rc, out = _swaks(sub, sub.submission_port, ["--tls", "--auth", mech], subject)
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out, out
    assert re.search(r"250 2\.0\.0 Ok: queued as \S+", out), out
    sub.fetch_one(BOB, subject)


def test_swaks_implicit_tls_auth(sub):
    subject = unique("swaks-465")
    rc, out = _swaks(sub, sub.submissions_port, ["--tls-on-connect", "--auth", "PLAIN"],
                     subject)
    assert rc == 0, out
    sub.fetch_one(BOB, subject)


def test_swaks_bad_password(sub):
    rc, out = _swaks(sub, sub.submission_port, ["--tls", "--auth", "PLAIN"],
                     unique("swaks-bad"), password="nope")
    assert rc != 0
    assert AUTH_FAILED in out, out


def _curl(srv, url_scheme, port, login_options, subject, password=None):
    path = os.path.join(srv.dir, "curl-%s.eml" % uuid.uuid4().hex[:8])
    with open(path, "wb") as f:
        f.write(make_message(subject, b"via curl\r\n", sender=ALICE, to=BOB))
    argv = ["curl", "-sS", "-v", "--max-time", "60",
            "--url", "%s://%s:%d" % (url_scheme, HOSTNAME, port),
            "--resolve", "%s:%d:%s" % (HOSTNAME, port, srv.host),
            "--cacert", srv.cert_path, "--mail-from", ALICE, "--mail-rcpt", BOB,
            "--user", "%s:%s" % (ALICE, password or PASSWORDS[ALICE]),
            "--upload-file", path]
    if url_scheme == "smtp":
        argv.insert(1, "--ssl-reqd")
    if login_options:
        argv += ["--login-options", login_options]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("login_options", [None, "AUTH=PLAIN", "AUTH=LOGIN"])
def test_curl_starttls_587(sub, login_options):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    subject = unique("curl-587")
    rc, out = _curl(sub, "smtp", sub.submission_port, login_options, subject)
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out, out
    sub.fetch_one(BOB, subject)


def test_curl_smtps_465(sub):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    subject = unique("curl-465")
    rc, out = _curl(sub, "smtps", sub.submissions_port, None, subject)
    assert rc == 0, out
    sub.fetch_one(BOB, subject)


def test_curl_bad_password(sub):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    rc, out = _curl(sub, "smtps", sub.submissions_port, "AUTH=PLAIN", unique("curl-bad"),
                    password="wrong")
    assert rc != 0
    assert "535 5.7.8" in out, out
