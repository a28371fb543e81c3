"""Outbound delivery: the queue runner, routing through DNS (dnsmasq on a
loopback port), the SMTP client against a scriptable peer (smtppeer.py) and
against Postfix, retries, bounces (DSN) and the queue CLI.

Peers listen on 127.0.0.2 (and 127.0.0.3 is left closed, for "first MX down");
the server's [delivery] remote_port points at the peer's port."""

import email
import email.policy
import os
import re
import ssl
import time

import pytest

from conftest import (ALICE, BOB, PASSWORDS, QUEUED_RE, free_port, make_message,
                      unique)
from dnsfix import Dnsmasq
from pki import server_context
from smtppeer import SMTPPeer

PEER = "127.0.0.2"
CLOSED = "127.0.0.3"

RECORDS = [
    "--mx-host=dest.test,mx.dest.test,10",
    "--host-record=mx.dest.test,%s" % PEER,
    # two MX: the preferred one is closed
    "--mx-host=two.test,mx1.two.test,10",
    "--mx-host=two.test,mx2.two.test,20",
    "--host-record=mx1.two.test,%s" % CLOSED,
    "--host-record=mx2.two.test,%s" % PEER,
    # no MX: the domain's own address (RFC 5321 5.1)
    "--host-record=amx.test,%s" % PEER,
    # null MX (RFC 7505): preference 0, root name
    "--dns-rr=nullmx.test,15,000000",
    "--host-record=other.test,%s" % PEER,
    "--mx-host=other.test,other.test,10",
]


@pytest.fixture(scope="module")
def dns():
    with Dnsmasq(RECORDS) as d:
        yield d


def peer_port():
    """A port free on both peer addresses."""
    for _ in range(50):
        p = free_port(PEER)
        try:
            import socket
            s = socket.socket()
            s.bind((CLOSED, p))
            s.close()
            return p
        except OSError:
            continue
    raise RuntimeError("no port")


def sender_server(make_server, dns, port, delivery=None, **kw):
    d = {"smarthost": "", "remote_port": str(port), "retry_schedule": "1s",
         "connect_timeout": "5s"}
    d.update(delivery or {})
    return make_server(tls=True, submission=True,
                       extra={"delivery": d, "dns": {"resolver": dns.address}}, **kw)


def submit(srv, rcpts, subject=None, body=b"hello\r\n", sender=ALICE, mail_params="",
           rcpt_params=""):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    subject = subject or unique("out")
    c = srv.connect_465()
    c.login(sender, PASSWORDS[sender])
    r = c.cmd("MAIL FROM:<%s>%s" % (sender, (" " + mail_params) if mail_params else ""))
    assert r.line.startswith("250"), r
    for rc in rcpts:
        r = c.cmd("RCPT TO:<%s>%s" % (rc, (" " + rcpt_params) if rcpt_params else ""))
        assert r.line.startswith("250"), r
    r = c.data(make_message(subject, body, sender=sender, to=rcpts[0]))
    assert QUEUED_RE.match(r.line), r
    c.quit()
    return subject


def queue_text(srv):
    return srv.cli("queue", "list").stdout


