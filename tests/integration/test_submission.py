"""Submission (RFC 6409) on the submission (587 role, STARTTLS) and
submissions (465 role, implicit TLS) listeners (issue 3): delivery to local
users and into the outbound queue, Message-ID/Date added when missing, AUTH
required before MAIL, sender ownership (own address, plus-address, alias; not
another user's address nor a catch-all), the From: header check, the
per-user rate limit, and nodemailer as a real client."""

import email.utils
import json
import re
import uuid

import pytest

from conftest import (ALICE, BOB, HOSTNAME, PASSWORDS, QUEUED_RE, SMTP_SSLName, SMTPName,
                      header_value, make_message, module_server, run_node, unique)

NOT_OWNED = "553 5.7.1 Sender address not owned by authenticated user"
FROM_NOT_OWNED = "550 5.7.1 From: header not owned by authenticated user"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
RATE_LIMITED = "452 4.7.1 Sending rate limit exceeded, try again later"
REMOTE = "someone@remote.test"


@pytest.fixture(scope="module")
def sub(hermod_bin, tls_cert):
    yield from module_server(hermod_bin, "submission", tls=tls_cert, submission=True)


def _msg(subject, sender=ALICE, to=BOB, msgid=True, date=True, body=b"submitted\r\n",
         from_header=None):
    hdrs = ["From: %s" % (from_header or "Alice <%s>" % sender), "To: <%s>" % to,
            "Subject: %s" % subject]
    if msgid is True:
        msgid = "<%s@client.example.test>" % uuid.uuid4().hex
    if msgid:
        hdrs.append("Message-ID: %s" % msgid)
    if date is True:
        date = "Tue, 02 Jan 2024 03:04:05 +0100"
    if date:
        hdrs.append("Date: %s" % date)
    return ("\r\n".join(hdrs) + "\r\n\r\n").encode() + body


def _session(srv, port, user=ALICE):
    c = srv.connect_587() if port == "587" else srv.connect_465()
    c.login(user, PASSWORDS[user])
    return c


# ---------------------------------------------------------------- delivery


@pytest.mark.parametrize("port", ["587", "465"])
def test_smtplib_local_delivery(sub, port):
    subject = unique("sub-local-" + port)
    msgid = "<%s@client.example.test>" % uuid.uuid4().hex
    raw = _msg(subject, msgid=msgid)
    if port == "587":
        s = SMTPName(sub.host, sub.submission_port)
        s.starttls(context=sub.context())
    else:
        s = SMTP_SSLName(sub.host, sub.submissions_port, context=sub.context())
    with s:
        s.ehlo()
        s.login(ALICE, PASSWORDS[ALICE])
        code, resp = s.mail(ALICE)
        assert code == 250
        code, resp = s.rcpt(BOB)
        assert (code, resp) == (250, b"2.1.5 Ok")
        code, resp = s.data(raw)
        assert code == 250 and QUEUED_RE.match("250 " + resp.decode()), resp
    stored = sub.fetch_one(BOB, subject)
    # given Message-ID and Date are kept as they are
    assert header_value(stored, "Message-ID") == msgid
    assert header_value(stored, "Date") == "Tue, 02 Jan 2024 03:04:05 +0100"
    assert b"\r\n\r\nsubmitted\r\n" in stored


@pytest.mark.parametrize("port", ["587", "465"])
def test_message_id_and_date_added(sub, port):
    subject = unique("sub-noid-" + port)
    with _session(sub, port) as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        r = c.data(_msg(subject, msgid=None, date=None))
        assert QUEUED_RE.match(r.line), r
        c.quit()
    stored = sub.fetch_one(BOB, subject)
    mid = header_value(stored, "Message-ID")
    assert mid and re.match(r"^<[^<>@\s]+@[^<>@\s]+>$", mid), stored[:800]
    date = header_value(stored, "Date")
    assert date, stored[:800]
    assert email.utils.parsedate_to_datetime(date) is not None
    # exactly one of each
    head = stored.split(b"\r\n\r\n", 1)[0].lower()
    assert head.count(b"\r\nmessage-id:") + head.startswith(b"message-id:") == 1
    assert head.count(b"\r\ndate:") + head.startswith(b"date:") == 1


