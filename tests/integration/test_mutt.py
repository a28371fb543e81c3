"""mutt and neomutt (Debian's mutt 2.2 and neomutt 20220429, both on GNU
SASL and GnuTLS) as a new user would run them,
without any SASL settings: fetching mail over POP3 (pop3s and STLS), reading
and moving it over IMAP (imaps and STARTTLS), and
sending over submission (465 implicit TLS and 587 STARTTLS), non-interactive
(mutt -n -F muttrc; reading runs under a pseudo-terminal with the commands
pushed, sending is mutt's batch mode).

mutt trusts the test certificate through certificate_file; the host name is
not checked (ssl_verify_host=no) because mutt connects to 127.0.0.1 while the
certificate names mx.example.test. This is the regression test for the
default [auth] mechanisms: with SCRAM-SHA-256-PLUS offered, mutt picks it,
cannot supply channel binding, cancels, and never logs in."""

import mailbox
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ALICE, BOB, PASSWORDS, make_message, module_server, unique

MUTT_TIMEOUT = 60.0


CLIENTS = ["mutt", "neomutt"]


def _need(client):
    if shutil.which(client) is None:
        pytest.skip("%s not installed (Debian package %s; make deps-test)" % (client, client))


@pytest.fixture(scope="module")
def msrv(hermod_bin, tls_cert):
    yield from module_server(hermod_bin, "mutt", tls=tls_cert, submission=True, pop3=True,
                             imap=True)


def write_muttrc(srv, home, extra=()):
    os.makedirs(home, exist_ok=True)
    rc = os.path.join(home, "muttrc")
    lines = [
        "set certificate_file=%s" % srv.cert_path,
        "set ssl_verify_host=no",
        "set ssl_force_tls=yes",
        "set ssl_starttls=yes",
        "set pop_user=%s" % ALICE,
        "set pop_pass=%s" % PASSWORDS[ALICE],
        "set smtp_pass=%s" % PASSWORDS[ALICE],
        "set from=%s" % ALICE,
        "set realname=Alice",
        "set use_from=yes",
        "set folder=%s" % home,
        "set spoolfile=%s" % os.path.join(home, "spool"),
        "set tmpdir=%s" % home,
        "set record=",
        "set copy=no",
        "set confirmcreate=no",
        "set confirmappend=no",
        "set quit=yes",
        "set move=no",
        "set mbox_type=mbox",
        "set wait_key=no",
        "set header_cache=",
        "set message_cachedir=",
    ]
    lines += list(extra)
    with open(rc, "w") as f:
        f.write("\n".join(lines) + "\n")
    return rc


def mutt_env(home):
    return dict(os.environ, HOME=home, TERM="vt100", LC_ALL="C.UTF-8")