def wait_queue_empty(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while queue_text(srv).strip():
        if time.monotonic() > deadline:
            raise AssertionError("queue not empty:\n%s\n%s" % (queue_text(srv),
                                                              srv.stderr_tail()))
        time.sleep(0.1)


def wait_log(srv, pattern, timeout=30, count=1):
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        lines = [l for l in srv.stderr_bytes().decode("utf-8", "replace").splitlines()
                 if rx.search(l)]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError("no log line matching %r\n%s" % (pattern, srv.stderr_tail()))
        time.sleep(0.1)


def wait_inbox(srv, addr, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in srv.messages(addr) if pred(r)]
        if rows:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError("no such message for %s: %r\n%s" % (
                addr, srv.messages(addr), srv.stderr_tail()))
        time.sleep(0.1)


def bounces(srv, addr=ALICE):
    return [r for r in srv.messages(addr)
            if r["subject"].startswith("Undelivered Mail Returned to Sender")]


def parse_dsn(raw):
    """(message, {field: value} of the per-message part, [per-recipient dicts])"""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    groups = parts[1].get_payload()
    per_msg = dict(groups[0].items())
    per_rcpt = [dict(g.items()) for g in groups[1:]]
    return msg, per_msg, per_rcpt


# --------------------------------------------------------------------------
# delivery and routing


def test_delivers_through_mx_to_peer(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        subject = submit(srv, "carol@dest.test", body=b"line one\r\n.\r\n..two\r\n")
        tx = peer.wait_messages(1)[0]
        assert tx.mail_from == ALICE
        assert tx.rcpts == ["carol@dest.test"]
        assert tx.helo == "mx.example.test"
        # the wire copy has no local Return-Path; dot-stuffing was undone by
        # the peer, so the body is exactly what was submitted
        assert not tx.data.startswith(b"Return-Path:")
        assert ("Subject: %s" % subject).encode() in tx.data
        assert tx.data.endswith(b"\r\n\r\nline one\r\n.\r\n..two\r\n")
        # PIPELINING offered: MAIL, RCPT and DATA went out before the replies
        assert "SIZE=" in tx.mail_params
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery queue=\d+ rcpt=carol@dest\.test")[0]
        assert "relay=mx.dest.test[127.0.0.2]:%d" % port in line
        assert "result=delivered status=2.0.0" in line
        assert 'reply="250 2.0.0 Ok: queued"' in line
        assert bounces(srv) == []


def test_mx_preference_first_down_second_used(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "dave@two.test")
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["dave@two.test"]
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=dave@two\.test")[0]
        assert "relay=mx2.two.test[127.0.0.2]:%d" % port in line


def test_no_mx_falls_back_to_address(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "erin@amx.test")
        assert peer.wait_messages(1)[0].rcpts == ["erin@amx.test"]
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=erin@amx\.test")[0]
        assert "relay=amx.test[127.0.0.2]:%d" % port in line


def test_recipients_of_one_domain_share_a_transaction(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, ["a1@dest.test", "a2@dest.test", "a3@other.test"])
        msgs = peer.wait_messages(2)
        got = sorted(sorted(t.rcpts) for t in msgs)
        assert got == [["a1@dest.test", "a2@dest.test"], ["a3@other.test"]]
        wait_queue_empty(srv)


def test_null_mx_bounces_at_once(make_server, dns):
    port = peer_port()
    srv = sender_server(make_server, dns, port)
    subject = submit(srv, "frank@nullmx.test")
    rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
    assert len(rows) == 1
    raw = srv.show(ALICE, "INBOX", rows[0]["uid"])
    msg, per_msg, per_rcpt = parse_dsn(raw)
    assert per_msg["Reporting-MTA"] == "dns; mx.example.test"
    assert len(per_rcpt) == 1
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; frank@nullmx.test"
    assert per_rcpt[0]["Action"] == "failed"
    assert per_rcpt[0]["Status"] == "5.1.10"
    assert "null MX" in msg.get_payload()[0].get_payload()
    # the original's header comes back
    assert subject in raw.decode("utf-8", "replace")
    wait_queue_empty(srv)


def test_nxdomain_bounces_at_once(make_server, dns):
    srv = sender_server(make_server, dns, peer_port())
    submit(srv, "gina@nx.test")
    rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
    _, _, per_rcpt = parse_dsn(srv.show(ALICE, "INBOX", rows[0]["uid"]))
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; gina@nx.test"
    assert per_rcpt[0]["Status"] == "5.1.2"
    wait_queue_empty(srv)


# --------------------------------------------------------------------------
# retries and bounces


def test_451_then_250_is_retried(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, data_replies=["451 4.3.0 try later"]) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "hank@dest.test")
        wait_log(srv, r"event=delivery .*rcpt=hank@dest\.test .*result=deferred status=4\.3\.0")
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["hank@dest.test"]
        wait_queue_empty(srv)
        lines = wait_log(srv, r"event=delivery .*rcpt=hank@dest\.test", count=2)
        assert "attempt=1 " in lines[0] and "attempt=2 " in lines[1]
        assert "result=delivered" in lines[1]
        assert bounces(srv) == []


def test_550_for_one_of_two_recipients(make_server, dns):
    port = peer_port()
    replies = {"nobody@dest.test": "550 5.1.1 <nobody@dest.test>: no such user"}
    with SMTPPeer(PEER, port, rcpt_replies=replies) as peer:
        srv = sender_server(make_server, dns, port)
        subject = submit(srv, ["ivan@dest.test", "nobody@dest.test"])
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["ivan@dest.test"]
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
        raw = srv.show(ALICE, "INBOX", rows[0]["uid"])
        msg, per_msg, per_rcpt = parse_dsn(raw)
        assert [r["Final-Recipient"] for r in per_rcpt] == ["rfc822; nobody@dest.test"]
        assert per_rcpt[0]["Action"] == "failed"
        assert per_rcpt[0]["Status"] == "5.1.1"
        assert per_rcpt[0]["Remote-MTA"].startswith("dns; mx.dest.test")
        assert per_rcpt[0]["Diagnostic-Code"].replace("\r\n", "").replace("\n", "") == \
            "smtp; 550 5.1.1 <nobody@dest.test>: no such user"
        assert msg["To"].strip("<>") == ALICE
        assert msg["Auto-Submitted"] == "auto-replied"
        assert subject in raw.decode("utf-8", "replace")
        wait_queue_empty(srv)


def test_expiry_bounces_with_4_4_7(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, rcpt_replies={"jo@dest.test": "451 4.7.1 greylisted"}):
        srv = sender_server(make_server, dns, port, delivery={"expiry": "2s"})
        submit(srv, "jo@dest.test")
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
        _, _, per_rcpt = parse_dsn(srv.show(ALICE, "INBOX", rows[0]["uid"]))
        assert per_rcpt[0]["Status"] == "4.4.7"
        assert per_rcpt[0]["Action"] == "failed"
        wait_queue_empty(srv)


def test_notify_never_gets_no_bounce(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, rcpt_replies={"kim@dest.test": "550 5.1.1 unknown"}):
        srv = sender_server(make_server, dns, port)
        submit(srv, "kim@dest.test", rcpt_params="NOTIFY=NEVER")
        wait_log(srv, r"event=delivery .*rcpt=kim@dest\.test .*result=bounced")
        wait_queue_empty(srv)
        assert bounces(srv) == []


def test_connection_refused_defers_with_reason(make_server, dns):
    srv = sender_server(make_server, dns, peer_port(), delivery={"retry_schedule": "1h"})
    submit(srv, "lee@dest.test")
    line = wait_log(srv, r"event=delivery .*rcpt=lee@dest\.test")[0]
    assert "result=deferred status=4.4.1" in line
    assert "Connection refused" in line
    assert "lee@dest.test" in queue_text(srv)
    assert bounces(srv) == []


def test_dropped_at_end_of_data_is_retried(make_server, dns):
    port = peer_port()
    peer = SMTPPeer(PEER, port, drop_at="dot")
    try:
        srv = sender_server(make_server, dns, port)
        submit(srv, "max@dest.test")
        wait_log(srv, r"event=delivery .*rcpt=max@dest\.test .*result=deferred status=4\.4\.2")
    finally:
        peer.stop()
    with SMTPPeer(PEER, port) as peer2:
        assert peer2.wait_messages(1)[0].rcpts == ["max@dest.test"]
        wait_queue_empty(srv)


# --------------------------------------------------------------------------
# what the peer supports


def test_starttls_used_when_offered(make_server, dns, make_cert):
    port = peer_port()
    ctx = server_context(make_cert("mx.dest.test"))
    with SMTPPeer(PEER, port, tls_context=ctx) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "nia@dest.test")
        tx = peer.wait_messages(1)[0]
        assert tx.tls
        line = wait_log(srv, r"event=delivery .*rcpt=nia@dest\.test")[0]
        assert re.search(r" tls=TLSv1\.[23]/\S+ ", line), line