def test_smtplib_send_message_without_ids(sub):
    """smtplib's send_message with an EmailMessage that has neither header."""
    from email.message import EmailMessage
    subject = unique("sub-sendmsg")
    m = EmailMessage()
    m["From"] = ALICE
    m["To"] = BOB
    m["Subject"] = subject
    m.set_content("hello from send_message\n")
    with SMTP_SSLName(sub.host, sub.submissions_port, context=sub.context()) as s:
        s.login(ALICE, PASSWORDS[ALICE])
        assert s.send_message(m) == {}
    stored = sub.fetch_one(BOB, subject)
    assert header_value(stored, "Message-ID")
    assert header_value(stored, "Date")


def _send_remote(sub, port, subject):
    """One submission to REMOTE; returns (id named in the 250 reply, the
    queue rows that appeared during it)."""
    before = {q["id"] for q in sub.queue()}
    with _session(sub, port) as c:
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<%s>" % REMOTE).line == "250 2.1.5 Ok"
        r = c.data(_msg(subject, to=REMOTE))
        m = QUEUED_RE.match(r.line)
        assert m, r
        c.quit()
    return m.group(1), [q for q in sub.queue() if q["id"] not in before]


@pytest.mark.parametrize("port", ["587", "465"])
def test_remote_recipient_is_queued(sub, port):
    subject = unique("sub-remote-" + port)
    _qid, new = _send_remote(sub, port, subject)
    # exactly one queue entry appeared, for this sender and recipient
    assert len(new) == 1, new
    assert new[0]["sender"] == ALICE and new[0]["rcpts"] == [REMOTE], new
    # the sender's own mailbox is not touched and nothing went to a local user
    assert sub.find(BOB, subject) == []


def test_remote_recipient_reply_names_queue_id(sub):
    qid, new = _send_remote(sub, "465", unique("sub-qid"))
    assert [q["id"] for q in new] == [qid], (qid, new)


def test_local_and_remote_recipients(sub):
    subject = unique("sub-mixed")
    with _session(sub, "465") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        c.rcpt("other@remote.test")
        c.rcpt("third@elsewhere.test")
        r = c.data(_msg(subject, to=BOB))
        assert QUEUED_RE.match(r.line), r
        c.quit()
    sub.fetch_one(BOB, subject)
    rows = [q for q in sub.queue() if q["sender"] == ALICE and
            "other@remote.test" in q["rcpts"]]
    assert rows, sub.cli("queue", "list").stdout
    assert "third@elsewhere.test" in rows[-1]["rcpts"]
    assert BOB not in rows[-1]["rcpts"]


def test_local_unknown_user(sub):
    with _session(sub, "587") as c:
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<nosuchuser@example.test>").line == "550 5.1.1 User unknown"
        c.quit()


def test_mail_before_auth(sub):
    for c in (sub.connect_587(), sub.connect_465()):
        with c:
            assert c.cmd("MAIL FROM:<%s>" % ALICE).line == AUTH_REQUIRED
            assert c.cmd("RCPT TO:<%s>" % BOB).code == 503
            c.login(ALICE, PASSWORDS[ALICE])
            c.mail(ALICE)
            c.quit()


def test_mail_before_auth_plaintext_587(sub):
    with sub.connect_587(starttls=False) as c:
        assert c.cmd("MAIL FROM:<%s>" % ALICE).line == AUTH_REQUIRED
        c.quit()


def test_port25_still_refuses_relay_with_tls(sub):
    """STARTTLS on port 25 gives no relay rights."""
    with sub.connect() as c:
        c.greet()
        c.ehlo()
        c.starttls(sub.context())
        c.ehlo()
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<%s>" % REMOTE).line == "554 5.7.1 Relay access denied"
        c.quit()


