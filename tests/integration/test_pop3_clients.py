"""POP3 with real clients (issue 4): curl (pop3s:// and pop3:// with
--ssl-reqd, i.e. STLS: list, retrieve byte for byte, UIDL, DELE) and
fetchmail downloading a 500-message mailbox into an mbox file over pop3s
(contents compared with what was delivered; the mailbox is empty
afterwards), plus fetchmail over STLS with `keep` + `uidl` (only new mail is
fetched the second time, nothing is deleted)."""

import mailbox
import os
import shutil
import subprocess
import threading

import pytest

from conftest import (ALICE, BOB, DELIVERED_RE, HOSTNAME, PASSWORDS, SMTPClient, dot_stuff,
                      make_message, unique)


def _need(tool, package):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed (Debian package %s; make deps-test)" % (tool, package))


def deliver_many(srv, to, messages, connections=4):
    """Delivers each message (bytes) to `to` over a few SMTP connections,
    with MAIL/RCPT/DATA pipelined (RFC 2920); asserts every one was
    delivered."""
    chunks = [messages[i::connections] for i in range(connections)]
    errors = []

    def worker(msgs):
        try:
            with SMTPClient(srv.host, srv.port) as c:
                c.greet()
                r = c.ehlo()
                assert "250-PIPELINING" in r.lines, r
                for m in msgs:
                    c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % to)
                    assert c.read_reply().line == "250 2.1.0 Ok"
                    assert c.read_reply().line == "250 2.1.5 Ok"
                    assert c.read_reply().code == 354
                    c.send(dot_stuff(m) + b".\r\n")
                    r = c.read_reply()
                    assert DELIVERED_RE.match(r.line), r
                c.quit()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors


# --------------------------------------------------------------------------
# curl


@pytest.fixture(scope="module")
def cpop(hermod_bin, tls_cert):
    from conftest import module_server
    yield from module_server(hermod_bin, "pop3curl", tls=tls_cert, pop3=True)


def curl(srv, url_path, scheme="pop3s", user=ALICE, password=None, args=()):
    _need("curl", "curl")
    port = srv.pop3s_port if scheme == "pop3s" else srv.pop3_port
    argv = ["curl", "-sS", "--max-time", "60",
            "--url", "%s://%s:%d/%s" % (scheme, HOSTNAME, port, url_path),
            "--resolve", "%s:%d:%s" % (HOSTNAME, port, srv.host),
            "--cacert", srv.cert_path,
            "--user", "%s:%s" % (user, password or PASSWORDS[user])]
    if scheme == "pop3":
        argv.append("--ssl-reqd")
    argv += list(args)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def _fresh_mail(srv, user, n):
    subjects = [unique("curl") for _ in range(n)]
    deliver_many(srv, user, [make_message(s, b"line\r\n.dot\r\nend\r\n", to=user)
                             for s in subjects], connections=1)
    return srv.messages(user)