def test_helo_fallback_without_pipelining(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo_reply="502 5.5.1 EHLO not implemented") as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, ["oz1@dest.test", "oz2@dest.test"])
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["oz1@dest.test", "oz2@dest.test"]
        assert tx.mail_params == ""  # no extensions after HELO
        cmds = [c.split(" ")[0].upper() for c in peer.commands]
        assert cmds[:2] == ["EHLO", "HELO"]


def test_size_refused_by_peer_bounces(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=("SIZE 100", "ENHANCEDSTATUSCODES")) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "pat@dest.test", body=b"x" * 500 + b"\r\n")
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
        _, _, per_rcpt = parse_dsn(srv.show(ALICE, "INBOX", rows[0]["uid"]))
        assert per_rcpt[0]["Status"] == "5.3.4"
        assert peer.messages == []
        assert not any(c.upper().startswith("MAIL") for c in peer.commands)


def test_smtputf8_message_to_peer_without_it_bounces(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=("PIPELINING", "8BITMIME")) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "r\u00e9ne@dest.test".encode().decode(), mail_params="SMTPUTF8")
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
        raw = srv.show(ALICE, "INBOX", rows[0]["uid"])
        assert b"5.6.7" in raw
        assert peer.messages == []


def test_dsn_parameters_passed_on(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "quinn@dest.test", mail_params="RET=HDRS ENVID=abc+2Bdef",
               rcpt_params="NOTIFY=FAILURE,DELAY ORCPT=rfc822;quinn@dest.test")
        tx = peer.wait_messages(1)[0]
        assert "RET=HDRS" in tx.mail_params and "ENVID=abc+2Bdef" in tx.mail_params
        assert tx.rcpt_params == ["NOTIFY=FAILURE,DELAY ORCPT=rfc822;quinn@dest.test"]


# --------------------------------------------------------------------------
# durability


def test_kill9_with_full_queue_delivers_everything(make_server, dns):
    port = peer_port()
    srv = sender_server(make_server, dns, port, delivery={"retry_schedule": "1h"})
    subjects = [submit(srv, "s%d@dest.test" % i) for i in range(5)]
    # nothing listens yet: every entry is deferred for an hour
    wait_log(srv, r"event=delivery .*result=deferred", count=5)
    srv.kill9()
    with SMTPPeer(PEER, port) as peer:
        srv.start()
        srv.cli("queue", "flush")
        msgs = peer.wait_messages(5)
        got = set()
        for t in msgs:
            m = re.search(rb"Subject: (\S+)", t.data)
            got.add(m.group(1).decode())
        assert got == set(subjects)
        wait_queue_empty(srv)


# --------------------------------------------------------------------------
# a real peer: a second hermod as the receiving MTA


