"""TLS (issue 3): STARTTLS on port 25 (RFC 3207) and implicit TLS on the
submissions listener (RFC 8314), with Python's ssl/smtplib and openssl
s_client as peers. Protocol versions (1.2 minimum, 1.3 by default), the
STARTTLS command-injection class (CVE-2011-0411), failed handshakes, the
replies of docs/smtp-replies.md "TLS and authentication", SNI certificates
from [tls] sni_dir, and certificate reload on SIGHUP."""

import os
import shutil
import signal
import ssl
import subprocess
import time

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, HOSTNAME, PASSWORDS, QUEUED_RE,
                      ConnectionClosed, SMTPClient, SMTP_SSLName, SMTPName, client_context,
                      free_port, make_message, module_server, unique)

EHLO_BASE = [
    "250-" + HOSTNAME,
    "250-PIPELINING",
    "250-SIZE %d" % (40 * 1024 * 1024),
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-DSN",
]
EHLO_NO_TLS = EHLO_BASE + ["250 CHUNKING"]
# inside TLS: REQUIRETLS (RFC 8689), no STARTTLS
EHLO_IN_TLS = EHLO_BASE + ["250-REQUIRETLS", "250 CHUNKING"]
EHLO_WITH_STARTTLS = EHLO_BASE + ["250-STARTTLS", "250 CHUNKING"]


def _keywords(reply):
    return [l[4:].split(" ")[0].upper() for l in reply.lines[1:]]


@pytest.fixture(scope="module")
def tls_server(hermod_bin, tls_cert):
    yield from module_server(hermod_bin, "tls", tls=tls_cert, submission=True)


# ---------------------------------------------------------------- STARTTLS on 25


def test_ehlo_offers_starttls(tls_server):
    with tls_server.connect() as c:
        c.greet()
        r = c.cmd("EHLO client.remote.test")
        # STARTTLS comes before the last line; no AUTH on port 25.
        assert r.lines == EHLO_WITH_STARTTLS
        c.quit()


def test_starttls_then_ehlo_again(tls_server):
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        c.starttls(tls_server.context())
        assert c.tls_active
        assert c.sock.version() == "TLSv1.3"  # both ends offer it
        r = c.cmd("EHLO client.remote.test")
        assert r.lines == EHLO_IN_TLS, r  # no STARTTLS inside TLS, no AUTH on 25
        c.mail()
        c.rcpt(ALICE)
        subject = unique("starttls-raw")
        assert DELIVERED_RE.match(c.data(make_message(subject)).line)
        c.quit()
    tls_server.fetch_one(ALICE, subject)


def test_starttls_smtplib_delivers(tls_server):
    subject = unique("starttls-smtplib")
    msg = make_message(subject, b"over TLS\r\n")
    with SMTPName(tls_server.host, tls_server.port) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, resp = s.starttls(context=tls_server.context())
        assert code == 220 and resp == b"2.0.0 Ready to start TLS"
        assert s.sock.version() == "TLSv1.3"
        s.ehlo()
        assert not s.has_extn("starttls")
        assert not s.has_extn("auth")
        assert s.sendmail("sender@remote.test", [ALICE, BOB], msg) == {}
    tls_server.fetch_one(ALICE, subject)
    tls_server.fetch_one(BOB, subject)


def test_starttls_openssl_s_client(tls_server):
    subject = unique("s-client")
    script = ("EHLO client.remote.test\r\nMAIL FROM:<x@remote.test>\r\n"
              "RCPT TO:<%s>\r\nDATA\r\nSubject: %s\r\n\r\nvia s_client\r\n.\r\nQUIT\r\n"
              % (ALICE, subject))
    # -ign_eof: keep reading after stdin ends; -crlf is not needed (CRLF given).
    p = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-name", "client.remote.test",
         "-connect", "%s:%d" % (tls_server.host, tls_server.port),
         "-servername", HOSTNAME, "-verify_hostname", HOSTNAME,
         "-CAfile", tls_server.cert_path, "-verify_return_error", "-ign_eof"],
        input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "TLSv1.3" in out, out
    assert "250 2.0.0 Ok: delivered as" in out, out
    assert "221 2.0.0 Bye" in out, out
    tls_server.fetch_one(ALICE, subject)


def test_starttls_with_argument(tls_server):
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("STARTTLS foo").line == "501 5.5.4 Syntax: STARTTLS"
        # still plaintext, still usable, and STARTTLS proper works afterwards
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.starttls(tls_server.context())
        c.ehlo()
        c.quit()


