"""imapflow (npm), doing what a modern client does (tests/npm/imap_client.js):
LIST with STATUS, SELECT, FETCH of envelopes, structures, flags and sizes,
downloads, flag changes, COPY and MOVE with UIDPLUS, APPEND, SEARCH, IDLE woken
by an SMTP delivery, and a CONDSTORE/QRESYNC resynchronisation -- each result
checked against the messages the test delivered."""

import base64
import json
import threading
import time

import pytest

from conftest import (ALICE, DELIVERED_RE, PASSWORDS, make_message, module_server, run_node,
                      unique)


@pytest.fixture(scope="module")
def srv(hermod_bin):
    yield from module_server(hermod_bin, "imapflow", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def test_imapflow_session(srv, npm_dir, tmp_path):
    subjects = [unique("first"), unique("second"), unique("third")]
    bodies = [b"body of the first\r\n", b"body of the second\r\n", b"body of the third\r\n"]
    before = len(srv.messages(ALICE))
    for s, b in zip(subjects, bodies):
        assert DELIVERED_RE.match(srv.deliver([ALICE], make_message(s, body=b)).line)
    rows = srv.messages(ALICE)
    idle_file = tmp_path / "idle"
    late = unique("late")

    def deliver_when_idle():
        deadline = time.monotonic() + 60
        while not idle_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        srv.deliver([ALICE], make_message(late))

    t = threading.Thread(target=deliver_when_idle)
    t.start()
    p = run_node("imap_client.js", ["--port", srv.imap_port, "--user", ALICE,
                                    "--pass", PASSWORDS[ALICE], "--idle-file", idle_file])
    t.join()
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = json.loads(p.stdout)
    for cap in ("IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "SPECIAL-USE",
                "COMPRESS=DEFLATE"):
        assert cap in out["capabilities"], out["capabilities"]
    assert out["enabled"] == ["CONDSTORE", "IMAP4REV2", "QRESYNC", "UTF8=ACCEPT"]
    boxes = {m["path"]: m for m in out["list"]}
    assert sorted(boxes) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert boxes["Sent"]["specialUse"] == "\\Sent" and boxes["Junk"]["specialUse"] == "\\Junk"
    assert boxes["INBOX"]["status"] == {"messages": len(rows), "unseen": len(rows)}
    assert out["open"]["exists"] == len(rows)
    assert [m["uid"] for m in out["messages"]] == [r["uid"] for r in rows]
    assert [m["subject"] for m in out["messages"]][before:] == subjects
    assert [m["size"] for m in out["messages"]] == [r["size"] for r in rows]
    first = out["messages"][0]
    assert first["struct"]["type"] == "text/plain"
    assert first["from"] == [{"name": "", "address": "sender@remote.test"}]
    assert first["to"] == [{"name": "", "address": ALICE}]
    assert before == 0  # the module's server: these are the account's only messages
    assert out["firstPart1"] == bodies[0].decode()
    assert base64.b64decode(out["lastWhole"]) == srv.show(ALICE, "INBOX", rows[-1]["uid"])
    assert out["flagsAfter"] == ["$Label1", "\\Flagged"]
    # UIDPLUS: the UIDs the copy and the move got in Archive
    assert out["copy"]["destination"] == "Archive"
    assert out["copy"]["uidMap"] == [[first["uid"], 1]]
    assert out["move"]["uidMap"] == [[out["messages"][1]["uid"], 2]]
    archive = srv.messages(ALICE, "Archive")
    assert [r["uid"] for r in archive] == [1, 2]
    assert out["search"] == [first["uid"]]
    # the second message was moved to Archive before this search of INBOX
    assert out["searchSubject"] == []
    assert out["append"]["destination"] == "Drafts" and out["append"]["uid"] == 1
    assert out["draftsAfter"] == 1
    assert out["idleExists"] == out["idleBefore"] + 1
    assert out["resync"]["exists"] == out["idleExists"]
    assert out["resync"]["vanished"] == []