# ---------------------------------------------------------------- sender ownership


@pytest.mark.parametrize("sender", [
    ALICE,
    "alice@Example.TEST",
    "alice+lists@example.test",
    "info@example.test",          # alias -> alice
])
def test_owned_senders(sub, sender):
    subject = unique("owned")
    with _session(sub, "465") as c:
        assert c.cmd("MAIL FROM:<%s>" % sender).line == "250 2.1.0 Ok"
        c.rcpt(BOB)
        r = c.data(_msg(subject, from_header="<%s>" % sender))
        assert QUEUED_RE.match(r.line), r
        c.quit()
    sub.fetch_one(BOB, subject)


@pytest.mark.parametrize("sender", [
    BOB,                          # another user
    "bob+x@example.test",
    "anyone@catch.test",          # catch-all -> bob: no ownership
    "alice@catch.test",
    "stranger@remote.test",
    "alice@example.test.evil",
])
def test_not_owned_senders(sub, sender):
    with _session(sub, "587") as c:
        assert c.cmd("MAIL FROM:<%s>" % sender).line == NOT_OWNED
        # the session goes on
        c.mail(ALICE)
        c.quit()


def test_catch_all_target_does_not_own_catch_all(sub):
    """bob is the catch-all target of @catch.test, but may not send as any
    address there."""
    with _session(sub, "465", user=BOB) as c:
        assert c.cmd("MAIL FROM:<whatever@catch.test>").line == NOT_OWNED
        assert c.cmd("MAIL FROM:<%s>" % ALICE).line == NOT_OWNED
        c.mail(BOB)
        c.quit()


# ---------------------------------------------------------------- From: header


@pytest.mark.parametrize("from_header", [
    "<%s>" % BOB,
    "Bob <bob@example.test>",
    "Alice <stranger@remote.test>",
    "Alice <alice@example.test>, Bob <bob@example.test>",
    # a second From: field must not carry a forged address past the check
    "Alice <alice@example.test>\r\nFrom: Bob <bob@example.test>",
])
def test_from_header_mismatch(sub, from_header):
    subject = unique("from-mismatch")
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        r = c.data(_msg(subject, from_header=from_header))
        assert r.line == FROM_NOT_OWNED, r
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert sub.find(BOB, subject) == []


@pytest.mark.parametrize("from_header", [
    "Alice <alice@example.test>",
    "alice@example.test",
    "\"Alice, Dept.\" <alice@EXAMPLE.test>",
    "<alice+news@example.test>",
    "Info <info@example.test>",
])
def test_from_header_owned(sub, from_header):
    subject = unique("from-ok")
    with _session(sub, "465") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        r = c.data(_msg(subject, from_header=from_header))
        assert QUEUED_RE.match(r.line), r
        c.quit()
    sub.fetch_one(BOB, subject)


def test_from_match_off(make_server):
    srv = make_server(tls=True, submission=True,
                      extra={"submission": {"require_from_match": "no"}})
    subject = unique("from-off")
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.mail(ALICE)
        c.rcpt(BOB)
        r = c.data(_msg(subject, from_header="Someone <someone@remote.test>"))
        assert QUEUED_RE.match(r.line), r
        # the envelope is still checked
        assert c.cmd("MAIL FROM:<%s>" % BOB).line == NOT_OWNED
        c.quit()
    srv.fetch_one(BOB, subject)


NO_FROM = "550 5.6.0 Message has no From: address"


def _msg_from_lines(subject, from_lines):
    """A message whose From: fields are exactly from_lines (none: no From:)."""
    hdrs = list(from_lines) + ["To: <%s>" % BOB, "Subject: %s" % subject,
                               "Message-ID: <%s@client.example.test>" % uuid.uuid4().hex,
                               "Date: Tue, 02 Jan 2024 03:04:05 +0100"]
    return ("\r\n".join(hdrs) + "\r\n\r\nsubmitted\r\n").encode()