def test_starttls_twice(tls_server):
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        c.starttls(tls_server.context())
        c.ehlo()
        assert c.cmd("STARTTLS").line == "503 5.5.1 TLS already active"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


def test_starttls_on_implicit_tls_listener(tls_server):
    with tls_server.connect_465() as c:
        assert c.cmd("STARTTLS").line == "503 5.5.1 TLS already active"
        c.quit()


def test_starttls_injection_is_discarded(tls_server):
    """CVE-2011-0411: commands pipelined after STARTTLS in the same packet
    must not be executed inside the TLS session."""
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")
        r = c.read_reply()
        assert r.line == "220 2.0.0 Ready to start TLS", r
        # Nothing but the 220 may have come in plaintext.
        leftover = c.tls(tls_server.context())
        assert leftover == b"", "plaintext after the 220: %r" % leftover
        # No reply to the injected NOOP may arrive inside TLS.
        late = c.pending(1.5)
        assert late == b"", "the injected NOOP was answered inside TLS: %r" % late
        # The session starts over: EHLO is needed again.
        assert c.cmd("MAIL FROM:<x@remote.test>").line == "503 5.5.1 Send EHLO or HELO first"
        c.ehlo()
        c.mail()
        c.quit()


def test_starttls_injection_mail_transaction(tls_server):
    """An injected EHLO + MAIL + RCPT must not be carried into TLS either."""
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        c.send(b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@remote.test>\r\n"
               b"RCPT TO:<%s>\r\n" % ALICE.encode())
        assert c.read_reply().line == "220 2.0.0 Ready to start TLS"
        assert c.tls(tls_server.context()) == b""
        assert c.pending(1.5) == b""
        assert c.cmd("DATA").line == "503 5.5.1 Send EHLO or HELO first"
        c.ehlo()
        assert c.cmd("RCPT TO:<%s>" % ALICE).line == "503 5.5.1 Need MAIL first"
        c.quit()


def test_failed_handshake_ends_only_that_connection(tls_server):
    other = tls_server.connect()
    other.greet()
    other.ehlo()
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("STARTTLS").line == "220 2.0.0 Ready to start TLS"
        c.send(b"this is not a TLS ClientHello\r\n" * 4)
        c.wait_closed()
    # implicit TLS: garbage instead of a ClientHello
    with tls_server.connect(port=tls_server.submissions_port) as c:
        c.send(b"EHLO plaintext.test\r\n")
        c.wait_closed()
    # implicit TLS: handshake with a client that does not trust the cert
    with pytest.raises(ssl.SSLError):
        tls_server.connect(port=tls_server.submissions_port, tls_context=client_context())
    # the other session and new ones carry on
    assert other.cmd("NOOP").line == "250 2.0.0 Ok"
    other.quit()
    tls_server.assert_serves()
    with tls_server.connect_465() as c:
        c.quit()


