"""imapflow (npm) over TLS, the IMAP library of web and Node.js mail clients, doing what
a modern client does with an account (tests/npm/imap_client.js): LIST with
STATUS, SELECT, FETCH of envelope / body structure / flags / size, downloads
of a part and of a whole message, flag changes, COPY and MOVE with COPYUID,
APPEND with APPENDUID, SEARCH, IDLE woken by an SMTP delivery, and a second
session resynchronising with QRESYNC. Over STARTTLS with the test CA, as a
client on another machine would connect, and over implicit TLS."""

import base64
import json
import os
import subprocess
import time

import pytest

from conftest import ALICE, BOB, DELIVERED_RE, NPM_DIR, PASSWORDS, IMAPClient, module_server

MESSAGES = [
    ("first", b"From: Ann Example <ann@remote.test>\r\nTo: Bob <bob@example.test>\r\n"
              b"Subject: first\r\nMessage-ID: <first@remote.test>\r\n"
              b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nline 1\r\nline 2\r\n"),
    ("second", b"From: =?utf-8?q?J=C3=B6rg?= <joerg@remote.test>\r\nTo: bob@example.test\r\n"
               b"Subject: =?utf-8?b?c2Vjb25kIOKAkyB3aXRoIGFuIGF0dGFjaG1lbnQ=?=\r\n"
               b"Message-ID: <second@remote.test>\r\nDate: Tue, 01 Dec 2026 11:00:00 +0100\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
               b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
               b"--b1\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgc=\r\n--b1--\r\n"),
    ("third", b"From: carol@remote.test\r\nTo: bob@example.test\r\nSubject: third\r\n"
              b"Message-ID: <third@remote.test>\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
              b"\r\nthe last one\r\n"),
]


@pytest.fixture(scope="module")
def fsrv(hermod_bin, tls_cert):
    yield from module_server(hermod_bin, "imapflowtls", tls=tls_cert, imap=True)


def _need_node():
    if not os.path.exists(os.path.join(NPM_DIR, "node_modules", "imapflow")):
        pytest.skip("imapflow not installed (make deps-test runs npm install)")


def _run(srv, user, secure, idle_file=None, on_idle=None):
    args = ["node", os.path.join(NPM_DIR, "imap_client.js"), "--user", user,
            "--pass", PASSWORDS[user], "--ca", srv.cert_path, "--servername", "mx.example.test"]
    args += ["--secure", "--port", str(srv.imaps_port)] if secure else \
        ["--port", str(srv.imap_port)]
    if idle_file:
        args += ["--idle-file", idle_file]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if idle_file:
            deadline = time.monotonic() + 60
            while not os.path.exists(idle_file) and proc.poll() is None:
                assert time.monotonic() < deadline, "imapflow never reached IDLE"
                time.sleep(0.02)
            if proc.poll() is None:
                on_idle()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert lines, "no output from imap_client.js: %s" % err[-2000:]
    result = json.loads(lines[-1])
    assert proc.returncode == 0 and "error" not in result, (result, err[-2000:])
    return result


def _fill(srv, user):
    for _, data in MESSAGES:
        assert DELIVERED_RE.match(srv.deliver(user, data).line)


@pytest.mark.parametrize("secure", [False, True], ids=["starttls", "imaps"])
def test_imapflow_session(fsrv, tmp_path, secure):
    _need_node()
    user = BOB if secure else ALICE
    _fill(fsrv, user)
    idle_file = str(tmp_path / "idle")
    late = b"From: dave@remote.test\r\nTo: x@example.test\r\nSubject: late\r\n\r\nwoke you\r\n"
    r = _run(fsrv, user, secure, idle_file,
             on_idle=lambda: DELIVERED_RE.match(fsrv.deliver(user, late).line) or pytest.fail("late"))

    for cap in ("IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC",
                "SPECIAL-USE", "LIST-STATUS", "ENABLE"):
        assert cap in r["capabilities"], (cap, r["capabilities"])
    assert r["enabled"] == ["CONDSTORE", "IMAP4REV2", "QRESYNC", "UTF8=ACCEPT"]

    boxes = {m["path"]: m for m in r["list"]}
    assert set(boxes) >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert boxes["Sent"]["specialUse"] == "\\Sent"
    assert boxes["Archive"]["specialUse"] == "\\Archive"
    assert boxes["INBOX"]["status"] == {"messages": 3, "unseen": 3}

    assert r["open"]["exists"] == 3 and r["open"]["uidNext"] == 4
    assert "\\*" in r["open"]["permanentFlags"]
    msgs = r["messages"]
    assert [m["subject"] for m in msgs] == ["first", "second \u2013 with an attachment", "third"]
    assert msgs[0]["from"] == [{"name": "Ann Example", "address": "ann@remote.test"}]
    assert msgs[1]["from"] == [{"name": "J\u00f6rg", "address": "joerg@remote.test"}]
    assert msgs[0]["messageId"] == "<first@remote.test>"
    assert msgs[1]["date"] == "2026-12-01T10:00:00.000Z"
    # sizes are those of the stored messages (with the Return-Path/Received trace)
    assert all(m["size"] > len(MESSAGES[i][1]) for i, m in enumerate(msgs))
    assert msgs[0]["struct"]["type"] == "text/plain"
    st = msgs[1]["struct"]
    assert st["type"] == "multipart/mixed"
    assert [c["type"] for c in st["children"]] == ["text/plain", "application/octet-stream"]
    assert st["children"][1]["filename"] == "data.bin"
    assert st["children"][1]["encoding"] == "base64"

    assert r["firstPart1"] == "line 1\r\nline 2\r\n"
    whole = base64.b64decode(r["lastWhole"])
    assert whole.endswith(MESSAGES[2][1]) and whole.startswith(b"Return-Path: ")

    assert r["flagsAfter"] == ["$Label1", "\\Flagged"]
    assert r["copy"]["destination"] == "Archive" and r["copy"]["uidMap"] == [[msgs[0]["uid"], 1]]
    assert r["move"]["uidMap"] == [[msgs[1]["uid"], 2]]
    assert r["search"] == [msgs[0]["uid"]]
    assert r["searchSubject"] == []  # "second" was moved to Archive
    assert r["append"]["destination"] == "Drafts" and r["append"]["uid"] == 1
    assert r["draftsAfter"] == 1

    # the delivery during IDLE: INBOX had 2 left after the move, the new one is the 3rd
    assert r["idleBefore"] == 2 and r["idleExists"] == 3
    # the second session, resynchronising from the first one's HIGHESTMODSEQ,
    # is told of nothing that the first one already knew
    assert r["resync"]["exists"] == 3
    assert r["resync"]["vanished"] == []

    # what imapflow did is what the store holds
    c = IMAPClient(fsrv.host, fsrv.imaps_port, tls_context=fsrv.context())
    c.login(user, PASSWORDS[user])
    untagged, tagged = c.cmd("STATUS Archive (MESSAGES)", tag="s")
    assert untagged == ['* STATUS "Archive" (MESSAGES 2)'], untagged
    untagged, tagged = c.cmd("STATUS Drafts (MESSAGES)", tag="s")
    assert untagged == ['* STATUS "Drafts" (MESSAGES 1)'], untagged
    c.cmd("LOGOUT", tag="z")
