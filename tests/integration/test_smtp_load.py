"""Concurrency and durability under load:
- a 30 MB message sent slowly while other clients are served;
- kill -9 in the middle of a 20-connection load, restart: every message that
  got 250 is in its mailbox, byte for byte."""

import base64
import concurrent.futures
import hashlib
import os
import random
import threading
import time

from conftest import (ALICE, BOB, DELIVERED_RE, make_message, split_stored, unique)

BIG_CHUNK = 64 * 1024


def _big_body():
    raw = os.urandom(22 * 1024 * 1024)
    return base64.encodebytes(raw).replace(b"\n", b"\r\n")   # ~30 MiB, 76-char lines


def test_slow_big_message_while_others_served(make_server):
    srv = make_server()
    subject_big = unique("big")
    body = _big_body()
    assert len(body) > 30_000_000
    big_msg = make_message(subject_big, body,
                           extra_headers=["MIME-Version: 1.0",
                                          "Content-Type: application/octet-stream",
                                          "Content-Transfer-Encoding: base64"])
    halfway = threading.Event()
    small_done = threading.Event()
    errors = []
    big_result = {}

    def big_sender():
        try:
            with srv.connect(timeout=180) as c:
                c.greet()
                c.ehlo()
                c.mail(params="SIZE=%d" % len(big_msg))
                c.rcpt(ALICE)
                assert c.cmd("DATA").code == 354
                half = len(big_msg) // 2
                for off in range(0, len(big_msg), BIG_CHUNK):
                    if off >= half and not halfway.is_set():
                        halfway.set()
                        # keep the big transaction open until the small
                        # clients are through (bounded: never hang)
                        small_done.wait(120)
                    c.send(big_msg[off:off + BIG_CHUNK])
                    time.sleep(0.004)
                c.send(b".\r\n")
                big_result["reply"] = c.read_reply()
                c.quit()
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append("big sender: %r" % (e,))
        finally:
            halfway.set()

    small_sent = []           # (account, subject, msg)
    lock = threading.Lock()

    def small_client(n):
        try:
            with srv.connect(timeout=60) as c:
                c.greet()
                c.ehlo("small%d.remote.test" % n)
                for i in range(5):
                    rcpt = ALICE if (n + i) % 2 == 0 else BOB
                    subject = unique("small%d-%d" % (n, i))
                    msg = make_message(subject, ("small message %d/%d\r\n" % (n, i)).encode()
                                       * (i + 1), to=rcpt)
                    c.mail()
                    c.rcpt(rcpt)
                    r = c.data(msg)
                    assert DELIVERED_RE.match(r.line), r
                    with lock:
                        small_sent.append((rcpt, subject, msg))
                c.quit()
        except Exception as e:          # noqa: BLE001
            errors.append("small client %d: %r" % (n, e))

    big = threading.Thread(target=big_sender)
    big.start()
    assert halfway.wait(120), "big sender never got halfway"
    smalls = [threading.Thread(target=small_client, args=(n,)) for n in range(10)]
    for t in smalls:
        t.start()
    deadline = time.monotonic() + 120
    for t in smalls:
        t.join(max(0.1, deadline - time.monotonic()))
    # all small deliveries completed while the big DATA was still open
    small_finished_mid_big = big.is_alive()
    small_done.set()
    big.join(300)
    assert not big.is_alive(), "big sender hung"
    assert not errors, errors
    assert small_finished_mid_big
    assert len(small_sent) == 50

    assert DELIVERED_RE.match(big_result["reply"].line), big_result
    raw = srv.fetch_one(ALICE, subject_big)
    rest = split_stored(raw)[2]
    stored_body = rest.split(b"\r\n\r\n", 1)[1]
    assert hashlib.sha256(stored_body).hexdigest() == hashlib.sha256(body).hexdigest()
    assert rest == big_msg

    for rcpt, subject, msg in small_sent:
        assert split_stored(srv.fetch_one(rcpt, subject))[2] == msg
    srv.assert_serves()


def test_kill9_under_load(make_server):
    srv = make_server()
    killed = threading.Event()
    lock = threading.Lock()
    accepted = []             # (account, subject, msg) that got 250
    errors = []
    per_thread_cap = 150

    def worker(n):
        rng = random.Random(n)
        sent = 0
        while not killed.is_set():
            if sent >= per_thread_cap:
                killed.wait(0.05)
                continue
            rcpt = ALICE if n % 2 == 0 else BOB
            subject = unique("k%02d-%04d" % (n, sent))
            lines = [("%s line %d %s" % (subject, i, "z" * rng.randint(0, 200))).encode()
                     for i in range(rng.randint(1, 60))]
            msg = make_message(subject, b"\r\n".join(lines) + b"\r\n", to=rcpt,
                               msgid="<%s@remote.test>" % subject)
            try:
                with srv.connect(timeout=30) as c:
                    c.greet()
                    c.ehlo("load%d.remote.test" % n)
                    c.mail("load%d@remote.test" % n)
                    c.rcpt(rcpt)
                    r = c.data(msg)
                    if r.code == 250:
                        assert DELIVERED_RE.match(r.line), r
                        with lock:
                            accepted.append((rcpt, subject, msg))
                    else:
                        raise AssertionError("unexpected reply %r" % r)
                    try:
                        c.quit()
                    except Exception:   # noqa: BLE001 - the kill may land here
                        if not killed.is_set():
                            raise
            except Exception as e:      # noqa: BLE001
                if killed.is_set():
                    return
                errors.append("worker %d: %r" % (n, e))
                return
            sent += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    killed.set()
    rc = srv.kill9()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "load threads hung"
    assert rc == -9, rc
    assert not errors, errors[:10]
    assert accepted, "no message was accepted before the kill"
    print("kill -9 after %d accepted messages" % len(accepted))

    srv.start()
    lists = {a: srv.messages(a) for a in (ALICE, BOB)}
    by_subject = {}
    for account, rows in lists.items():
        for row in rows:
            by_subject.setdefault((account, row["subject"]), []).append(row["uid"])

    missing = [(a, s) for a, s, _ in accepted if (a, s) not in by_subject]
    assert not missing, "%d of %d accepted messages lost after kill -9, e.g. %r" % (
        len(missing), len(accepted), missing[:5])
    dups = [(a, s) for a, s, _ in accepted if len(by_subject[(a, s)]) != 1]
    assert not dups, dups[:5]

    def check(item):
        account, subject, msg = item
        raw = srv.show(account, "INBOX", by_subject[(account, subject)][0])
        _rp, _rcv, rest = split_stored(raw)
        return None if rest == msg else (account, subject, len(rest), len(msg))

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        bad = [r for r in ex.map(check, accepted) if r is not None]
    assert not bad, "%d messages damaged after kill -9, e.g. %r" % (len(bad), bad[:5])
    srv.assert_serves()
