#!/usr/bin/python3
"""Submission load for bench/bench-queue.sh (stdlib only).

    queue_submit.py --port P --messages N --connections C [--size 4096]
                    [--domains 100] [--user ADDR --password-file FILE]
                    [--sender ADDR] [--result FILE]

C processes (forked; no threads, so no interpreter lock is shared between
connections) each open one SMTP connection to 127.0.0.1:P over a plain
blocking socket, EHLO, log in once with AUTH PLAIN when --user is given, build
all their messages in memory, and wait until every connection is ready; then
all of them send their share of the N messages (message i goes to
user<i>@d<1 + i % domains>.test, one RCPT per message, process t sends
messages t, t+C, t+2C, ...), and QUIT. Each message is exactly --size bytes
(header and body, CRLF line ends) from --sender to that recipient.

Every message is MAIL FROM, RCPT TO, DATA, the (dot-stuffed) text and ".",
each sent only after the reply to the one before it (no PIPELINING, no
CHUNKING: what smtplib's sendmail() sends, without its per-line Python
overhead); a message counts as submitted when the final reply is 250.

The clock starts when the connections are released (the first MAIL), so
connection set-up, logins and building the messages are not counted; it stops
when the last message got its reply. One summary line goes to stdout, and
with --result a line
`start=<unix time> end=<unix time> ok=<n> failed=<n> login=<seconds>` to
FILE for the calling script. A refused or failed message is counted, not
retried (after a refusal the process sends RSET); a process whose connection
broke reconnects (and logs in again) for its next message.
"""

import argparse
import base64
import multiprocessing
import os
import socket
import sys
import threading
import time

BODY_LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
MAX_REPLY = 64 * 1024  # a reply longer than this is a broken peer


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


def data_payload(msg):
    """The text as sent after DATA: dot-stuffed, ending in CRLF . CRLF."""
    if msg.startswith(b"."):
        msg = b"." + msg
    msg = msg.replace(b"\r\n.", b"\r\n..")
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    return msg + b".\r\n"


class SMTPError(Exception):
    pass


class Conn:
    """One blocking SMTP connection, one command at a time."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        """Reads one (possibly multi-line) reply: (code, last line)."""
        while True:
            start = 0
            while True:
                end = self.buf.find(b"\r\n", start)
                if end < 0:
                    break
                line = self.buf[start:end]
                if len(line) < 3 or not line[:3].isdigit():
                    raise SMTPError("bad reply line %r" % line[:80])
                if line[3:4] != b"-":
                    self.buf = self.buf[end + 2:]
                    return int(line[:3]), line.decode("ascii", "replace")
                start = end + 2
            if len(self.buf) > MAX_REPLY:
                raise SMTPError("reply longer than %d bytes" % MAX_REPLY)
            got = self.sock.recv(65536)
            if not got:
                raise ConnectionError("connection closed by the server")
            self.buf += got

    def cmd(self, data, want):
        self.sock.sendall(data)
        code, text = self.reply()
        if code != want:
            raise SMTPError(text)
        return text

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Worker:
    def __init__(self, args, index, password):
        self.args = args
        self.index = index
        self.password = password
        self.ok = 0
        self.failed = 0
        self.errors = []
        self.conn = None
        self.login_seconds = 0.0
        self.last_reply = None

    def connect(self):
        a = self.args
        t = time.monotonic()
        conn = Conn(a.port, a.timeout)
        try:
            code, text = conn.reply()
            if code != 220:
                raise SMTPError("greeting: %s" % text)
            conn.cmd(b"EHLO client.bench.test\r\n", 250)
            if a.user:
                token = base64.b64encode(b"\0" + a.user.encode() + b"\0" + self.password.encode())
                conn.cmd(b"AUTH PLAIN " + token + b"\r\n", 235)
        except BaseException:
            conn.close()
            raise
        self.login_seconds += time.monotonic() - t
        self.conn = conn

    def note(self, err):
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(str(err))

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, mail_from, rcpt_cmd, payload):
        """One message; raises SMTPError when refused (connection still usable)."""
        c = self.conn
        c.cmd(mail_from, 250)
        try:
            c.cmd(rcpt_cmd, 250)
            c.cmd(b"DATA\r\n", 354)
        except SMTPError:
            c.cmd(b"RSET\r\n", 250)
            raise
        c.sock.sendall(payload)
        code, text = c.reply()
        if code != 250:
            raise SMTPError(text)

    def run(self, barrier, start, results):
        a = self.args
        try:
            self.connect()
        except (SMTPError, OSError) as e:  # the set-up failed: this process sends nothing
            self.note("connect/login: %s" % e)
        mail_from = ("MAIL FROM:<%s>\r\n" % a.sender).encode()
        work = []
        if self.conn is not None:
            for i in range(self.index, a.messages, a.connections):
                rcpt = "user%d@d%d.test" % (i, 1 + i % a.domains)
                work.append((i, ("RCPT TO:<%s>\r\n" % rcpt).encode(),
                             data_payload(message(i, a.sender, rcpt, a.size))))
        try:
            barrier.wait(timeout=a.timeout)
        except threading.BrokenBarrierError:
            self.drop()
            results.put(self.result())
            return
        for i, rcpt_cmd, payload in work:
            try:
                if self.conn is None:
                    self.connect()
                self.send(mail_from, rcpt_cmd, payload)
                self.ok += 1
            except SMTPError as e:
                self.note("message %d: %s" % (i, e))
            except OSError as e:
                self.note("message %d: %s" % (i, e))
                self.drop()
            self.last_reply = time.time()
        if self.conn is not None:
            try:
                self.conn.cmd(b"QUIT\r\n", 221)
            except (SMTPError, OSError):
                pass
            self.drop()
        results.put(self.result())

    def result(self):
        return (self.index, self.ok, self.failed, self.errors, self.login_seconds, self.last_reply)


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
    a.connections = max(1, min(a.connections, a.messages, 1000))

    password = None
    if a.user:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")

    ctx = multiprocessing.get_context("fork")
    start = ctx.Value("d", 0.0)

    def release():  # run by the last process to arrive, before any is let go
        start.value = time.time()

    barrier = ctx.Barrier(a.connections, action=release)
    results = ctx.SimpleQueue()
    procs = [ctx.Process(target=Worker(a, i, password).run, args=(barrier, start, results),
                         daemon=True)
             for i in range(a.connections)]
    for pr in procs:
        pr.start()
    got = [results.get() for _ in procs]  # before join: a child blocks until its result is read
    for pr in procs:
        pr.join()
    got.sort()
    ends = [r[5] for r in got if r[5] is not None]
    end = max(ends) if ends else time.time()
    first = start.value or end

    ok = sum(r[1] for r in got)
    failed = sum(r[2] for r in got)
    login = max(r[4] for r in got)
    secs = max(end - first, 1e-9)
    print("queue_submit: %d of %d messages of %d bytes submitted in %.2f s: %.1f msg/s "
          "(%d connections, one process each%s), %d failed"
          % (ok, a.messages, a.size, secs, ok / secs, a.connections,
             ", AUTH PLAIN" if a.user else "", failed))
    shown = 0
    for r in got:
        for e in r[3]:
            if shown < 10:
                print("queue_submit: error: %s" % e, file=sys.stderr)
                shown += 1
    if a.result:
        with open(a.result + ".tmp", "w", encoding="utf-8") as f:
            f.write("start=%.6f end=%.6f ok=%d failed=%d login=%.3f\n"
                    % (first, end, ok, failed, login))
        os.rename(a.result + ".tmp", a.result)
    return 0 if ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