NO_FROM_FORMS = [
    [],                                   # no From: field at all
    ["From: <>"],
    ["From: undisclosed:;"],
    ["From: Undisclosed recipients: ;"],
    ["From: <>", "From: undisclosed:;"],
]


@pytest.mark.parametrize("from_lines", NO_FROM_FORMS)
def test_from_header_without_mailbox_refused(sub, from_lines):
    """RFC 5322 3.6: From: must name at least one mailbox; the MSA does not
    invent one."""
    subject = unique("no-from")
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert c.data(_msg_from_lines(subject, from_lines)).line == NO_FROM
        # the session goes on
        c.mail(ALICE)
        c.rcpt(BOB)
        subject2 = unique("after-no-from")
        assert QUEUED_RE.match(c.data(_msg(subject2)).line)
        c.quit()
    assert sub.find(BOB, subject) == []
    sub.fetch_one(BOB, subject2)


@pytest.mark.parametrize("from_line", ["From: Team: alice@example.test;",
                                       "From: <>, Alice <alice@example.test>"])
def test_from_header_group_with_mailbox_accepted(sub, from_line):
    subject = unique("group-from")
    with _session(sub, "465") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert QUEUED_RE.match(c.data(_msg_from_lines(subject, [from_line])).line)
        c.quit()
    sub.fetch_one(BOB, subject)


def test_from_header_without_mailbox_refused_match_off(make_server):
    """require_from_match = no lets any From: address through, not none."""
    srv = make_server(tls=True, submission=True,
                      extra={"submission": {"require_from_match": "no"}})
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        for from_lines in NO_FROM_FORMS[:3]:
            c.mail(ALICE)
            c.rcpt(BOB)
            assert c.data(_msg_from_lines(unique("no-from-off"), from_lines)).line == NO_FROM
        c.mail(ALICE)
        c.rcpt(BOB)
        subject = unique("after-no-from-off")
        assert QUEUED_RE.match(c.data(_msg(subject)).line)
        c.quit()
    srv.fetch_one(BOB, subject)


# ---------------------------------------------------------------- rate limit


def test_rate_limit(make_server):
    srv = make_server(tls=True, submission=True, extra={"submission": {"rate_limit": "3"}})
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.mail(ALICE)
        c.rcpt(BOB)
        c.rcpt("r1@remote.test")
        assert QUEUED_RE.match(c.data(_msg(unique("rate1"))).line)
        c.mail(ALICE)
        c.rcpt("r2@remote.test")
        assert QUEUED_RE.match(c.data(_msg(unique("rate2"))).line)
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<%s>" % BOB).line == RATE_LIMITED
        assert c.cmd("RCPT TO:<r3@remote.test>").line == RATE_LIMITED
        c.quit()
    # a new session of the same user is limited too
    with srv.connect_587() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<%s>" % BOB).line == RATE_LIMITED
        c.quit()
    # another user is not
    with srv.connect_465() as c:
        c.login(BOB, PASSWORDS[BOB])
        c.mail(BOB)
        c.rcpt(ALICE)
        c.rcpt("r4@remote.test")
        assert QUEUED_RE.match(c.data(_msg(unique("rate-bob"), sender=BOB,
                                           from_header="<%s>" % BOB, to=ALICE)).line)
        c.quit()


def test_rate_limit_within_one_transaction(make_server):
    srv = make_server(tls=True, submission=True, extra={"submission": {"rate_limit": "3"}})
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.mail(ALICE)
        for r in ("a@remote.test", "b@remote.test", "c@remote.test"):
            c.rcpt(r)
        assert c.cmd("RCPT TO:<d@remote.test>").line == RATE_LIMITED
        # the accepted three still go
        assert QUEUED_RE.match(c.data(_msg(unique("rate-tx"), to="a@remote.test")).line)
        c.quit()


