"""Outbound TLS policy: REQUIRETLS (RFC 8689) and TLS-Required: No; DANE
(RFC 7672) and MTA-STS (RFC 8461) enforcement.

Peers are the scriptable SMTPPeer on 127.0.0.2 with certificates from a test
CA (pki.py) that hermod trusts through [delivery] tls_ca_file.
"""

import email
import email.policy
import re
import time

import pytest

from conftest import ALICE, PASSWORDS, QUEUED_RE, make_message, unique
from pki import TestCA, server_context
from smtppeer import SMTPPeer
from test_delivery import (CLOSED, PEER, RECORDS, bounces, parse_dsn, peer_port, queue_text,
                           wait_log, wait_queue_empty)
from dnsfix import Dnsmasq

EHLO_RT = ("PIPELINING", "8BITMIME", "SIZE 100000000", "ENHANCEDSTATUSCODES", "DSN",
           "SMTPUTF8", "REQUIRETLS")


@pytest.fixture(scope="module")
def dns():
    with Dnsmasq(RECORDS) as d:
        yield d


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(str(tmp_path_factory.mktemp("ca")))


def tls_server(make_server, dns, ca, port, delivery=None):
    d = {"smarthost": "", "remote_port": str(port), "retry_schedule": "1s",
         "connect_timeout": "5s", "tls_ca_file": ca.cert}
    d.update(delivery or {})
    return make_server(tls=True, submission=True,
                       extra={"delivery": d, "dns": {"resolver": dns.address}})


def submit(srv, rcpt, mail_params="", headers=""):
    subject = unique("tls")
    c = srv.connect_465()
    c.login(ALICE, PASSWORDS[ALICE])
    r = c.cmd("MAIL FROM:<%s>%s" % (ALICE, (" " + mail_params) if mail_params else ""))
    assert r.line == "250 2.1.0 Ok", r
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r.line == "250 2.1.5 Ok", r
    msg = make_message(subject, b"secret body\r\n", sender=ALICE, to=rcpt)
    if headers:
        msg = headers.encode() + msg
    r = c.data(msg)
    assert QUEUED_RE.match(r.line), r
    c.quit()
    return subject


def unfold(v):
    return re.sub(r"\r?\n[ \t]+", " ", v)


def wait_bounce(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while not bounces(srv):
        assert time.monotonic() < deadline, srv.stderr_tail()
        time.sleep(0.1)
    rows = bounces(srv)
    assert len(rows) == 1, rows
    return srv.show(ALICE, "INBOX", rows[0]["uid"])


# --------------------------------------------------------------------------
# REQUIRETLS on the way in


def test_requiretls_offered_only_inside_tls(make_server):
    srv = make_server(tls=True)
    c = srv.connect()
    c.greet()
    r = c.ehlo()
    assert "250-REQUIRETLS" not in r.lines
    # outside TLS the parameter is not known (RFC 5321 4.1.1.11)
    r = c.cmd("MAIL FROM:<someone@remote.test> REQUIRETLS")
    assert r.line == "555 5.5.4 unsupported parameter", r
    c.starttls(srv.context())
    r = c.ehlo()
    assert "250-REQUIRETLS" in r.lines
    r = c.cmd("MAIL FROM:<someone@remote.test> REQUIRETLS=yes")
    assert r.line == "501 5.5.4 REQUIRETLS takes no value", r
    r = c.cmd("MAIL FROM:<someone@remote.test> REQUIRETLS REQUIRETLS")
    assert r.line == "501 5.5.4 duplicate REQUIRETLS", r
    c.mail(params="REQUIRETLS")
    c.quit()
    # the server still serves the next client
    c = srv.connect()
    c.greet()
    c.ehlo()
    c.quit()


def test_requiretls_and_tls_required_no_kept_in_the_queue(make_server, dns, ca):
    # deferred entries (the smarthost is down): the queue keeps what the
    # sender asked
    port = peer_port()
    srv = tls_server(make_server, dns, ca, port, delivery={
        "retry_schedule": "1h", "smarthost": "%s:%d" % (CLOSED, port)})
    submit(srv, "amy@far.test", mail_params="REQUIRETLS")
    submit(srv, "bea@far.test", headers="TLS-Required:  no \r\n")
    submit(srv, "cat@far.test", headers="TLS-Required: No thanks\r\n")
    ids = {q["rcpts"][0]: q["id"] for q in srv.queue()}
    shows = {k: srv.cli("queue", "show", v).stdout for k, v in ids.items()}
    assert "Tls: requiretls\n" in shows["amy@far.test"]
    assert "Tls: not-required\n" in shows["bea@far.test"]
    assert "Tls:" not in shows["cat@far.test"]


# --------------------------------------------------------------------------
# REQUIRETLS on the way out


def test_requiretls_without_dnssec_or_mta_sts_bounces(make_server, dns, ca):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=EHLO_RT, tls_context=server_context(ca.issue("mx.dest.test"))) as peer:
        srv = tls_server(make_server, dns, ca, port)
        submit(srv, "dan@dest.test", mail_params="REQUIRETLS")
        raw = wait_bounce(srv)
        assert peer.messages == []
    msg, per_msg, per_rcpt = parse_dsn(raw)
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; dan@dest.test"
    assert per_rcpt[0]["Status"] == "5.7.30"
    assert per_rcpt[0]["Action"] == "failed"
    assert unfold(per_rcpt[0]["Diagnostic-Code"]) == (
        "X-hermod; REQUIRETLS: the MX records of dest.test are not DNSSEC-validated and it "
        "has no MTA-STS policy")
    # RFC 8689 5: the original's header only, never its body
    parts = msg.get_payload()
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw


def test_requiretls_through_a_verified_smarthost(make_server, dns, ca):
    port = peer_port()
    ctx = server_context(ca.issue(PEER))
    with SMTPPeer(PEER, port, ehlo=EHLO_RT, tls_context=ctx) as peer:
        srv = tls_server(make_server, dns, ca, port,
                         delivery={"smarthost": "%s:%d" % (PEER, port)})
        submit(srv, "eve@far.test", mail_params="REQUIRETLS")
        tx = peer.wait_messages(1)[0]
        assert tx.tls
        assert tx.mail_params.split()[-1] == "REQUIRETLS", tx.mail_params
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=eve@far\.test")[0]
        assert " policy=requiretls result=delivered " in line, line


def test_requiretls_peer_without_it_bounces_5_7_30(make_server, dns, ca):
    port = peer_port()
    ctx = server_context(ca.issue(PEER))
    with SMTPPeer(PEER, port, tls_context=ctx) as peer:
        srv = tls_server(make_server, dns, ca, port,
                         delivery={"smarthost": "%s:%d" % (PEER, port)})
        submit(srv, "fay@far.test", mail_params="REQUIRETLS")
        raw = wait_bounce(srv)
        assert peer.messages == []
    _, _, per_rcpt = parse_dsn(raw)
    assert per_rcpt[0]["Status"] == "5.7.30"
    assert unfold(per_rcpt[0]["Diagnostic-Code"]) == (
        "X-hermod; REQUIRETLS support required: the message asks for REQUIRETLS and the "
        "receiving server does not offer it")


def test_requiretls_untrusted_certificate_defers(make_server, dns, ca, tmp_path):
    port = peer_port()
    other = TestCA(str(tmp_path / "other"), name="another CA")
    ctx = server_context(other.issue(PEER))
    with SMTPPeer(PEER, port, ehlo=EHLO_RT, tls_context=ctx) as peer:
        srv = tls_server(make_server, dns, ca, port,
                         delivery={"smarthost": "%s:%d" % (PEER, port), "retry_schedule": "1h"})
        submit(srv, "gil@far.test", mail_params="REQUIRETLS")
        line = wait_log(srv, r"event=delivery .*rcpt=gil@far\.test")[0]
        assert "result=deferred status=4.7.5" in line, line
        assert "TLS certificate not authenticated (REQUIRETLS): " in line, line
        assert peer.messages == []
        # never in plain text: one connection, STARTTLS, QUIT
        assert [c.split()[0].upper() for c in peer.commands] == ["EHLO", "STARTTLS", "QUIT"]
        assert "gil@far.test" in queue_text(srv)
