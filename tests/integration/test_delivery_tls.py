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

from conftest import ALICE, BOB, PASSWORDS, QUEUED_RE, make_message, unique
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


# --------------------------------------------------------------------------
# DANE (RFC 7672): a DNSSEC-signed zone (nsd + ldns-signzone behind unbound)
# and hermod validating from its trust anchor. One zone for the module: its
# TLSA names carry the port of the peers, chosen once.


class DaneWorld:
    pass


@pytest.fixture(scope="module")
def dane(tmp_path_factory, ca):
    from dnssecfix import SignedZone, tlsa_rdata
    from conftest import make_cert_files
    w = DaneWorld()
    w.port = peer_port()
    d = str(tmp_path_factory.mktemp("dane"))
    w.ee = make_cert_files(d + "/ee", "mx-ee.dane.test")         # DANE-EE, self-signed
    w.other = make_cert_files(d + "/other", "mx-ee.dane.test")   # not in any TLSA
    w.ta_leaf = ca.issue("mx-ta.dane.test")                       # DANE-TA: our CA
    w.ta_wrong = ca.issue("elsewhere.test")                       # the CA's, wrong name
    p = "_%d._tcp." % w.port
    recs = [
        # DANE-EE on the only MX
        ("ee", "MX", "10 mx-ee.dane.test."),
        ("mx-ee", "A", PEER),
        (p + "mx-ee", "TLSA", tlsa_rdata(w.ee, 3, 1, 1)),
        # DANE-TA: the issuing CA's certificate
        ("ta", "MX", "10 mx-ta.dane.test."),
        ("mx-ta", "A", PEER),
        (p + "mx-ta", "TLSA", tlsa_rdata(ca.cert, 2, 0, 1)),
        # the first MX has a bogus TLSA set, the second is fine
        ("two", "MX", "10 mx-bogus.dane.test."),
        ("two", "MX", "20 mx-ee.dane.test."),
        ("mx-bogus", "A", PEER),
        ("bogusonly", "MX", "10 mx-bogus.dane.test."),
        (p + "mx-bogus", "TLSA", tlsa_rdata(w.ee, 3, 1, 1)),
        # only PKIX usages: none usable, TLS without authentication
        ("pkix", "MX", "10 mx-pkix.dane.test."),
        ("mx-pkix", "A", PEER),
        (p + "mx-pkix", "TLSA", tlsa_rdata(w.ee, 1, 1, 1)),
        # its TLS reports go to bob (RFC 8460 3)
        ("_smtp._tls.ee", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % BOB),
        # signed, but no TLSA: opportunistic
        ("plain", "MX", "10 mx-plain.dane.test."),
        ("mx-plain", "A", PEER),
    ]
    with SignedZone("dane.test", recs, bogus=[p + "mx-bogus"]) as z:
        w.zone = z
        yield w


def dane_server(make_server, w, delivery=None):
    d = {"smarthost": "", "remote_port": str(w.port), "retry_schedule": "1h",
         "connect_timeout": "5s"}
    d.update(delivery or {})
    return make_server(tls=True, submission=True, extra={
        "delivery": d,
        "dns": {"resolver": w.zone.resolver, "trust_anchor": w.zone.trust_anchor}})


def test_dane_ee_match_delivers(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ee)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "ann@ee.dane.test")
        tx = peer.wait_messages(1)[0]
        assert tx.tls
        line = wait_log(srv, r"event=delivery .*rcpt=ann@ee\.dane\.test")[0]
        assert "relay=mx-ee.dane.test[%s]:%d" % (PEER, dane.port) in line
        assert " policy=dane result=delivered status=2.0.0 " in line, line


def test_dane_ee_mismatch_defers_never_in_plain_text(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.other)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "bob@ee.dane.test")
        line = wait_log(srv, r"event=delivery .*rcpt=bob@ee\.dane\.test")[0]
        assert " policy=dane result=deferred status=4.7.5 " in line, line
        assert ("reply=\"mx-ee.dane.test[%s]:%d: TLS certificate not authenticated (DANE): "
                % (PEER, dane.port)) in line, line
        assert peer.messages == []
        assert [c.split()[0].upper() for c in peer.commands] == ["EHLO", "STARTTLS", "QUIT"]


def test_dane_peer_without_starttls_defers(make_server, dane):
    with SMTPPeer(PEER, dane.port) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "cyd@ee.dane.test")
        line = wait_log(srv, r"event=delivery .*rcpt=cyd@ee\.dane\.test")[0]
        assert " result=deferred status=4.7.5 " in line, line
        assert "the server does not offer STARTTLS (required by DANE)" in line, line
        assert peer.messages == []