def test_rate_limit_pipelined_rcpts(make_server):
    """Pipelined RCPTs resolved by one lookup job still take the rate limit one
    recipient at a time, in order."""
    srv = make_server(tls=True, submission=True, extra={"submission": {"rate_limit": "3"}})
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.send(("MAIL FROM:<%s>\r\n" % ALICE).encode() +
               b"RCPT TO:<a@remote.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<b@remote.test>\r\n"
               + ("RCPT TO:<%s>\r\n" % BOB).encode() +
               b"RCPT TO:<c@remote.test>\r\n"
               b"RCPT TO:<d@remote.test>\r\n")
        assert [c.read_reply().line for _ in range(7)] == [
            "250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 User unknown", "250 2.1.5 Ok",
            "250 2.1.5 Ok", RATE_LIMITED, RATE_LIMITED]
        assert QUEUED_RE.match(c.data(_msg(unique("rate-pipe"), to="a@remote.test")).line)
        c.quit()


def test_rate_limit_off(make_server):
    srv = make_server(tls=True, submission=True, extra={"submission": {"rate_limit": "0"}})
    with srv.connect_465() as c:
        c.login(ALICE, PASSWORDS[ALICE])
        c.mail(ALICE)
        for i in range(20):
            c.rcpt("r%d@remote.test" % i)
        assert QUEUED_RE.match(c.data(_msg(unique("rate-off"))).line)
        c.quit()


# ---------------------------------------------------------------- nodemailer


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_nodemailer(sub, npm_dir, mode):
    subject = unique("nodemailer-" + mode)
    port = sub.submission_port if mode == "starttls" else sub.submissions_port
    args = ["--host", sub.host, "--port", port, "--servername", HOSTNAME,
            "--ca", sub.cert_path, "--user", ALICE, "--pass", PASSWORDS[ALICE],
            "--from", "Alice <%s>" % ALICE, "--to", "%s,%s" % (BOB, REMOTE),
            "--subject", subject, "--text", "Hello from nodemailer (%s)\n" % mode]
    if mode == "implicit":
        args.append("--secure")
    p = run_node("send.js", args)
    assert p.returncode == 0, "send.js: %s\n%s" % (p.stdout, p.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert QUEUED_RE.match(out["response"]), out
    assert sorted(out["accepted"]) == sorted([BOB, REMOTE]), out
    stored = sub.fetch_one(BOB, subject)
    assert header_value(stored, "Message-ID") == out["messageId"]
    assert b"Hello from nodemailer" in stored
    assert any(REMOTE in q["rcpts"] and q["sender"] == ALICE for q in sub.queue())


def test_nodemailer_bad_password(sub, npm_dir):
    p = run_node("send.js", ["--port", sub.submissions_port, "--secure", "--ca", sub.cert_path,
                             "--user", ALICE, "--pass", "wrong", "--from", ALICE, "--to", BOB])
    assert p.returncode == 1, p.stdout + p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.get("responseCode") == 535, out


def test_nodemailer_env_options(sub, npm_dir):
    subject = unique("nodemailer-env")
    p = run_node("send.js", [], env={
        "SEND_PORT": str(sub.submission_port), "SEND_CA": sub.cert_path,
        "SEND_USER": BOB, "SEND_PASS": PASSWORDS[BOB], "SEND_FROM": BOB,
        "SEND_TO": ALICE, "SEND_SUBJECT": subject})
    assert p.returncode == 0, p.stdout + p.stderr
    sub.fetch_one(ALICE, subject)


# ---------------------------------------------------------------- queue envelope


def _queue_row(srv, qid):
    """The queue entry and its recipients as the store keeps them (read-only)."""
    import sqlite3
    db = sqlite3.connect("file:%s/hermod.db?mode=ro" % srv.data_dir, uri=True)
    try:
        q = db.execute("SELECT body, smtputf8, envid, ret, trace_len, blob FROM queue "
                       "WHERE id = ?", (int(qid),)).fetchone()
        rcpts = db.execute("SELECT rcpt, notify, orcpt FROM queue_rcpts WHERE queue_id = ? "
                           "ORDER BY rowid", (int(qid),)).fetchall()
    finally:
        db.close()
    return q, rcpts


def test_queue_id_and_envelope_kept(sub):
    """The 250 names the queue entry (as `hermod queue list` does), and the
    entry keeps BODY, SMTPUTF8, ENVID, RET, NOTIFY and ORCPT, and the length
    of our local-only Return-Path: line."""
    subject = unique("dsn-queue")
    with _session(sub, "587") as c:
        c.mail(ALICE, params="BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+2B42")
        assert c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40remote.test"
                     % REMOTE).line == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<other@remote.test> NOTIFY=NEVER").line == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<third@remote.test>").line == "250 2.1.5 Ok"
        c.rcpt(BOB)
        r = c.data(_msg(subject, to=REMOTE))
        assert r.line.startswith("250 2.0.0 Ok: queued as "), r
        qid = QUEUED_RE.match(r.line).group(1)
        assert qid.isdigit(), r
        c.quit()
    rows = [q for q in sub.queue() if q["id"] == qid]
    assert len(rows) == 1, sub.cli("queue", "list").stdout
    assert rows[0]["sender"] == ALICE
    assert rows[0]["rcpts"] == [REMOTE, "other@remote.test", "third@remote.test"]
    q, rcpts = _queue_row(sub, qid)
    body, smtputf8, envid, ret, trace_len, _ = q
    assert (body, smtputf8, envid, ret) == (1, 1, "env+2B42", 2)   # 8BITMIME, HDRS
    assert rcpts == [(REMOTE, 2 | 8, "rfc822;x+40remote.test"),    # SUCCESS|DELAY
                     ("other@remote.test", 1, None),               # NEVER
                     ("third@remote.test", 0, None)]
    shown = sub.cli("queue", "show", qid, binary_out=True).stdout
    _, sep, queued = shown.partition(b"\n\n")  # envelope lines, blank line, message
    assert sep == b"\n\n"
    return_path = b"Return-Path: <%s>\r\n" % ALICE.encode()
    assert queued.startswith(return_path)
    assert trace_len == len(return_path)
    assert queued[trace_len:].startswith(b"Received: ")
    # the local copy is the same message
    sub.fetch_one(BOB, subject)


