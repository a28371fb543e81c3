"""`hermod queue show ID`: the envelope of a queue entry (sender, account, BODY,
SMTPUTF8, per-recipient state), a blank line, then the queued message."""

import re
import time

import pytest

from conftest import ALICE, PASSWORDS, QUEUED_RE, make_message, module_server, unique

REMOTE = "someone@remote.test"


@pytest.fixture(scope="module")
def sub(hermod_bin, tls_cert):
    yield from module_server(hermod_bin, "queueshow", tls=tls_cert, submission=True)


def test_queue_show_prints_envelope_then_message(sub):
    subject = unique("qshow")
    c = sub.connect_465()
    c.login(ALICE, PASSWORDS[ALICE])
    c.mail(ALICE)
    assert c.cmd("RCPT TO:<%s>" % REMOTE).line == "250 2.1.5 Ok"
    r = c.data(make_message(subject, b"queued body\r\n", sender=ALICE, to=REMOTE))
    assert QUEUED_RE.match(r.line), r
    c.quit()
    rows = [q for q in sub.queue() if q["rcpts"] == [REMOTE]]
    assert len(rows) == 1, sub.cli("queue", "list").stdout
    qid = rows[0]["id"]

    # the server's queue runner tries it at once; the test servers' smarthost
    # is a closed port, so that first attempt is deferred
    deadline = time.monotonic() + 30
    while True:
        out = sub.cli("queue", "show", qid, binary_out=True).stdout
        if b"\nAttempts: 1\n" in out:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    head, sep, message = out.partition(b"\n\n")
    assert sep == b"\n\n"
    lines = head.decode().split("\n")
    assert lines[0] == "Id: %s" % qid
    assert re.match(r"^Created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", lines[1]), lines
    assert lines[2] == "Size: %d" % len(message)
    assert lines[3:7] == ["Sender: %s" % ALICE, "Account: %s" % ALICE, "Body: 7BIT",
                          "Smtputf8: no"]
    assert re.match(r"^Trace-Length: \d+$", lines[7]), lines
    assert lines[8] == "Attempts: 1"
    assert re.match(r"^Next-Attempt: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", lines[9]), lines
    assert lines[10] == "Recipient: %s state=deferred" % REMOTE
    assert re.match(r"^Last-Reply: 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: connect failed: "
                    r"Connection refused$", lines[11]), lines
    assert len(lines) == 12, lines
    assert ("Subject: %s" % subject).encode() in message
    assert message.endswith(b"queued body\r\n")


def test_queue_show_missing_entry(sub):
    p = sub.cli("queue", "show", "999999", check=False)
    assert p.returncode == 1
    assert p.stdout == ""
    assert b"queue entry 999999 does not exist" in p.stderr