def test_dane_ta_issuer_and_name_checked(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ta_leaf, chain=True)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "dee@ta.dane.test")
        peer.wait_messages(1)
        line = wait_log(srv, r"event=delivery .*rcpt=dee@ta\.dane\.test")[0]
        assert " policy=dane result=delivered " in line, line
    # the same issuer, a certificate for another name: not authenticated
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ta_wrong, chain=True)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "eli@ta.dane.test")
        line = wait_log(srv, r"event=delivery .*rcpt=eli@ta\.dane\.test")[0]
        assert " policy=dane result=deferred status=4.7.5 " in line, line
        assert peer.messages == []


def test_dane_bogus_tlsa_skips_that_mx(make_server, dane):
    # mx-bogus and mx-ee are the same peer: only the second MX may be used
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ee)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "fin@two.dane.test")
        peer.wait_messages(1)
        line = wait_log(srv, r"event=delivery .*rcpt=fin@two\.dane\.test")[0]
        assert "relay=mx-ee.dane.test[" in line, line
        assert " policy=dane result=delivered " in line, line
        assert peer.connections == 1


def test_dane_bogus_tlsa_only_mx_defers(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ee)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "gus@bogusonly.dane.test")
        line = wait_log(srv, r"event=delivery .*rcpt=gus@bogusonly\.dane\.test")[0]
        assert " result=deferred status=4.7.5 " in line, line
        assert re.search(r'reply="TLSA lookup for mx-bogus\.dane\.test failed \(validation '
                         r'failure <_\d+\._tcp\.mx-bogus\.dane\.test\. TLSA IN>: [^)]*\): DANE '
                         r'cannot be checked"', line), line
        # the host is never connected to
        assert peer.connections == 0


def test_dane_unusable_tlsa_encrypts_without_authentication(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.other)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "ivy@pkix.dane.test")
        tx = peer.wait_messages(1)[0]
        assert tx.tls
        line = wait_log(srv, r"event=delivery .*rcpt=ivy@pkix\.dane\.test")[0]
        assert " policy=dane-unusable result=delivered " in line, line


def test_dane_no_tlsa_is_opportunistic(make_server, dane):
    with SMTPPeer(PEER, dane.port) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "jo@plain.dane.test")
        tx = peer.wait_messages(1)[0]
        assert not tx.tls
        line = wait_log(srv, r"event=delivery .*rcpt=jo@plain\.dane\.test")[0]
        assert " tls=none policy=opportunistic result=delivered " in line, line


def test_tls_required_no_overrides_dane(make_server, dane):
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.other)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "kim@ee.dane.test", headers="TLS-Required: No\r\n")
        peer.wait_messages(1)
        line = wait_log(srv, r"event=delivery .*rcpt=kim@ee\.dane\.test")[0]
        assert " policy=tls-required-no result=delivered " in line, line


def test_requiretls_over_dane(make_server, dane):
    with SMTPPeer(PEER, dane.port, ehlo=EHLO_RT,
                  tls_context=server_context(dane.ee)) as peer:
        srv = dane_server(make_server, dane)
        submit(srv, "lee@ee.dane.test", mail_params="REQUIRETLS")
        tx = peer.wait_messages(1)[0]
        assert tx.mail_params.split()[-1] == "REQUIRETLS"
        line = wait_log(srv, r"event=delivery .*rcpt=lee@ee\.dane\.test")[0]
        assert " policy=dane result=delivered " in line, line


# --------------------------------------------------------------------------
# MTA-STS (RFC 8461) enforcement: policies from an HTTPS server on 127.0.0.1
# (test_mta_sts.PolicyServer) with a certificate of the test CA, names from
# dnsmasq.


STS_DOMAINS = ("sts.test", "stsbad.test", "ststest.test")


@pytest.fixture(scope="module")
def sts(ca):
    from test_mta_sts import PolicyServer
    leaf = ca.issue(*["mta-sts." + d for d in STS_DOMAINS])
    srv = PolicyServer(leaf.cert, leaf.key)

    def policy(mode, mx):
        return (200, {"Content-Type": "text/plain"},
                ("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 86400\r\n"
                 % (mode, mx)).encode())

    srv.by_host = {
        "mta-sts.sts.test": policy("enforce", "mx.sts.test"),
        "mta-sts.stsbad.test": policy("enforce", "*.sts.test"),
        "mta-sts.ststest.test": policy("testing", "mx.ststest.test"),
    }
    recs = ["--mx-host=sts.test,mx.sts.test,10",
            "--mx-host=stsbad.test,mx.elsewhere.test,10",
            "--mx-host=ststest.test,mx.ststest.test,10"]
    for d in ("mx.sts.test", "mx.elsewhere.test", "mx.ststest.test"):
        recs.append("--host-record=%s,%s" % (d, PEER))
    for d in STS_DOMAINS:
        recs.append("--txt-record=_mta-sts.%s,v=STSv1; id=20261202;" % d)
        recs.append("--host-record=mta-sts.%s,127.0.0.1" % d)
    with Dnsmasq(recs) as dns_:
        srv.dns = dns_
        yield srv
    srv.stop()