def test_delivery_to_a_second_hermod(make_server, dns_far):
    dns, _ = dns_far
    receiver = make_server(setup=False, tls=True)
    receiver.cli("domain", "add", "far.test")
    receiver.cli("user", "add", "zoe@far.test", "--password-stdin", input="zoe-pass-123\n")
    srv = sender_server(make_server, dns, receiver.port)
    subject = submit(srv, "zoe@far.test", body=b"to another hermod\r\n.hidden dot\r\n")
    rows = wait_inbox(receiver, "zoe@far.test", lambda r: r["subject"] == subject)
    raw = receiver.show("zoe@far.test", "INBOX", rows[0]["uid"])
    # the receiver's own trace fields, then exactly what was submitted
    assert raw.startswith(b"Return-Path: <%s>\r\n" % ALICE.encode())
    assert raw.endswith(b"\r\n\r\nto another hermod\r\n.hidden dot\r\n")
    wait_queue_empty(srv)
    line = wait_log(srv, r"event=delivery .*rcpt=zoe@far\.test")[0]
    assert "result=delivered" in line
    # the receiver offers STARTTLS with its certificate: it was used
    assert re.search(r" tls=TLSv1\.[23]/", line), line


@pytest.fixture(scope="module")
def dns_far():
    recs = ["--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.1"]
    with Dnsmasq(recs) as d:
        yield d, recs


# --------------------------------------------------------------------------
# smarthost with AUTH


def test_smarthost_with_auth_over_starttls(make_server, dns, tmp_path):
    relay = make_server(tls=True, submission=True)
    pwfile = tmp_path / "relay-password"
    pwfile.write_text(PASSWORDS[ALICE] + "\n")
    srv = sender_server(make_server, dns, 25, delivery={
        "smarthost": "127.0.0.1:%d" % relay.submission_port,
        "smarthost_user": ALICE, "smarthost_password_file": str(pwfile)})
    subject = submit(srv, "zed@far-away.test")
    wait_queue_empty(srv)
    line = wait_log(srv, r"event=delivery .*rcpt=zed@far-away\.test")[0]
    assert "relay=127.0.0.1[127.0.0.1]:%d" % relay.submission_port in line
    assert "result=delivered" in line
    assert re.search(r" tls=TLSv1\.[23]/", line), line
    # the relay took it from alice (authenticated) into its own queue
    wait_log(relay, r"event=delivered .* queued=1")
    out = relay.cli("queue", "list").stdout
    assert "zed@far-away.test" in out and ALICE in out
    assert relay.cli("queue", "show", relay.queue()[0]["id"]).stdout.count(subject) == 1


def test_smarthost_auth_never_in_plain_text(make_server, dns, tmp_path):
    port = peer_port()
    pwfile = tmp_path / "pw"
    pwfile.write_text("secret-pass\n")
    with SMTPPeer(PEER, port, ehlo=("PIPELINING", "AUTH PLAIN LOGIN")) as peer:
        srv = sender_server(make_server, dns, port, delivery={
            "smarthost": "%s:%d" % (PEER, port), "smarthost_user": "u1",
            "smarthost_password_file": str(pwfile), "retry_schedule": "1h"})
        submit(srv, "yan@far-away.test")
        line = wait_log(srv, r"event=delivery .*rcpt=yan@far-away\.test")[0]
        assert "result=deferred" in line
        assert "AUTH is only sent over TLS" in line
        assert not any(c.upper().startswith("AUTH") for c in peer.commands)
        assert not any(c.upper().startswith("MAIL") for c in peer.commands)


def test_smarthost_auth_refused_defers(make_server, dns, tmp_path):
    relay = make_server(tls=True, submission=True)
    pwfile = tmp_path / "pw"
    pwfile.write_text("wrong-password\n")
    srv = sender_server(make_server, dns, 25, delivery={
        "smarthost": "127.0.0.1:%d" % relay.submission_port,
        "smarthost_user": ALICE, "smarthost_password_file": str(pwfile),
        "retry_schedule": "1h"})
    submit(srv, "xia@far-away.test")
    line = wait_log(srv, r"event=delivery .*rcpt=xia@far-away\.test")[0]
    assert "result=deferred" in line
    assert "AUTH failed: 535 5.7.8 Authentication credentials invalid" in line
    assert bounces(srv) == []


def test_delay_warning_sent_once(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, rcpt_replies={"wes@dest.test": "451 4.2.0 mailbox busy"}):
        srv = sender_server(make_server, dns, port,
                            delivery={"delay_warning": "1s", "expiry": "1h"})
        submit(srv, "wes@dest.test")
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Delayed Mail"))
        raw = srv.show(ALICE, "INBOX", rows[0]["uid"])
        msg, _, per_rcpt = parse_dsn(raw)
        assert per_rcpt[0]["Action"] == "delayed"
        assert per_rcpt[0]["Status"] == "4.2.0"
        assert "Will-Retry-Until" in per_rcpt[0]
        assert per_rcpt[0]["Diagnostic-Code"] == "smtp; 451 4.2.0 mailbox busy"
        assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"
        # more attempts follow; no second warning
        wait_log(srv, r"event=delivery .*rcpt=wes@dest\.test .*attempt=4 ")
        assert len([r for r in srv.messages(ALICE)
                    if r["subject"].startswith("Delayed Mail")]) == 1
        assert "wes@dest.test" in queue_text(srv)


# --------------------------------------------------------------------------
# forwarding with SRS

SRS_SECRET = "test-srs-secret-0123456789"