def test_client_closes_during_handshake(tls_server):
    # A ClientHello cut off in the middle, then close.
    ctx = client_context(tls_server.cert_path)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=HOSTNAME)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    assert len(hello) > 20
    with tls_server.connect(port=tls_server.submissions_port) as c:
        c.send(hello[:len(hello) // 2])
    with tls_server.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("STARTTLS").line == "220 2.0.0 Ready to start TLS"
        c.send(hello[:len(hello) // 2])
    tls_server.assert_serves()
    with tls_server.connect_465() as c:
        c.quit()


# ---------------------------------------------------------------- implicit TLS


def test_implicit_tls_smtplib(tls_server):
    with SMTP_SSLName(tls_server.host, tls_server.submissions_port,
                      context=tls_server.context()) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert s.sock.version() == "TLSv1.3"
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        assert s.noop()[0] == 250


def test_implicit_tls_greeting(tls_server):
    with tls_server.connect(port=tls_server.submissions_port,
                            tls_context=tls_server.context()) as c:
        c.greet()
        r = c.cmd("EHLO client.example.test")
        assert r.code == 250
        assert "STARTTLS" not in _keywords(r)
        c.quit()


# ---------------------------------------------------------------- versions


def _s_client(args, stdin=b"", timeout=60):
    p = subprocess.run(["openssl", "s_client"] + args, input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def openssl_can_tls11(tls_cert):
    """Proves that this machine's openssl s_client can still speak TLS 1.1
    (with SECLEVEL=0) against a local openssl s_server: otherwise a refused
    TLS 1.1 handshake would prove nothing about hermod."""
    port = free_port()
    srv = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", tls_cert.cert,
         "-key", tls_cert.key, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok, out = False, ""
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and srv.poll() is None:
            rc, out = _s_client(["-connect", "127.0.0.1:%d" % port, "-tls1_1",
                                 "-cipher", "DEFAULT@SECLEVEL=0", "-brief"])
            if rc == 0 and "TLSv1.1" in out:
                ok = True
                break
            time.sleep(0.1)
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(timeout=30)
    if not ok:
        pytest.skip("this openssl cannot negotiate TLS 1.1 even with SECLEVEL=0: %s" % out[-300:])
    return True


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_old_tls_versions_refused(tls_server, openssl_can_tls11, version, mode):
    if mode == "starttls":
        args = ["-starttls", "smtp", "-connect", "%s:%d" % (tls_server.host, tls_server.port)]
    else:
        args = ["-connect", "%s:%d" % (tls_server.host, tls_server.submissions_port)]
    rc, out = _s_client(args + [version, "-cipher", "DEFAULT@SECLEVEL=0", "-brief"])
    assert rc != 0, "hermod accepted %s:\n%s" % (version, out)
    assert "CONNECTION ESTABLISHED" not in out, out
    tls_server.assert_serves()


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls12_accepted(tls_server, mode):
    if mode == "starttls":
        args = ["-starttls", "smtp", "-connect", "%s:%d" % (tls_server.host, tls_server.port)]
    else:
        args = ["-connect", "%s:%d" % (tls_server.host, tls_server.submissions_port)]
    rc, out = _s_client(args + ["-tls1_2", "-brief"])
    assert rc == 0, out
    assert "Protocol version: TLSv1.2" in out, out


def test_python_tls11_refused(tls_server):
    ctx = tls_server.context(maximum_version=ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError, ConnectionClosed, OSError)):
        c = tls_server.connect(port=tls_server.submissions_port, tls_context=ctx)
        try:
            c.greet()
        finally:
            c.close()
    tls_server.assert_serves()


def test_python_tls12_only_client(tls_server):
    ctx = tls_server.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with tls_server.connect(port=tls_server.submissions_port, tls_context=ctx) as c:
        assert c.sock.version() == "TLSv1.2"
        c.greet()
        c.quit()


def test_tls13_by_default(tls_server):
    rc, out = _s_client(["-connect", "%s:%d" % (tls_server.host, tls_server.submissions_port),
                         "-brief"])
    assert rc == 0, out
    assert "Protocol version: TLSv1.3" in out, out
    with tls_server.connect(port=tls_server.submissions_port,
                            tls_context=tls_server.context()) as c:
        assert c.sock.version() == "TLSv1.3"
        c.greet()
        c.quit()


def test_no_tls_compression(tls_server):
    with tls_server.connect(port=tls_server.submissions_port,
                            tls_context=tls_server.context(
                                maximum_version=ssl.TLSVersion.TLSv1_2)) as c:
        assert c.sock.compression() is None
        c.greet()
        c.quit()


# ---------------------------------------------------------------- no certificate


def test_no_certificate_no_starttls(server):
    with server.connect() as c:
        c.greet()
        r = c.cmd("EHLO client.remote.test")
        assert r.lines == EHLO_NO_TLS
        assert c.cmd("STARTTLS").line == "502 5.5.1 Command not implemented"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()


# ---------------------------------------------------------------- SNI


def _peer_der(host, port, server_name, starttls=False):
    """The DER certificate the server presents for SNI `server_name`."""
    c = SMTPClient(host, port)
    try:
        if starttls:
            c.greet()
            c.ehlo()
            assert c.cmd("STARTTLS").line == "220 2.0.0 Ready to start TLS"
        c.tls(client_context(verify=False), server_name)
        return c.sock.getpeercert(binary_form=True)
    finally:
        c.close()


def test_sni_certificates(make_server, tls_cert, make_cert, tmp_path):
    sni = tmp_path / "sni"
    other = make_cert("other.test", str(sni / "other.test"), "fullchain.pem", "privkey.pem")
    third = make_cert("mail.third.test", str(sni / "mail.third.test"),
                      "fullchain.pem", "privkey.pem")
    srv = make_server(tls=True, submission=True, extra={"tls": {"sni_dir": str(sni)}})
    for port, starttls in ((srv.submissions_port, False), (srv.port, True)):
        assert _peer_der(srv.host, port, "other.test", starttls) == other.der
        assert _peer_der(srv.host, port, "mail.third.test", starttls) == third.der
        assert _peer_der(srv.host, port, HOSTNAME, starttls) == tls_cert.der
        assert _peer_der(srv.host, port, "unknown.test", starttls) == tls_cert.der
        # name matching is case-insensitive (DNS)
        assert _peer_der(srv.host, port, "OTHER.test", starttls) == other.der
    # and verification with the right trust anchor and name works end to end
    with srv.connect(port=srv.submissions_port, tls_context=other.context(),
                     server_hostname="other.test") as c:
        c.greet()
        c.quit()


# ---------------------------------------------------------------- SIGHUP reload


def _replace(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600)
    os.rename(tmp, dst)


def test_sighup_reloads_certificate(make_server, tls_cert, make_cert):
    srv = make_server(tls=True, submission=True)
    old = tls_cert.der
    # open sessions over both kinds of TLS before the reload
    c465 = srv.connect_465()
    c25 = srv.connect()
    c25.greet()
    c25.ehlo()
    c25.starttls(srv.context())
    c25.ehlo()
    assert c465.sock.getpeercert(binary_form=True) == old

    new = make_cert(HOSTNAME)
    assert new.der != old
    _replace(new.key, srv.key_path)
    _replace(new.cert, srv.cert_path)
    srv.proc.send_signal(signal.SIGHUP)

    deadline = time.monotonic() + 20
    while True:
        der = _peer_der(srv.host, srv.submissions_port, HOSTNAME)
        if der == new.der:
            break
        assert der == old
        assert time.monotonic() < deadline, "new certificate not served 20 s after SIGHUP\n" \
            + srv.stderr_tail()
        time.sleep(0.2)
    assert _peer_der(srv.host, srv.port, HOSTNAME, starttls=True) == new.der
    assert srv.alive()

    # the connections opened before the reload go on working
    assert c465.cmd("NOOP").line == "250 2.0.0 Ok"
    subject = unique("after-hup")
    c25.mail()
    c25.rcpt(ALICE)
    assert DELIVERED_RE.match(c25.data(make_message(subject)).line)
    c25.quit()
    c465.login(ALICE, PASSWORDS[ALICE])
    c465.mail(ALICE)
    c465.rcpt(BOB)
    r = c465.data(make_message(unique("after-hup-465"), sender=ALICE, to=BOB))
    assert QUEUED_RE.match(r.line), r
    c465.quit()
    srv.fetch_one(ALICE, subject)

    # new sessions verify against the new certificate
    with SMTPName(srv.host, srv.port) as s:
        s.ehlo()
        s.starttls(context=new.context())
        s.ehlo()
        assert s.noop()[0] == 250
    with pytest.raises(ssl.SSLError):
        srv.connect(port=srv.submissions_port, tls_context=tls_cert.context())


def test_sighup_with_broken_certificate_keeps_old(make_server, tls_cert):
    """A reload that fails (unreadable cert) must not take TLS down: the
    server keeps serving with the certificate it has."""
    srv = make_server(tls=True, submission=True)
    with open(srv.cert_path + ".new", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    os.rename(srv.cert_path + ".new", srv.cert_path)
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert srv.alive(), srv.stderr_tail()
    assert _peer_der(srv.host, srv.submissions_port, HOSTNAME) == tls_cert.der
    srv.assert_serves()


# ---------------------------------------------------------------- start-up errors


def test_missing_certificate_is_startup_error(make_server, tls_cert, tmp_path):
    srv = make_server(tls=True, start=False)
    os.unlink(srv.cert_path)
    p = subprocess.run([srv.binary, "serve", "-c", srv.config_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode != 0
    assert srv.cert_path.encode() in p.stdout, p.stdout


def test_mismatched_key_is_startup_error(make_server, make_cert):
    srv = make_server(tls=True, start=False)
    other = make_cert("other.test")
    shutil.copyfile(other.key, srv.key_path)
    p = subprocess.run([srv.binary, "serve", "-c", srv.config_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 1
    assert (b"cannot load private key %s: " % srv.key_path.encode()) in p.stdout, p.stdout