def sts_server(make_server, sts, ca, port):
    return tls_server(make_server, sts.dns, ca, port,
                      delivery={"mta_sts_port": str(sts.port), "retry_schedule": "1h"})


def test_mta_sts_enforce_verified_certificate_delivers(make_server, sts, ca):
    port = peer_port()
    with SMTPPeer(PEER, port, tls_context=server_context(ca.issue("mx.sts.test"))) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "amy@sts.test")
        tx = peer.wait_messages(1)[0]
        assert tx.tls
        line = wait_log(srv, r"event=delivery .*rcpt=amy@sts\.test")[0]
        assert " policy=mta-sts result=delivered status=2.0.0 " in line, line


def test_mta_sts_enforce_bad_certificate_defers(make_server, sts, ca, make_cert):
    port = peer_port()
    with SMTPPeer(PEER, port, tls_context=server_context(make_cert("mx.sts.test"))) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "bo@sts.test")
        line = wait_log(srv, r"event=delivery .*rcpt=bo@sts\.test")[0]
        assert " policy=mta-sts result=deferred status=4.7.5 " in line, line
        assert ("TLS certificate not authenticated (MTA-STS): self-signed certificate"
                in line), line
        assert peer.messages == []
        assert [c.split()[0].upper() for c in peer.commands] == ["EHLO", "STARTTLS", "QUIT"]


def test_mta_sts_enforce_without_starttls_defers(make_server, sts, ca):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "cy@sts.test")
        line = wait_log(srv, r"event=delivery .*rcpt=cy@sts\.test")[0]
        assert " result=deferred status=4.7.5 " in line, line
        assert "the server does not offer STARTTLS (required by MTA-STS)" in line, line
        assert peer.messages == []


def test_mta_sts_enforce_mx_not_in_policy_never_connected(make_server, sts, ca):
    port = peer_port()
    with SMTPPeer(PEER, port, tls_context=server_context(ca.issue("mx.elsewhere.test"))) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "di@stsbad.test")
        line = wait_log(srv, r"event=delivery .*rcpt=di@stsbad\.test")[0]
        assert " result=deferred status=4.7.5 " in line, line
        assert 'reply="mx.elsewhere.test does not match the MTA-STS policy of stsbad.test"' \
            in line, line
        assert peer.connections == 0


def test_mta_sts_testing_mode_delivers_anyway(make_server, sts, ca, make_cert):
    port = peer_port()
    with SMTPPeer(PEER, port, tls_context=server_context(make_cert("mx.ststest.test"))) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "ed@ststest.test")
        peer.wait_messages(1)
        line = wait_log(srv, r"event=delivery .*rcpt=ed@ststest\.test")[0]
        assert " policy=mta-sts-testing result=delivered " in line, line


def test_requiretls_over_mta_sts(make_server, sts, ca):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=EHLO_RT,
                  tls_context=server_context(ca.issue("mx.sts.test"))) as peer:
        srv = sts_server(make_server, sts, ca, port)
        submit(srv, "fo@sts.test", mail_params="REQUIRETLS")
        tx = peer.wait_messages(1)[0]
        assert tx.mail_params.split()[-1] == "REQUIRETLS"
        line = wait_log(srv, r"event=delivery .*rcpt=fo@sts\.test")[0]
        assert " policy=mta-sts result=delivered " in line, line


# --------------------------------------------------------------------------
# TLS reports (RFC 8460)