def test_queue_id_only_local_recipients(sub):
    """Nothing queued: the 250 names the transaction, not a queue entry."""
    subject = unique("sub-local-only")
    before = {q["id"] for q in sub.queue()}
    with _session(sub, "465") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        r = c.data(_msg(subject))
        qid = QUEUED_RE.match(r.line).group(1)
        assert not qid.isdigit(), r
        c.quit()
    assert {q["id"] for q in sub.queue()} == before
    sub.fetch_one(BOB, subject)


def test_message_id_and_date_inserted_after_trace(sub):
    """The added Message-ID: and Date: follow our trace fields; the client's
    header section follows unchanged."""
    subject = unique("fixup")
    raw = _msg(subject, msgid=False, date=False)
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert QUEUED_RE.match(c.data(raw).line)
        c.quit()
    stored = sub.fetch_one(BOB, subject)
    lines = stored.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: ")
    assert lines[1].startswith(b"Received: ")
    i = 2
    while lines[i].startswith(b"\t"):
        i += 1
    assert re.match(rb"^Message-ID: <[^@>]+@" + HOSTNAME.encode() + rb">$", lines[i])
    assert lines[i + 1].startswith(b"Date: ")
    assert b"\r\n".join(lines[i + 2:]) == raw


# ---------------------------------------------------------------- header section bound


