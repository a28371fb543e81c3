#!/usr/bin/python3
"""Submission load for bench/bench-queue.sh (stdlib only).

    queue_submit.py --port P --messages N --connections C [--size 4096]
                    [--domains 100] [--user ADDR --password-file FILE]
                    [--sender ADDR] [--result FILE]

C threads each open one SMTP connection to 127.0.0.1:P, EHLO, log in once
with AUTH PLAIN when --user is given, and wait until every connection is
ready; then all of them send their share of the N messages (message i goes
to user<i>@d<1 + i % domains>.test, one RCPT per message, thread t sends
messages t, t+C, t+2C, ...), and QUIT. Each message is exactly --size bytes
(header and body, CRLF line ends) from --sender to that recipient.

The clock starts when the connections are released (the first MAIL), so
connection set-up and logins are not counted; it stops when the last message
got its reply. One summary line goes to stdout, and with --result a line
`start=<unix time> end=<unix time> ok=<n> failed=<n> login=<seconds>` to
FILE for the calling script. A refused or failed message is counted, not
retried; a thread whose connection broke reconnects (and logs in again) for
its next message.
"""

import argparse
import os
import smtplib
import sys
import threading
import time

BODY_LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"


def message(i, sender, rcpt, size):
    """An RFC 5322 message of exactly `size` bytes (at least the header)."""
    head = ("From: <%s>\r\n"
            "To: <%s>\r\n"
            "Subject: queue benchmark message %d\r\n"
            "Date: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <bench-%d-%d@example.test>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n" % (sender, rcpt, i, i, int(time.time()))).encode()
    left = size - len(head)
    if left <= 0:
        return head
    body = BODY_LINE * (left // len(BODY_LINE) + 1)
    body = body[:left]
    if left >= 2:
        body = body[:-2] + b"\r\n"
    return head + body


class Worker(threading.Thread):
    def __init__(self, args, index, barrier, password):
        super().__init__(daemon=True)
        self.args = args
        self.index = index
        self.barrier = barrier
        self.password = password
        self.ok = 0
        self.failed = 0
        self.errors = []
        self.smtp = None
        self.login_seconds = 0.0

    def connect(self):
        t = time.monotonic()
        smtp = smtplib.SMTP("127.0.0.1", self.args.port, local_hostname="client.bench.test",
                            timeout=self.args.timeout)
        smtp.ehlo()
        if self.args.user:
            smtp.login(self.args.user, self.password)
        self.login_seconds += time.monotonic() - t
        self.smtp = smtp

    def note(self, err):
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(str(err))

    def run(self):
        a = self.args
        try:
            self.connect()
        except Exception as e:  # the set-up failed: this thread sends nothing
            self.note("connect/login: %s" % e)
            self.smtp = None
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        if self.smtp is None:
            return
        for i in range(self.index, a.messages, a.connections):
            rcpt = "user%d@d%d.test" % (i, 1 + i % a.domains)
            msg = message(i, a.sender, rcpt, a.size)
            try:
                if self.smtp is None:
                    self.connect()
                self.smtp.sendmail(a.sender, [rcpt], msg)
                self.ok += 1
            except (smtplib.SMTPException, OSError) as e:
                self.note("message %d: %s" % (i, e))
                if isinstance(e, (smtplib.SMTPServerDisconnected, OSError)):
                    try:
                        self.smtp.close()
                    except Exception:
                        pass
                    self.smtp = None
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--domains", type=int, default=100)
    p.add_argument("--sender", default="bench@example.test")
    p.add_argument("--user")
    p.add_argument("--password-file")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--result")
    a = p.parse_args()
    a.connections = max(1, min(a.connections, a.messages))

    password = None
    if a.user:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")

    times = {}

    def release():  # run by one thread when all are ready
        times["start"] = time.time()

    barrier = threading.Barrier(a.connections, action=release)
    workers = [Worker(a, i, barrier, password) for i in range(a.connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    end = time.time()
    start = times.get("start", end)

    ok = sum(w.ok for w in workers)
    failed = sum(w.failed for w in workers)
    login = max(w.login_seconds for w in workers)
    secs = max(end - start, 1e-9)
    print("queue_submit: %d of %d messages of %d bytes submitted in %.2f s: %.1f msg/s "
          "(%d connections%s), %d failed"
          % (ok, a.messages, a.size, secs, ok / secs, a.connections,
             ", AUTH PLAIN" if a.user else "", failed))
    shown = 0
    for w in workers:
        for e in w.errors:
            if shown < 10:
                print("queue_submit: error: %s" % e, file=sys.stderr)
                shown += 1
    if a.result:
        with open(a.result + ".tmp", "w", encoding="utf-8") as f:
            f.write("start=%.6f end=%.6f ok=%d failed=%d login=%.3f\n"
                    % (start, end, ok, failed, login))
        os.rename(a.result + ".tmp", a.result)
    return 0 if ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