def test_tls_report_for_a_dane_domain(make_server, dane):
    import gzip
    import json
    srv = dane_server(make_server, dane)
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.ee)) as peer:
        submit(srv, "mo@ee.dane.test")
        peer.wait_messages(1)
        wait_log(srv, r"event=delivery .*rcpt=mo@ee\.dane\.test .*result=delivered")
    with SMTPPeer(PEER, dane.port, tls_context=server_context(dane.other)) as peer:
        submit(srv, "ned@ee.dane.test")
        wait_log(srv, r"event=delivery .*rcpt=ned@ee\.dane\.test .*result=deferred")
    # the counts reach the store within 5 s
    deadline = time.monotonic() + 20
    while True:
        rows = srv.cli("tls-report", "list").stdout.splitlines()
        if len(rows) == 2:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert sorted(r.split(" ", 1)[1] for r in rows) == [
        "ee.dane.test tlsa mx-ee.dane.test - 127.0.0.1 %s 1" % PEER,
        "ee.dane.test tlsa mx-ee.dane.test validation-failure 127.0.0.1 %s 1" % PEER]
    assert all(r.startswith(day + " ") for r in rows)
    # today is not over: nothing to report yet
    out = srv.cli("tls-report", "send").stdout
    assert out == "reports 0, no policy 0, deferred 0, failed 0\n"
    out = srv.cli("tls-report", "send", "2999-01-01").stdout
    assert out == "reports 1, no policy 0, deferred 0, failed 0\n"
    assert srv.cli("tls-report", "list").stdout == ""
    rows = [r for r in srv.messages(BOB) if r["subject"].startswith("Report Domain: ")]
    assert len(rows) == 1, srv.messages(BOB)
    assert rows[0]["subject"] == (
        "Report Domain: ee.dane.test Submitter: mx.example.test Report-ID: "
        "<%sT00:00:00Z.ee.dane.test@mx.example.test>" % day)
    raw = srv.show(BOB, "INBOX", rows[0]["uid"])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["TLS-Report-Domain"] == "ee.dane.test"
    assert msg["TLS-Report-Submitter"] == "mx.example.test"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    att = msg.get_payload()[1]
    assert att.get_content_type() == "application/tlsrpt+gzip"
    assert re.fullmatch(r"mx\.example\.test!ee\.dane\.test!\d+!\d+\.json\.gz",
                        att.get_filename()), att.get_filename()
    report = json.loads(gzip.decompress(att.get_payload(decode=True)))
    assert report["organization-name"] == "mx.example.test"
    assert report["contact-info"] == "postmaster@mx.example.test"
    assert report["date-range"]["start-datetime"] == day + "T00:00:00Z"
    assert report["date-range"]["end-datetime"] == day + "T23:59:59Z"
    from dnssecfix import tlsa_rdata
    assert report["policies"] == [{
        "policy": {"policy-type": "tlsa", "policy-string": [tlsa_rdata(dane.ee, 3, 1, 1)],
                   "policy-domain": "ee.dane.test", "mx-host": ["mx-ee.dane.test"]},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 1},
        "failure-details": [{"result-type": "validation-failure", "sending-mta-ip": "127.0.0.1",
                             "receiving-mx-hostname": "mx-ee.dane.test",
                             "receiving-ip": PEER, "failed-session-count": 1}]}]


def test_tls_report_not_sent_without_a_reporting_policy(make_server, dane):
    srv = dane_server(make_server, dane)
    with SMTPPeer(PEER, dane.port) as peer:
        submit(srv, "ola@plain.dane.test")
        peer.wait_messages(1)
    deadline = time.monotonic() + 20
    while srv.cli("tls-report", "list").stdout == "":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    out = srv.cli("tls-report", "send", "2999-01-01").stdout
    assert out == "reports 0, no policy 1, deferred 0, failed 0\n"
    assert srv.cli("tls-report", "list").stdout == ""


def test_tls_report_usage(make_server):
    srv = make_server()
    r = srv.cli("tls-report", "send", "yesterday", check=False)
    assert (r.returncode, r.stderr) == (2, b"hermod: 'yesterday' is not a day (YYYY-MM-DD)\n")
    r = srv.cli("tls-report", "frob", check=False)
    assert r.returncode == 2


# ---- TLS reports posted to https: addresses (RFC 8460 5.4) ----
# A report server (test_mta_sts.PolicyServer, POSTs recorded) with a
# certificate of the test CA for reports.rpt.test and reports.rpt500.test, a
# second one with a certificate of another CA for reports.rptbad.test; plain
# dnsmasq domains whose MX is a local SMTPPeer.


RPT_DOMAINS = ("rpt.test", "rpt500.test", "rptbad.test")