def run_mutt_tty(argv, home, timeout=MUTT_TIMEOUT):
    """Runs mutt under a pseudo-terminal (it needs one to open a mailbox),
    discarding the screen output; returns the exit status. Killed (and
    waited for) if it does not exit within `timeout`."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, mutt_env(home))
        finally:
            os._exit(127)
    status = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert status is not None
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return -os.WTERMSIG(status)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mode", ["pop3s", "stls"])
def test_mutt_fetches_over_pop3(msrv, tmp_path, client, mode):
    _need(client)
    subjects = [unique("%s-%s" % (client, mode)) for _ in range(3)]
    for s in subjects:
        msrv.deliver([ALICE], make_message(s, b"hello mutt\r\n"))
    home = str(tmp_path / "home")
    rc = write_muttrc(msrv, home)
    out = os.path.join(home, "saved.mbox")
    url = "%s://%s@%s:%d/" % ("pops" if mode == "pop3s" else "pop",
                              ALICE.replace("@", "%40"), msrv.host,
                              msrv.pop3s_port if mode == "pop3s" else msrv.pop3_port)
    before = msrv.stderr_bytes().count(b"event=auth user=%s mech=SCRAM-SHA-256 " %
                                       ALICE.encode())
    status = run_mutt_tty(
        [client, "-n", "-F", rc, "-f", url, "-e",
         'push "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>"' % out],
        home)
    assert status == 0, "mutt exited %r\n%s" % (status, msrv.stderr_tail())
    box = mailbox.mbox(out)
    got = sorted(m["Subject"] for m in box if m["Subject"] in subjects)
    box.close()
    assert got == sorted(subjects), got
    # it logged in with SCRAM-SHA-256 (its SASL library's first choice)
    after = msrv.stderr_bytes().count(b"event=auth user=%s mech=SCRAM-SHA-256 " %
                                      ALICE.encode())
    assert after == before + 1, msrv.stderr_tail()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_mutt_reads_and_moves_over_imap(msrv, tmp_path, client, mode):
    _need(client)
    subjects = [unique("%s-imap-%s" % (client, mode)) for _ in range(3)]
    for s in subjects:
        msrv.deliver([ALICE], make_message(s, b"hello mutt over imap\r\n"))
    home = str(tmp_path / "home")
    port = msrv.imaps_port if mode == "imaps" else msrv.imap_port
    base = "%s://%s@%s:%d/" % ("imaps" if mode == "imaps" else "imap",
                               ALICE.replace("@", "%40"), msrv.host, port)
    rc = write_muttrc(msrv, home, ["set imap_pass=%s" % PASSWORDS[ALICE],
                                   "set delete=yes", "set mark_old=no",
                                   "set imap_check_subscribed=no"])
    out = os.path.join(home, "saved.mbox")
    box = unique("muttbox")
    # read: the three messages copied to a local mbox; move: saved to a new
    # IMAP folder (COPY or MOVE, then the originals deleted and expunged)
    pattern = "~s %s|~s %s|~s %s" % tuple(subjects)
    status = run_mutt_tty(
        [client, "-n", "-F", rc, "-f", base + "INBOX", "-e",
         'push "<tag-pattern>%s<enter><tag-prefix><copy-message>%s<enter>'
         '<tag-prefix><save-message>%s%s<enter><sync-mailbox><quit>"' % (pattern, out, base, box)],
        home)
    assert status == 0, "mutt exited %r\n%s" % (status, msrv.stderr_tail())
    mb = mailbox.mbox(out)
    got = sorted(m["Subject"] for m in mb)
    bodies = [m.get_payload() for m in mb]
    mb.close()
    assert got == sorted(subjects), got
    assert all(b.replace("\r\n", "\n") == "hello mutt over imap\n" for b in bodies), bodies
    assert sorted(r["subject"] for r in msrv.messages(ALICE, box)) == sorted(subjects)
    assert [r for r in msrv.messages(ALICE) if r["subject"] in subjects] == []


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("port", ["465", "587"])
def test_mutt_sends_over_submission(msrv, tmp_path, client, port):
    _need(client)
    home = str(tmp_path / "home")
    if port == "465":
        url = "smtps://%s@%s:%d/" % (ALICE.replace("@", "%40"), msrv.host,
                                      msrv.submissions_port)
    else:
        url = "smtp://%s@%s:%d/" % (ALICE.replace("@", "%40"), msrv.host,
                                     msrv.submission_port)
    rc = write_muttrc(msrv, home, ['set smtp_url="%s"' % url])
    subject = unique("%s-send-%s" % (client, port))
    p = subprocess.run([client, "-n", "-F", rc, "-s", subject, BOB],
                       input=b"Hello from mutt\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=MUTT_TIMEOUT, env=mutt_env(home))
    assert p.returncode == 0, "mutt: %r %r\n%s" % (p.stdout, p.stderr, msrv.stderr_tail())
    stored = msrv.fetch_one(BOB, subject)
    assert re.search(rb"\r\nFrom: Alice <alice@example\.test>\r\n", stored), stored[:800]
    assert b"\r\n\r\nHello from mutt\r\n" in stored, stored[-200:]