def _msg_with_padding(subject, pad_bytes):
    pad = "".join("X-Pad-%d: %s\r\n" % (i, "p" * 990) for i in range(pad_bytes // 1000 + 1))
    return _msg(subject).replace(b"\r\n\r\n", b"\r\n" + pad.encode() + b"\r\n", 1)


def test_header_section_over_bound_refused(sub):
    """The From:/Date/Message-ID checks read at most 256 KiB of header section;
    a longer one cannot be checked and is refused."""
    subject = unique("big-header")
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert c.data(_msg_with_padding(subject, 300 * 1024)).line == \
            "552 5.3.4 Header section too large"
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert sub.find(BOB, subject) == []


def test_header_section_under_bound_accepted(sub):
    subject = unique("large-header")
    raw = _msg_with_padding(subject, 200 * 1024)
    with _session(sub, "465") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert QUEUED_RE.match(c.data(raw).line)
        c.quit()
    stored = sub.fetch_one(BOB, subject)
    assert stored.endswith(raw)


def test_forged_from_after_large_header_section(sub):
    """A second From: far down a long (but bounded) header section is still
    checked."""
    subject = unique("late-from")
    raw = _msg_with_padding(subject, 200 * 1024).replace(
        b"\r\n\r\n", b"\r\nFrom: Bob <bob@example.test>\r\n\r\n", 1)
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert c.data(raw).line == FROM_NOT_OWNED
        c.quit()
    assert sub.find(BOB, subject) == []


def test_header_section_of_exactly_the_bound_accepted(sub):
    subject = unique("exact-header")
    raw = _msg_with_padding(subject, 250 * 1024)
    head, body = raw.split(b"\r\n\r\n", 1)
    fill = 256 * 1024 - (len(head) + 4) - len(b"X-Fill: \r\n")
    assert fill > 0
    raw = head + b"\r\nX-Fill: " + b"f" * fill + b"\r\n\r\n" + body
    assert raw.index(b"\r\n\r\n") + 4 == 256 * 1024
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        assert QUEUED_RE.match(c.data(raw).line)
        c.quit()
    assert sub.fetch_one(BOB, subject).endswith(raw)


def _bdat_in_chunks(c, msg, size):
    """Sends msg as BDAT chunks of `size` octets (the last one with LAST) and
    returns the reply to the LAST chunk."""
    pieces = [msg[i:i + size] for i in range(0, len(msg), size)]
    for i, p in enumerate(pieces[:-1]):
        c.send(b"BDAT %d\r\n" % len(p) + p)
        r = c.read_reply()
        assert r.line == "250 2.0.0 %d octets received" % len(p), (i, r)
    last = pieces[-1]
    c.send(b"BDAT %d LAST\r\n" % len(last) + last)
    return c.read_reply()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_from_check_over_bdat_chunk_splits(sub, size):
    """The submission checks follow the header section as it arrives: the
    From:, Date: and Message-ID: fields split at any octet give the same
    decisions as sent in one piece."""
    forged = unique("bdat-forged")
    owned = unique("bdat-owned")
    nofrom = unique("bdat-nofrom")
    with _session(sub, "587") as c:
        c.mail(ALICE)
        c.rcpt(BOB)
        r = _bdat_in_chunks(c, _msg(forged, from_header="Bob <bob@example.test>"), size)
        assert r.line == FROM_NOT_OWNED, r
        c.mail(ALICE)
        c.rcpt(BOB)
        r = _bdat_in_chunks(c, _msg(owned, msgid=False, date=False), size)
        assert QUEUED_RE.match(r.line), r
        c.mail(ALICE)
        c.rcpt(BOB)
        r = _bdat_in_chunks(c, _msg_from_lines(nofrom, []), size)
        assert r.line == NO_FROM, r
        assert c.cmd("NOOP").line == "250 2.0.0 Ok"
        c.quit()
    assert sub.find(BOB, forged) == []
    assert sub.find(BOB, nofrom) == []
    stored = sub.fetch_one(BOB, owned)
    # the missing Date: and Message-ID: were added once each
    head = stored.split(b"\r\n\r\n", 1)[0]
    assert len(re.findall(rb"(?im)^Date:", head)) == 1, head
    assert len(re.findall(rb"(?im)^Message-ID:", head)) == 1, head