@pytest.mark.parametrize("scheme", ["pop3s", "pop3"])
def test_curl_list_retrieve_uidl(cpop, scheme):
    user = ALICE if scheme == "pop3s" else BOB
    rows = _fresh_mail(cpop, user, 3)
    p = curl(cpop, "", scheme, user)
    assert p.returncode == 0, p.stderr
    want = b"".join(b"%d %d\r\n" % (i + 1, r["size"]) for i, r in enumerate(rows))
    assert p.stdout == want
    for i, r in enumerate(rows):
        p = curl(cpop, str(i + 1), scheme, user)
        assert p.returncode == 0, p.stderr
        assert p.stdout == cpop.show(user, "INBOX", r["uid"]), i + 1
    # a single LIST: a one-line answer, which curl shows only in -v
    p = curl(cpop, "2", scheme, user, args=["--list-only", "-v"])
    assert p.returncode == 0, p.stderr
    assert b"\n< +OK 2 %d\r\n" % rows[1]["size"] in p.stderr, \
        p.stderr[-2000:]
    p = curl(cpop, "", scheme, user, args=["--request", "UIDL"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().split("\r\n")[:-1]
    assert [l.split()[0] for l in lines] == ["1", "2", "3"]
    assert [int(l.split()[1][:8], 16) for l in lines] == [r["uid"] for r in rows]
    p = curl(cpop, "", scheme, user, args=["--request", "TOP 1 0"])
    assert p.returncode == 0, p.stderr
    head = cpop.show(user, "INBOX", rows[0]["uid"]).split(b"\r\n\r\n", 1)[0]
    assert p.stdout == head + b"\r\n\r\n"


@pytest.mark.parametrize("scheme", ["pop3s", "pop3"])
def test_curl_dele(cpop, scheme):
    user = ALICE if scheme == "pop3s" else BOB
    before = cpop.messages(user)
    rows = _fresh_mail(cpop, user, 2)
    new = rows[len(before):]
    n = len(before) + 1   # the first new message
    p = curl(cpop, str(n), scheme, user, args=["--request", "DELE", "--head"])
    assert p.returncode == 0, p.stderr
    after = cpop.messages(user)
    assert new[0]["uid"] not in [r["uid"] for r in after]
    assert new[1]["uid"] in [r["uid"] for r in after]
    assert len(after) == len(rows) - 1


def test_curl_bad_password(cpop):
    p = curl(cpop, "", "pop3s", ALICE, password="wrong")
    assert p.returncode == 67, (p.returncode, p.stderr)   # CURLE_LOGIN_DENIED


def test_curl_plaintext_refused_without_tls(cpop):
    """curl without --ssl-reqd on pop3:// still upgrades when STLS is
    offered? Not by default: it must then fail to log in (USER refused)."""
    _need("curl", "curl")
    port = cpop.pop3_port
    argv = ["curl", "-sS", "--max-time", "60", "--url", "pop3://%s:%d/" % (cpop.host, port),
            "--user", "%s:%s" % (ALICE, PASSWORDS[ALICE])]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert p.returncode != 0
    assert p.stdout == b""


# --------------------------------------------------------------------------
# fetchmail


MDA_SCRIPT = """#!/bin/sh
# mbox delivery for fetchmail: From_ line, >From quoting, blank line after.
{
  printf 'From fetchmail@localhost Thu Jan  1 00:00:00 1970\\n'
  sed 's/^\\(>*From \\)/>\\1/'
  printf '\\n'
} >> "$1"
"""


def run_fetchmail(srv, workdir, mbox, user=ALICE, tls="implicit", keep=False, uidl=False,
                  fetchall=True, expect=0):
    """Runs fetchmail; asserts its exit status is `expect` (0: mail
    retrieved, 1: no mail)."""
    _need("fetchmail", "fetchmail")
    os.makedirs(workdir, exist_ok=True)
    mda = os.path.join(workdir, "mda.sh")
    if not os.path.exists(mda):
        with open(mda, "w") as f:
            f.write(MDA_SCRIPT)
        os.chmod(mda, 0o755)
    port = srv.pop3s_port if tls == "implicit" else srv.pop3_port
    ssl_opts = ("ssl sslproto TLS1.2+" if tls == "implicit" else "sslproto TLS1.2+")
    rc = os.path.join(workdir, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('set no syslog\nset no bouncemail\n')
        f.write('poll %s via 127.0.0.1 port %d proto pop3 auth password timeout 120 %s\n'
                % (HOSTNAME, port, "uidl" if uidl else "no uidl"))
        f.write('  user "%s" there with password "%s" is "%s" here\n'
                % (user, PASSWORDS[user], os.environ.get("USER", "root")))
        f.write('  %s sslcertck sslcertfile "%s" sslcommonname "%s"\n'
                % (ssl_opts, srv.cert_path, HOSTNAME))
        f.write('  mda "%s %s"\n' % (mda, mbox))
        f.write('  no rewrite %s %s\n' % ("keep" if keep else "nokeep",
                                         "fetchall" if fetchall else ""))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    argv = ["fetchmail", "-f", rc, "--nosyslog", "-v", "--idfile",
            os.path.join(workdir, "fetchids")]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600, env=env, cwd=workdir)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == expect, "fetchmail exited %d (expected %d):\n%s" % (
        p.returncode, expect, out[-6000:])
    return p.returncode, out


def read_mbox(path):
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [box.get_bytes(k) for k in box.keys()]
    finally:
        box.close()


def check_fetched(entries, sent):
    """Every message sent (subject -> bytes as sent) arrived exactly once;
    the part as sent (LF line ends after fetchmail) ends each entry."""
    by_subject = {}
    for e in entries:
        subj = None
        for line in e.split(b"\n"):
            if line.startswith(b"Subject: "):
                subj = line[9:].decode()
                break
            if line == b"":
                break
        assert subj is not None, e[:500]
        assert subj not in by_subject, "fetched twice: %s" % subj
        by_subject[subj] = e
    assert sorted(by_subject) == sorted(sent)
    for subj, raw in sent.items():
        e = by_subject[subj]
        want = raw.replace(b"\r\n", b"\n")
        # mailbox.mbox keeps the blank separator line's newline off, but
        # the message's own final newline may or may not be there
        assert e.rstrip(b"\n").endswith(want.rstrip(b"\n")), subj
        # hermod's trace field is there below fetchmail's own
        assert b"by %s" % HOSTNAME.encode() in e.split(b"\n\n", 1)[0], subj


@pytest.fixture
def fserver(make_server):
    return make_server(tls=True, pop3=True, fsync=False)


def test_fetchmail_500_messages_pop3s(fserver, tmp_path):
    _need("fetchmail", "fetchmail")
    n = 500
    sent = {}
    for i in range(n):
        subject = unique("fm%03d" % i)
        body = (b"message %d\r\n.starts with a dot\r\nFrom the start of a line\r\n" % i
                + b"x" * (i % 97) + b"\r\n")
        sent[subject] = make_message(subject, body)
    deliver_many(fserver, ALICE, list(sent.values()), connections=4)
    rows = fserver.messages(ALICE)
    assert len(rows) == n
    mbox = str(tmp_path / "alice.mbox")
    rc, out = run_fetchmail(fserver, str(tmp_path / "fm"), mbox)
    assert rc == 0, out[-4000:]
    entries = read_mbox(mbox)
    assert len(entries) == n, out[-4000:]
    # undo the mbox >From quoting of the body lines before comparing
    entries = [e.replace(b"\n>From ", b"\nFrom ") for e in entries]
    check_fetched(entries, sent)
    # without keep, fetchmail deleted everything it fetched
    assert fserver.messages(ALICE) == []
    c = fserver.pop3(tls="implicit")
    c.login(ALICE, PASSWORDS[ALICE])
    assert c.cmd("STAT") == "+OK 0 0"
    c.quit()


def test_fetchmail_stls_keep_uidl(fserver, tmp_path):
    _need("fetchmail", "fetchmail")
    work = str(tmp_path / "fm")
    mbox = str(tmp_path / "bob.mbox")
    sent = {}
    first = {}
    for i in range(5):
        s = unique("fk")
        first[s] = make_message(s, b"first batch %d\r\n" % i, to=BOB)
    deliver_many(fserver, BOB, list(first.values()), connections=1)
    sent.update(first)
    rc, out = run_fetchmail(fserver, work, mbox, user=BOB, tls="stls", keep=True, uidl=True,
                            fetchall=False)
    assert rc == 0, out[-4000:]
    assert "STLS" in out, out[-4000:]
    check_fetched(read_mbox(mbox), sent)
    assert len(fserver.messages(BOB)) == 5   # keep
    second = {}
    for i in range(2):
        s = unique("fk2")
        second[s] = make_message(s, b"second batch %d\r\n" % i, to=BOB)
    deliver_many(fserver, BOB, list(second.values()), connections=1)
    sent.update(second)
    rc, out = run_fetchmail(fserver, work, mbox, user=BOB, tls="stls", keep=True, uidl=True,
                            fetchall=False)
    assert rc == 0, out[-4000:]
    # only the two new ones were fetched (UIDL unchanged for the old five)
    check_fetched(read_mbox(mbox), sent)
    assert len(fserver.messages(BOB)) == 7
    # nothing new: fetchmail says so (exit 1)
    rc, out = run_fetchmail(fserver, work, mbox, user=BOB, tls="stls", keep=True, uidl=True,
                            fetchall=False, expect=1)
    assert rc == 1, out[-4000:]
    assert len(read_mbox(mbox)) == 7


# --------------------------------------------------------------------------
# openssl s_client -starttls pop3


def test_openssl_s_client_starttls_pop3(cpop):
    _need("openssl", "openssl")
    rows = _fresh_mail(cpop, BOB, 1)
    script = "USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (BOB, PASSWORDS[BOB])
    p = subprocess.run(
        ["openssl", "s_client", "-starttls", "pop3", "-quiet", "-ign_eof",
         "-connect", "%s:%d" % (cpop.host, cpop.pop3_port),
         "-servername", HOSTNAME, "-verify_hostname", HOSTNAME,
         "-CAfile", cpop.cert_path, "-verify_return_error"],
        input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    # (s_client echoes parts of the greeting and STLS exchange it did itself)
    lines = out.split("\r\n")
    assert "-ERR" not in out, out
    assert any(l.startswith("+OK Logged in, ") for l in lines), out
    assert "+OK %d %d" % (len(rows), sum(r["size"] for r in rows)) in lines, out
    assert any(l.startswith("+OK Bye") for l in lines), out