def fwd_server(make_server, dns, port, **kw):
    srv = sender_server(make_server, dns, port, delivery={"srs_secret": SRS_SECRET}, **kw)
    srv.cli("alias", "add", "fwd@example.test", "far@dest.test")
    srv.cli("alias", "add", "both@example.test", ALICE)
    srv.cli("alias", "add", "both@example.test", "far2@dest.test")
    return srv


def test_forward_to_remote_alias_target_with_srs(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = fwd_server(make_server, dns, port)
        subject = unique("fwd")
        r = srv.deliver("fwd@example.test", make_message(subject, sender="orig@dest.test",
                                                         to="fwd@example.test"),
                        sender="orig@dest.test")
        assert re.match(r"^250 2\.0\.0 Ok: delivered as \S+$", r.line), r
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["far@dest.test"]
        assert re.match(r"^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=dest\.test=orig@example\.test$",
                        tx.mail_from), tx.mail_from
        # our Received: stays (loop detection at the next hop), no Return-Path
        assert tx.data.startswith(b"Received: ")
        assert ("Subject: %s" % subject).encode() in tx.data
        wait_queue_empty(srv)


def test_forward_alias_with_local_and_remote_targets(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = fwd_server(make_server, dns, port)
        subject = unique("both")
        srv.deliver("both@example.test", make_message(subject, to="both@example.test"))
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["far2@dest.test"]
        assert srv.find(ALICE, subject)
        wait_queue_empty(srv)


def test_bounce_through_srs_goes_back_to_the_original_sender(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = fwd_server(make_server, dns, port)
        srv.deliver("fwd@example.test", make_message(unique("b1"), sender="orig@dest.test"),
                    sender="orig@dest.test")
        srs = peer.wait_messages(1)[0].mail_from
        # the next hop bounces to the SRS address: hermod takes it for the
        # original sender and sends it on, with the sender <> kept
        bounce = make_message("bounce " + unique("b2"), sender="MAILER-DAEMON@dest.test",
                              to=srs)
        r = srv.deliver(srs, bounce, sender="")
        assert re.match(r"^250 2\.0\.0 Ok: delivered as \S+$", r.line), r
        tx = peer.wait_messages(2)[1]
        assert tx.rcpts == ["orig@dest.test"]
        assert tx.mail_from == ""
        # case changes on the way do not break it
        r = srv.deliver(srs.upper().replace("@EXAMPLE.TEST", "@example.test"),
                        bounce, sender="")
        assert r.line.startswith("250 "), r
        peer.wait_messages(3)


def test_forged_srs_address_refused(make_server, dns):
    srv = fwd_server(make_server, dns, peer_port())
    with srv.connect() as c:
        c.greet()
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").line.startswith("250")
        r = c.cmd("RCPT TO:<SRS0=abcd=AA=dest.test=orig@example.test>")
        assert r.line == "550 5.7.1 Invalid or expired SRS address", r
        # the session goes on
        assert c.cmd("RCPT TO:<%s>" % ALICE).line == "250 2.1.5 Ok"
        c.quit()


def test_forwarded_mail_refused_remotely_bounces_to_the_original_sender(make_server, dns):
    port = peer_port()
    replies = {"far@dest.test": "550 5.1.1 <far@dest.test>: no such user"}
    with SMTPPeer(PEER, port, rcpt_replies=replies) as peer:
        srv = fwd_server(make_server, dns, port)
        srv.deliver("fwd@example.test", make_message(unique("rf"), sender="orig@dest.test"),
                    sender="orig@dest.test")
        # the DSN goes to orig@dest.test (not to the SRS address), from <>
        tx = peer.wait_messages(1)[0]
        assert tx.rcpts == ["orig@dest.test"]
        assert tx.mail_from == ""
        msg = email.message_from_bytes(tx.data, policy=email.policy.compat32)
        assert msg.get_content_type() == "multipart/report"
        assert b"Final-Recipient: rfc822; far@dest.test" in tx.data
        wait_queue_empty(srv)


# --------------------------------------------------------------------------
# DKIM signing on the way out


def dkim_records(srv):
    """{"<selector>._domainkey.<domain>": TXT value} from `hermod dkim list`."""
    recs = {}
    for line in srv.cli("dkim", "list").stdout.splitlines():
        m = re.match(r'^\S+ \S+ \S+ (\S+)\. IN TXT((?: "[^"]*")+)$', line)
        assert m, line
        recs[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return recs


def dkimpy_results(msg, recs):
    import dkim

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        v = recs.get(name.rstrip("."))
        return v.encode() if v is not None else None

    def one(i):
        try:
            return dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException:
            return False

    n = sum(1 for l in msg.split(b"\r\n") if l.lower().startswith(b"dkim-signature:"))
    return [one(i) for i in range(n)]


def mailauth_results(npm_dir, tmp_path, msg, recs):
    import json
    import subprocess
    mf = tmp_path / "msg.eml"
    rf = tmp_path / "records.json"
    mf.write_bytes(msg)
    rf.write_text(json.dumps(recs))
    p = subprocess.run(["node", os.path.join(npm_dir, "dkim_verify.js"), str(mf), str(rf)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_outbound_mail_is_dkim_signed_with_both_keys(make_server, dns, npm_dir, tmp_path):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        srv.cli("dkim", "keygen", "example.test")
        recs = dkim_records(srv)
        assert len(recs) == 2
        body = b"signed body\r\n.dot line\r\n" + b"y" * 1200 + b"\r\n"
        submit(srv, "sig@dest.test", body=body)
        tx = peer.wait_messages(1)[0]
        msg = tx.data
        sigs = [l for l in msg.split(b"\r\n\r\n")[0].split(b"\r\n")
                if l.lower().startswith(b"dkim-signature:")]
        assert len(sigs) == 2
        assert msg.startswith(b"DKIM-Signature: ")
        head = msg.split(b"\r\n\r\n")[0].decode()
        assert "a=rsa-sha256" in head and "a=ed25519-sha256" in head
        assert "d=example.test" in head and "c=relaxed/relaxed" in head
        # two independent verifiers: dkimpy and mailauth
        assert dkimpy_results(msg, recs) == [True, True]
        res = mailauth_results(npm_dir, tmp_path, msg, recs)
        assert sorted((r["algo"], r["result"]) for r in res) == [
            ("ed25519-sha256", "pass"), ("rsa-sha256", "pass")], res
        # and both fail after tampering
        bad = msg.replace(b"signed body", b"signed b0dy", 1)
        assert dkimpy_results(bad, recs) == [False, False]
        res = mailauth_results(npm_dir, tmp_path, bad, recs)
        # mailauth calls a body hash mismatch "neutral" (RFC 6376 6.1.3), a bad
        # signature over the header "fail"
        assert [r["result"] for r in res] == ["neutral", "neutral"], res
        bad = msg.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1)
        assert dkimpy_results(bad, recs) == [False, False]
        res = mailauth_results(npm_dir, tmp_path, bad, recs)
        assert [r["result"] for r in res] == ["fail", "fail"], res


def test_no_key_no_signature(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "nosig@dest.test")
        assert b"DKIM-Signature" not in peer.wait_messages(1)[0].data


# --------------------------------------------------------------------------
# mail loops (RFC 5321 6.3)


def test_too_many_received_fields_refused(make_server, dns):
    srv = fwd_server(make_server, dns, peer_port())
    hops = tuple("Received: from h%d.test by h%d.test; Mon, 1 Jan 2024 00:00:00 +0000"
                 % (i, i + 1) for i in range(100))
    r = srv.deliver("fwd@example.test", make_message(unique("loop"), extra_headers=hops))
    assert r.line == "554 5.4.6 Too many hops", r
    # 99 still go through
    r = srv.deliver(ALICE, make_message(unique("ok"), extra_headers=hops[:99]))
    assert r.line.startswith("250 2.0.0 Ok: delivered as "), r
    assert queue_text(srv) == ""


# --------------------------------------------------------------------------
# connections kept for the next message


def test_connection_reused_for_the_next_message(make_server, dns, make_cert):
    port = peer_port()
    ctx = server_context(make_cert("mx.dest.test"))
    with SMTPPeer(PEER, port, tls_context=ctx) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "r1@dest.test")
        peer.wait_messages(1)
        wait_queue_empty(srv)
        submit(srv, "r2@dest.test")
        submit(srv, "r3@other.test")  # another domain, the same MX address
        msgs = peer.wait_messages(2)
        wait_queue_empty(srv)
        # other.test's MX is a different host name: its own connection
        assert peer.connections == 2, peer.commands
        assert [t.rcpts for t in msgs[:2]] == [["r1@dest.test"], ["r2@dest.test"]]
        assert all(t.tls for t in msgs)
        assert [c.split(" ")[0] for c in peer.commands].count("STARTTLS") == 2


def test_limits_mailmax_honoured(make_server, dns):
    # RFC 9422: MAILMAX=2 transactions a connection, RCPTMAX=1 recipient each
    port = peer_port()
    ehlo = ("PIPELINING", "ENHANCEDSTATUSCODES", "LIMITS MAILMAX=2 RCPTMAX=1")
    with SMTPPeer(PEER, port, ehlo=ehlo) as peer:
        srv = sender_server(make_server, dns, port, delivery={"retry_schedule": "1s"})
        submit(srv, ["m1@dest.test", "m2@dest.test", "m3@dest.test"])
        msgs = peer.wait_messages(3, timeout=30)
        wait_queue_empty(srv)
        assert sorted(r for t in msgs for r in t.rcpts) == \
            ["m1@dest.test", "m2@dest.test", "m3@dest.test"]
        assert all(len(t.rcpts) == 1 for t in msgs)
        # two transactions on the first connection, the third on another
        assert peer.connections == 2, peer.commands
        line = wait_log(srv, r"event=delivery .*rcpt=m3@dest\.test .*result=deferred")[0]
        assert "status=4.5.3" in line and "(LIMITS MAILMAX)" in line, line
        # the second connection is kept with one transaction left: m4 takes
        # it; past MAILMAX it is not kept, and m5 opens a third
        submit(srv, "m4@dest.test")
        peer.wait_messages(4)
        wait_queue_empty(srv)
        assert peer.connections == 2, peer.commands
        submit(srv, "m5@dest.test")
        peer.wait_messages(5)
        assert peer.connections == 3, peer.commands


def test_stale_kept_connection_replaced(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, close_after_message=True) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "s1@dest.test")
        peer.wait_messages(1)
        wait_queue_empty(srv)
        submit(srv, "s2@dest.test")
        assert peer.wait_messages(2)[1].rcpts == ["s2@dest.test"]
        wait_queue_empty(srv)
        assert peer.connections == 2
        line = wait_log(srv, r"event=delivery .*rcpt=s2@dest\.test")[0]
        assert "result=delivered status=2.0.0 attempt=1 " in line


# --------------------------------------------------------------------------
# a real peer: Postfix as the receiving MTA


def test_delivery_to_postfix(make_server, tmp_path):
    from postfixfix import Postfix
    with Postfix(host=PEER, domains=("post.test",)) as pf:
        recs = ["--mx-host=post.test,mx.post.test,10", "--host-record=mx.post.test,%s" % PEER]
        with Dnsmasq(recs) as pdns:
            srv = sender_server(make_server, pdns, pf.address[1])
            srv.cli("dkim", "keygen", "example.test")
            subject = submit(srv, ["pat@post.test", "quin@post.test"],
                             body=b"to postfix\r\n.leading dot\r\n")
            msgs = pf.wait_messages(2)
            for raw in msgs:
                assert ("Subject: %s" % subject).encode() in raw
                assert b"\n.leading dot\n" in raw.replace(b"\r\n", b"\n")
                assert b"DKIM-Signature: " in raw
            wait_queue_empty(srv)
            lines = wait_log(srv, r"event=delivery .*rcpt=\S+@post\.test", count=2)
            for l in lines:
                assert "relay=mx.post.test[%s]:%d" % (PEER, pf.address[1]) in l
                assert "result=delivered status=2.0.0" in l
                assert re.search(r" tls=TLSv1\.[23]/", l), l
            sent = [l for l in pf.log_lines() if "status=sent" in l]
            assert len(sent) == 2, pf.log_lines()[-20:]


# --------------------------------------------------------------------------
# the queue CLI against the running runner


def test_hold_release_and_admin_bounce(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, rcpt_replies={"held@dest.test": "451 4.3.0 later"}) as peer:
        srv = sender_server(make_server, dns, port, delivery={"retry_schedule": "1s"})
        submit(srv, "held@dest.test")
        wait_log(srv, r"event=delivery .*rcpt=held@dest\.test .*result=deferred")
        qid = srv.queue()[0]["id"]
        srv.cli("queue", "hold", qid)
        time.sleep(1.5)  # an attempt leased just before the hold ends meanwhile
        n = len(wait_log(srv, r"event=delivery .*rcpt=held@dest\.test"))
        time.sleep(3)  # held: not tried however due it is
        assert len(wait_log(srv, r"event=delivery .*rcpt=held@dest\.test")) == n
        assert "held" in queue_text(srv)
        # bounce: released, and bounced by the runner with a DSN, not tried
        srv.cli("queue", "bounce", qid)
        rows = wait_inbox(srv, ALICE, lambda r: r["subject"].startswith("Undelivered"))
        _, _, per_rcpt = parse_dsn(srv.show(ALICE, "INBOX", rows[0]["uid"]))
        assert per_rcpt[0]["Final-Recipient"] == "rfc822; held@dest.test"
        assert per_rcpt[0]["Status"] == "5.0.0"
        assert per_rcpt[0]["Diagnostic-Code"] == \
            "X-hermod; the message was bounced by the administrator"
        wait_queue_empty(srv)
        assert peer.messages == []


def test_entry_whose_message_is_gone_is_deferred_not_stuck(make_server, dns):
    import sqlite3
    port = peer_port()
    srv = sender_server(make_server, dns, port, delivery={"retry_schedule": "1h"})
    submit(srv, "lost@dest.test")  # nobody listens: deferred
    wait_log(srv, r"event=delivery .*rcpt=lost@dest\.test .*result=deferred")
    qid = srv.queue()[0]["id"]
    # a damaged data dir: the blob's row is gone
    db = sqlite3.connect(os.path.join(srv.data_dir, "hermod.db"), timeout=10)
    db.execute("DELETE FROM blobs WHERE id = (SELECT blob FROM queue WHERE id = ?)", (qid,))
    db.commit()
    db.close()
    srv.cli("queue", "flush", qid)
    line = wait_log(srv, r"event=delivery .*rcpt=lost@dest\.test .*status=4\.3\.0")[0]
    assert 'result=deferred status=4.3.0 attempt=2 ' in line, line
    assert 'reply="local error: the queued message cannot be read"' in line, line
    wait_log(srv, r"event=queue-blob-missing queue=%s " % qid)
    # recorded and released: not leased, next try on the schedule
    q = srv.queue()[0]
    assert q["states"]["lost@dest.test"] == \
        "deferred: local error: the queued message cannot be read", q
    assert "being tried" not in q["state"], q
    # and the server goes on serving
    submit(srv, "next@dest.test")


# --------------------------------------------------------------------------
# CHUNKING (RFC 3030) on the way out

EHLO_CHUNKING = ("PIPELINING", "8BITMIME", "SIZE 100000000", "ENHANCEDSTATUSCODES", "DSN",
                 "SMTPUTF8", "CHUNKING")


def submit_bdat(srv, rcpt, data, body_param=""):
    """Submits data (the whole message) with one BDAT LAST."""
    c = srv.connect_465()
    c.login(ALICE, PASSWORDS[ALICE])
    r = c.cmd("MAIL FROM:<%s>%s" % (ALICE, (" " + body_param) if body_param else ""))
    assert r.line == "250 2.1.0 Ok", r
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r.line == "250 2.1.5 Ok", r
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    r = c.read_reply()
    assert QUEUED_RE.match(r.line), r
    c.quit()


def test_chunking_peer_gets_bdat_without_dot_stuffing(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=EHLO_CHUNKING) as peer:
        srv = sender_server(make_server, dns, port)
        srv.cli("dkim", "keygen", "example.test")
        subject = submit(srv, "bdat@dest.test", body=b"one\r\n.\r\n..two\r\n")
        tx = peer.wait_messages(1)[0]
        # the DKIM-Signature chunk, then the message in one LAST chunk
        assert [last for _, last in peer.chunks] == [False, True], peer.chunks
        assert tx.data.startswith(b"DKIM-Signature: ")
        assert ("Subject: %s" % subject).encode() in tx.data
        assert tx.data.endswith(b"\r\n\r\none\r\n.\r\n..two\r\n")
        assert not any(c.upper().startswith("DATA") for c in peer.commands)
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=bdat@dest\.test")[0]
        assert "result=delivered status=2.0.0" in line, line


def test_chunking_refused_chunk_bounces_with_its_reply(make_server, dns):
    port = peer_port()
    with SMTPPeer(PEER, port, ehlo=EHLO_CHUNKING,
                  data_reply="554 5.6.0 Content refused") as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "nobdat@dest.test")
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=nobdat@dest\.test")[0]
        assert "result=bounced status=5.6.0" in line, line
        assert 'reply="554 5.6.0 Content refused"' in line, line
        assert peer.messages == []


def test_binarymime_goes_raw_to_a_peer_with_binarymime(make_server, dns):
    port = peer_port()
    data = (b"From: <%s>\r\nTo: <bin@dest.test>\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
            b"\r\n\x00\x01\xff binary octets\r\n.\r\n" % ALICE.encode())
    with SMTPPeer(PEER, port, ehlo=EHLO_CHUNKING + ("BINARYMIME",)) as peer:
        srv = sender_server(make_server, dns, port)
        submit_bdat(srv, "bin@dest.test", data, body_param="BODY=BINARYMIME")
        tx = peer.wait_messages(1)[0]
        assert "BODY=BINARYMIME" in tx.mail_params.split(), tx.mail_params
        # as stored, byte for byte, no dot-stuffing (the submission port's
        # trace field first)
        assert tx.data.endswith(data), tx.data[-200:]
        assert peer.chunks[-1][1] is True
        wait_queue_empty(srv)


def test_binarymime_to_a_peer_without_it_bounces(make_server, dns):
    port = peer_port()
    data = b"From: <%s>\r\nSubject: binary2\r\n\r\n\x00x\r\n" % ALICE.encode()
    with SMTPPeer(PEER, port, ehlo=EHLO_CHUNKING) as peer:
        srv = sender_server(make_server, dns, port)
        submit_bdat(srv, "bin2@dest.test", data, body_param="BODY=BINARYMIME")
        wait_queue_empty(srv)
        line = wait_log(srv, r"event=delivery .*rcpt=bin2@dest\.test")[0]
        assert "result=bounced status=5.6.3" in line, line
        assert ("the message is BINARYMIME and the receiving server does not support "
                "BINARYMIME and CHUNKING") in line
        assert peer.messages == []


def test_chunking_without_pipelining_one_chunk_at_a_time(make_server, dns):
    port = peer_port()
    body = b"".join(b"line %06d of a large message\r\n" % i for i in range(10000))
    with SMTPPeer(PEER, port, ehlo=("CHUNKING", "SIZE 100000000")) as peer:
        srv = sender_server(make_server, dns, port)
        submit(srv, "big@dest.test", body=body)
        tx = peer.wait_messages(1)[0]
        assert tx.data.endswith(b"\r\n\r\n" + body)
        # 128 KiB read steps: several chunks, the last one LAST
        assert len(peer.chunks) == 3, peer.chunks
        assert [last for _, last in peer.chunks] == [False, False, True]
        # without PIPELINING each command waited for its reply: the log of
        # commands is in order and complete
        cmds = [c.split()[0].upper() for c in peer.commands]
        assert cmds[:3] == ["EHLO", "MAIL", "RCPT"]
        assert cmds[3:6] == ["BDAT", "BDAT", "BDAT"]
        wait_queue_empty(srv)