@pytest.fixture(scope="module")
def rpt(ca, tmp_path_factory):
    from test_mta_sts import PolicyServer
    good = PolicyServer(*_pair(ca.issue("reports.rpt.test", "reports.rpt500.test")))
    other = TestCA(str(tmp_path_factory.mktemp("otherca")), name="another CA")
    bad = PolicyServer(*_pair(other.issue("reports.rptbad.test")))
    ports = {"rpt.test": good.port, "rpt500.test": good.port, "rptbad.test": bad.port}
    recs = []
    for d in RPT_DOMAINS:
        recs.append("--mx-host=%s,mx.%s,10" % (d, d))
        recs.append("--host-record=mx.%s,%s" % (d, PEER))
        recs.append("--host-record=reports.%s,127.0.0.1" % d)
        recs.append("--txt-record=_smtp._tls.%s,v=TLSRPTv1; rua=https://reports.%s:%d/v1/tlsrpt"
                    % (d, d, ports[d]))
    with Dnsmasq(recs) as dns_:
        good.dns = dns_
        good.bad = bad
        yield good
    good.stop()
    bad.stop()


def _pair(leaf):
    return leaf.cert, leaf.key


def rpt_counted(make_server, rpt, ca, domain):
    """A server that delivered one message to domain, its count in the store."""
    port = peer_port()
    with SMTPPeer(PEER, port, tls_context=server_context(ca.issue("mx." + domain))) as peer:
        srv = tls_server(make_server, rpt.dns, ca, port)
        submit(srv, "amy@" + domain)
        peer.wait_messages(1)
    deadline = time.monotonic() + 20
    while srv.cli("tls-report", "list").stdout == "":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return srv


def test_tls_report_posted_to_an_https_address(make_server, rpt, ca):
    import gzip
    import json
    rpt.posts.clear()
    rpt.post_response = (200, {"Content-Type": "text/plain"}, b"thanks")
    srv = rpt_counted(make_server, rpt, ca, "rpt.test")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    out = srv.cli("tls-report", "send", "2999-01-01").stdout
    assert out == "reports 1, no policy 0, deferred 0, failed 0\n"
    assert srv.cli("tls-report", "list").stdout == ""
    assert len(rpt.posts) == 1, rpt.posts
    path, headers, body = rpt.posts[0]
    assert path == "/v1/tlsrpt"
    assert headers["Content-Type"] == "application/tlsrpt+gzip"
    assert headers["Host"] == "reports.rpt.test:%d" % rpt.port
    assert rpt.sni[-1] == "reports.rpt.test"
    report = json.loads(gzip.decompress(body))
    assert report["organization-name"] == "mx.example.test"
    assert report["report-id"] == "%sT00:00:00Z.rpt.test@mx.example.test" % day
    assert report["date-range"] == {"start-datetime": day + "T00:00:00Z",
                                    "end-datetime": day + "T23:59:59Z"}
    assert [p["policy"] for p in report["policies"]] == [
        {"policy-type": "no-policy-found", "policy-domain": "rpt.test",
         "mx-host": ["mx.rpt.test"]}]
    assert report["policies"][0]["summary"] == {"total-successful-session-count": 1,
                                                "total-failure-session-count": 0}
    # nothing mailed
    assert [m for m in srv.messages(BOB) if m["subject"].startswith("Report Domain: ")] == []


def test_tls_report_post_answered_500_keeps_the_counts(make_server, rpt, ca):
    rpt.posts.clear()
    rpt.post_response = (500, {}, b"")
    srv = rpt_counted(make_server, rpt, ca, "rpt500.test")
    before = srv.cli("tls-report", "list").stdout
    r = srv.cli("tls-report", "send", "2999-01-01", check=False)
    assert (r.returncode, r.stdout) == (1, "reports 0, no policy 0, deferred 0, failed 1\n")
    assert "error=\"HTTP status 500\"" in r.stderr.decode(), r.stderr
    assert len(rpt.posts) == 1
    assert srv.cli("tls-report", "list").stdout == before
    # the next run posts again; a 202 is success too
    rpt.post_response = (202, {}, b"")
    out = srv.cli("tls-report", "send", "2999-01-01").stdout
    assert out == "reports 1, no policy 0, deferred 0, failed 0\n"
    assert len(rpt.posts) == 2
    assert srv.cli("tls-report", "list").stdout == ""


def test_tls_report_post_untrusted_certificate_keeps_the_counts(make_server, rpt, ca):
    rpt.bad.posts.clear()
    srv = rpt_counted(make_server, rpt, ca, "rptbad.test")
    before = srv.cli("tls-report", "list").stdout
    r = srv.cli("tls-report", "send", "2999-01-01", check=False)
    assert (r.returncode, r.stdout) == (1, "reports 0, no policy 0, deferred 0, failed 1\n")
    assert "error=\"certificate: " in r.stderr.decode(), r.stderr
    assert rpt.bad.posts == []
    assert srv.cli("tls-report", "list").stdout == before
