"""Self-tests of the Postfix peer fixture (postfixfix.Postfix): it receives
mail for its domains into Maildirs, over plain SMTP and STARTTLS, logs the
deliveries, refuses to relay, and starts and stops cleanly more than once."""

import os
import smtplib
import ssl
import time
import uuid

import pytest

from postfixfix import HOSTNAME, Postfix


def _msg(subject, body, to):
    return ("From: <sender@remote.test>\r\n"
            "To: <%s>\r\n"
            "Subject: %s\r\n"
            "Message-ID: <%s@remote.test>\r\n"
            "\r\n%s\r\n" % (to, subject, uuid.uuid4().hex, body)).encode()


def _instance_pids(pf):
    """PIDs of processes still running from this instance's directories."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if pf.dir.encode() in cmd:
            pids.append(int(d))
    return pids


def _sent_lines(pf, rcpt):
    return [l for l in pf.log_lines()
            if "to=<%s>" % rcpt in l.lower() and "status=sent" in l
            and "delivered to maildir" in l]


def test_receives_plain_and_starttls():
    t0 = time.monotonic()
    pf = Postfix()
    started = time.monotonic() - t0
    try:
        assert started < 5, "start took %.2fs" % started
        host, port = pf.address
        assert host == "127.0.0.2" and port > 0

        with smtplib.SMTP(host, port, timeout=30) as s:
            code, banner = s.docmd("NOOP")  # banner already read by connect
            assert code == 250
            code, ehlo = s.ehlo("client.test")
            assert code == 250
            assert s.has_extn("starttls")
            s.sendmail("sender@remote.test", ["user@post.test"],
                       _msg("plain", "plain body 1234", "user@post.test"))

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(host, port, timeout=30) as s:
            s.ehlo("client.test")
            code, _ = s.starttls(context=ctx)
            assert code == 220
            der = s.sock.getpeercert(binary_form=True)
            assert der and HOSTNAME.encode() in der
            s.ehlo("client.test")
            s.sendmail("sender@remote.test", ["User@Post.Test", "other@post.test"],
                       _msg("tls", "tls body 5678", "user@post.test"))

        msgs = pf.wait_messages(3)
        assert len(msgs) == 3
        mine = pf.messages_for("user@post.test")
        assert len(mine) == 2
        assert b"plain body 1234" in mine[0]
        assert b"tls body 5678" in mine[1]
        assert b"Delivered-To: user@post.test" in mine[0]
        # the Received: field of the TLS one says so
        assert b"(using TLS" in mine[1]
        assert b"(using TLS" not in mine[0]
        other = pf.messages_for("<other@post.test>")
        assert len(other) == 1 and b"tls body 5678" in other[0]
        assert pf.messages_for("nobody@post.test") == []

        deadline = time.monotonic() + 10
        while len(_sent_lines(pf, "user@post.test")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_sent_lines(pf, "user@post.test")) == 2, "\n".join(pf.log_lines())
        assert len(_sent_lines(pf, "other@post.test")) == 1
        assert any("TLS connection established" in l for l in pf.log_lines())
    finally:
        pf.stop()
    assert not os.path.exists(pf.dir)
    assert _instance_pids(pf) == []
    assert pf.reaper.returncode is not None
    pf.stop()  # idempotent


def test_second_start_stop_and_banner():
    port = None
    for i in range(2):
        with Postfix(domains=("a.test", "b.test")) as pf:
            assert pf.port != port
            port = pf.port
            with smtplib.SMTP(*pf.address, timeout=30) as s:
                assert s.ehlo_resp is None
                code, _ = s.helo("client.test")
                assert code == 250
                s.sendmail("", ["x@b.test"], _msg("n%d" % i, "run %d" % i, "x@b.test"))
            msgs = pf.wait_messages(1)
            assert len(msgs) == 1 and ("run %d" % i).encode() in msgs[0]
            assert pf.messages_for("x@b.test") == msgs
            banner = _banner(pf)
            assert banner == "220 %s ESMTP Postfix (hermod test peer)" % HOSTNAME
        assert not os.path.exists(pf.dir)
        assert _instance_pids(pf) == []


def _banner(pf):
    import socket
    with socket.create_connection(pf.address, timeout=10) as s:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
    return data.decode().rstrip("\r\n")


def test_refuses_relay():
    with Postfix() as pf:
        with smtplib.SMTP(*pf.address, timeout=30) as s:
            s.ehlo("client.test")
            code, _ = s.mail("sender@remote.test")
            assert code == 250
            code, reply = s.rcpt("someone@elsewhere.test")
            assert code == 554, reply
            assert b"Relay access denied" in reply
            assert reply.startswith(b"5.7.1 <someone@elsewhere.test>")
            # a subdomain of a served domain is another domain too
            code, reply = s.rcpt("user@sub.post.test")
            assert code == 554, reply
            code, _ = s.rcpt("user@post.test")
            assert code == 250
            s.rset()
        assert pf.wait_messages(0) == []
        assert any("Relay access denied" in l for l in pf.log_lines())
