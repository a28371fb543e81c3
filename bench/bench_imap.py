#!/usr/bin/python3
"""Helper of bench/bench-imap.sh (run by it; see its header for what is measured).

  hash PASSWORD                      a yescrypt hash of PASSWORD (libcrypt), for Dovecot
  fill-smtp HOST PORT ACCOUNTS N     deliver the N messages to each account over SMTP
  fill-maildir BASE ACCOUNTS N UID GID
                                     write the same N messages into BASE/<local>/Maildir
  warm HOST PORT ACCOUNTS N          each account: LOGIN, SELECT (expects N messages),
                                     FETCH 1:* (FLAGS ENVELOPE), LOGOUT
  mix NAME HOST PORT ACCOUNTS N SERVERPID OUT.json [SMTPPORT]
                                     the scripted mix, one client process per account
  idle NAME HOST PORT ACCOUNTS COUNT SERVERPID OUT.json
                                     COUNT connections in IDLE; RSS before and after
  summary CLIENTS N IDLE MIX_H.json MIX_D.json IDLE_H.json IDLE_D.json
                                     the table (a missing file: that server was not run)

ACCOUNTS: one "address password" a line. Only loopback addresses are used.
Standard library only. A command answered NO or BAD makes its part "n/a" with the
server's text as the reason; the other parts still run.
"""

import asyncio
import ctypes
import ctypes.util
import json
import math
import multiprocessing
import os
import random
import resource
import socket
import statistics
import sys
import threading
import time

ENV = os.environ
LOGINS = int(ENV.get("BENCH_LOGINS", "20"))        # login+select per client
ROUNDS = int(ENV.get("BENCH_ROUNDS", "3"))         # FETCH 1:* ENVELOPE per client
BODIES = int(ENV.get("BENCH_BODIES", "50"))        # FETCH BODY[] per client
SEARCHES = int(ENV.get("BENCH_SEARCHES", "20"))    # each UID SEARCH per client
RANGE = int(ENV.get("BENCH_RANGE", "50"))          # STORE range width
WAKEUPS = int(ENV.get("BENCH_WAKEUPS", "20"))      # IDLE wake-ups per client
IDLE_PARALLEL = int(ENV.get("BENCH_IDLE_PARALLEL", "64"))
TIMEOUT = 120
TARGET_IDLE = 10000   # issue 8: under 200 MB for 10,000 IDLE connections

SENDERS = [
    ("Alice Martin", "alice@example.org"), ("Bob Dupont", "bob@example.net"),
    ("Carol Nguyen", "carol@example.com"), ("Dave O'Brien", "dave@example.org"),
    ("Eve Schmidt", "eve@mail.example"), ("Frank Li", "frank@example.net"),
    ("Grace Kowalski", "grace@example.com"), ("Heidi Jensen", "heidi@example.org"),
    ("Ivan Petrov", "ivan@example.net"), ("Judy Rossi", "judy@example.com"),
    ("Mallory Smith", "newsletter@shop.example"), ("Trent Garcia", "trent@example.org"),
]
TOPICS = ["Invoice", "Meeting notes", "Project status", "Lunch on Friday?",
          "Quarterly report", "Your order has shipped", "Travel plans",
          "Weekly newsletter", "Code review", "Holiday schedule",
          "Build failed", "Contract draft"]
WORDS = ("the of and to in is that for it as with was on be at by this had not are "
         "but from or have an they which one you were her all she there would their "
         "we him been has when who will more no if out so said what up its about into "
         "than them can only other new some could time these two may then do first any "
         "my now such like our over man me even most made after also did many before "
         "must through back years where much your way well down should because each "
         "just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right "
         "used take three meeting budget invoice release server mailbox schedule").split()
SEARCH_KEYS = [("SUBJECT", 'SUBJECT "invoice"'), ("FROM", 'FROM "alice"'),
               ("UNSEEN", "UNSEEN")]   # SINCE added at run time (today - 1 day)


def accounts(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                a, p = line.split()
                out.append((a, p))
    return out


def text_lines(rng, nbytes):
    lines, n = [], 0
    while n < nbytes:
        words, w = [], 0
        while w < 68:
            x = rng.choice(WORDS)
            words.append(x)
            w += len(x) + 1
        line = " ".join(words)
        if rng.random() < 0.02:
            line = "." + line
        lines.append(line)
        n += len(line) + 2
    return lines


def message(addr, i):
    """Message i (1-based) of an account: deterministic, the same on both servers.
    i % 10 == 0: multipart/mixed with a base64 attachment (6-48 KiB);
    i % 10 in 1..3: multipart/alternative (text/plain + text/html); else text/plain.
    CRLF line ends."""
    rng = random.Random(i)
    name, frm = SENDERS[i % len(SENDERS)]
    topic = TOPICS[(i * 7) % len(TOPICS)]
    subject = "%s #%d" % (topic, i) if i % 5 else "Re: %s #%d" % (topic, i)
    t = 1704067200 + i * 28800    # from 2024-01-01, every 8 hours
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))
    hdr = ["From: %s <%s>" % (name, frm),
           "To: <%s>" % addr,
           "Subject: %s" % subject,
           "Date: %s" % date,
           "Message-ID: <bench-%d.%s@example.org>" % (i, addr.replace("@", ".")),
           "MIME-Version: 1.0"]
    if i % 3 == 0:
        hdr.insert(2, "Cc: Team <team@example.org>, %s <%s>" % SENDERS[(i + 3) % len(SENDERS)])
    if i % 5 == 0:
        hdr.append("In-Reply-To: <bench-%d.%s@example.org>" % (i - 1, addr.replace("@", ".")))
    kind = i % 10
    body = text_lines(rng, rng.randint(800, 6000))
    if kind == 0:
        import base64
        blob = rng.randbytes(rng.randint(6 << 10, 48 << 10))
        b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n").rstrip("\r\n")
        hdr.append('Content-Type: multipart/mixed; boundary="=_mix_%d"' % i)
        parts = ["This is a multi-part message in MIME format.", "",
                 "--=_mix_%d" % i, "Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: 7bit", ""] + body + [
                 "--=_mix_%d" % i, 'Content-Type: application/pdf; name="report-%d.pdf"' % i,
                 'Content-Disposition: attachment; filename="report-%d.pdf"' % i,
                 "Content-Transfer-Encoding: base64", "", b64, "--=_mix_%d--" % i]
    elif kind <= 3:
        hdr.append('Content-Type: multipart/alternative; boundary="=_alt_%d"' % i)
        html = ["<html><body>"] + ["<p>%s</p>" % l for l in body] + ["</body></html>"]
        parts = ["--=_alt_%d" % i, "Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: 7bit", ""] + body + [
                 "--=_alt_%d" % i, "Content-Type: text/html; charset=utf-8",
                 "Content-Transfer-Encoding: 7bit", ""] + html + ["--=_alt_%d--" % i]
    else:
        hdr.append("Content-Type: text/plain; charset=utf-8")
        hdr.append("Content-Transfer-Encoding: 7bit")
        parts = body
    return ("\r\n".join(hdr) + "\r\n\r\n" + "\r\n".join(parts) + "\r\n").encode()


def wake_message(addr, k):
    return ("From: Bench <bench@example.org>\r\nTo: <%s>\r\nSubject: wake-up %d\r\n"
            "Date: Mon, 01 Jul 2024 00:00:00 +0000\r\nMessage-ID: <wake-%d-%d@example.org>\r\n"
            "\r\nNew mail.\r\n" % (addr, k, k, os.getpid())).encode()


def cmd_hash(pw):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt_ra.restype = ctypes.c_void_p
    lib.crypt_gensalt_ra.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt_ra(b"$y$", 0, None, 0)
    if not setting:
        raise SystemExit("crypt_gensalt_ra failed")
    h = lib.crypt(pw.encode(), ctypes.cast(setting, ctypes.c_char_p).value)
    if not h or not h.startswith(b"$y$"):
        raise SystemExit("crypt failed")
    print(h.decode())


# ---------------------------------------------------------------- loading

class Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("connection closed; unread %r" % self.buf[:200])
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        while True:
            l = self.line()
            if len(l) < 4 or l[3:4] != b"-":
                return l


def smtp_open(host, port):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    r = Lines(s)
    g = r.reply()
    if not g.startswith(b"220"):
        raise RuntimeError("SMTP greeting %r" % g)
    s.sendall(b"EHLO bench.example.test\r\n")
    if not r.reply().startswith(b"250"):
        raise RuntimeError("EHLO refused")
    return s, r


def smtp_send(s, r, addr, m):
    s.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n"
              % (addr.encode(), len(m)) + m)
    for _ in range(3):
        l = r.reply()
        if not l.startswith(b"250"):
            raise RuntimeError("SMTP: %r" % l)


def fill_one(args):
    host, port, addr, n = args
    s, r = smtp_open(host, port)
    window, sent, done = 32, 0, 0
    while done < n:
        out = []
        while sent < n and sent - done < window:
            sent += 1
            m = message(addr, sent)
            out.append(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n"
                       % (addr.encode(), len(m)) + m)
        if out:
            s.sendall(b"".join(out))
        for _ in range(3):
            l = r.reply()
            if not l.startswith(b"250"):
                raise RuntimeError("%s: message %d: %r" % (addr, done + 1, l))
        done += 1
    s.sendall(b"QUIT\r\n")
    r.reply()
    s.close()
    return n


def cmd_fill_smtp(host, port, accfile, n):
    accs = accounts(accfile)
    with multiprocessing.Pool(min(len(accs), 8)) as pool:
        got = pool.map(fill_one, [(host, int(port), a, int(n)) for a, _ in accs])
    assert sum(got) == len(accs) * int(n)


def cmd_fill_maildir(base, accfile, n, uid, gid):
    n, uid, gid = int(n), int(uid), int(gid)
    t = int(time.time()) - 3600
    for addr, _ in accounts(accfile):
        local = addr.split("@")[0]
        md = os.path.join(base, local, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for i in range(1, n + 1):
            # the trace fields hermod adds, so both servers hold the same bytes
            m = (b"Return-Path: <sender@example.org>\r\n"
                 b"Received: from bench.example.test ([127.0.0.1])\r\n"
                 b"\tby bench.example.test (hermod) with ESMTP id 0000000000000%05d\r\n"
                 b"\tfor <%s>; Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                 % (i, addr.encode())) + message(addr, i)
            lf = m.replace(b"\r\n", b"\n")   # maildir files are LF; W= is the CRLF size
            name = "%d.M%dP1.bench,S=%d,W=%d:2," % (t + i, i, len(lf), len(m))
            p = os.path.join(md, "cur", name)
            with open(p, "wb") as f:
                f.write(lf)
            os.utime(p, (t + i, t + i))      # INTERNALDATE: "now", as for hermod
        for root, dirs, files in os.walk(os.path.join(base, local)):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)
    os.chown(base, uid, gid)


# ---------------------------------------------------------------- IMAP client

class Refused(Exception):
    """The server answered NO or BAD (the feature is missing): part is n/a."""


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Imap:
    def __init__(self, host, port, src=None):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT,
                                             source_address=(src, 0) if src else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        g = self.resp()
        if not g.startswith(b"* OK"):
            raise RuntimeError("greeting %r" % g[:200])

    def _fill(self):
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        d = self.sock.recv(1 << 20)
        if not d:
            raise RuntimeError("connection closed by the server")
        self.buf += d

    def resp(self):
        """One response line with its literals (bytes, CRLF stripped)."""
        look = 0       # offsets relative to self.pos (_fill keeps them valid)
        lit_end = 0    # end of the last literal: the line goes on from there
        while True:
            e = self.buf.find(b"\r\n", self.pos + look)
            if e < 0:
                look = max(lit_end, len(self.buf) - self.pos - 1)
                self._fill()
                continue
            e -= self.pos
            if e > lit_end and self.buf[self.pos + e - 1] == 0x7D:   # "}"
                b = self.buf.rfind(b"{", self.pos + lit_end, self.pos + e)
                digits = bytes(self.buf[b + 1:self.pos + e - 1]).rstrip(b"+") if b >= 0 else b""
                if digits.isdigit():
                    need = e + 2 + int(digits)
                    while len(self.buf) - self.pos < need:
                        self._fill()
                    lit_end = look = need
                    continue
            out = bytes(self.buf[self.pos:self.pos + e])
            self.pos += e + 2
            return out

    def send(self, text):
        self.n += 1
        tag = b"T%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return tag

    def wait(self, tag, untagged=None):
        """Reads to the tagged reply of tag; untagged responses go to the list
        untagged (when given). Refused on NO/BAD."""
        t = tag + b" "
        while True:
            l = self.resp()
            if l.startswith(t):
                st = l[len(t):]
                if not st.startswith(b"OK"):
                    raise Refused(st.decode("utf-8", "replace")[:120])
                return st
            if untagged is not None:
                untagged.append(l)

    def cmd(self, text, untagged=None):
        return self.wait(self.send(text.encode() if isinstance(text, str) else text), untagged)

    def login(self, user, pw):
        self.cmd("LOGIN %s %s" % (quote(user), quote(pw)))

    def select(self, box="INBOX"):
        u = []
        self.cmd("SELECT " + box, u)
        exists = [int(l.split()[1]) for l in u if l.endswith(b" EXISTS")]
        return exists[-1] if exists else 0

    def logout(self):
        try:
            self.cmd("LOGOUT")
        except (Refused, RuntimeError, OSError):
            pass
        self.sock.close()

    def append(self, box, msg):
        tag = self.send(b"APPEND %s {%d}" % (box.encode(), len(msg)))
        while True:
            l = self.resp()
            if l.startswith(b"+"):
                break
            if l.startswith(tag + b" "):
                raise Refused(l[len(tag) + 1:].decode("utf-8", "replace")[:120])
        self.sock.sendall(msg + b"\r\n")
        return self.wait(tag)


def src_addr(k):
    """Source addresses 127.0.0.2 .. 127.0.0.17 (each has its own port range)."""
    return "127.0.0.%d" % (2 + k % 16)


# ---------------------------------------------------------------- server CPU

TICK = os.sysconf("SC_CLK_TCK")


def proc_tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds of root and its descendants (live ones, and reaped ones
    through cutime/cstime)."""
    tot = 0
    for p in proc_tree(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
        except OSError:
            continue
        fl = s[s.rindex(")") + 2:].split()
        tot += sum(int(x) for x in fl[11:15])
    return tot / TICK


def tree_mem(root):
    """(processes, sum of VmRSS, sum of Pss) in bytes over root and descendants."""
    n = rss = pss = 0
    for p in proc_tree(root):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            n += 1
        except OSError:
            continue
    return n, rss, pss


# ---------------------------------------------------------------- the mix

def since_arg():
    return time.strftime("%d-%b-%Y", time.gmtime(time.time() - 86400))


def part_names(smtp):
    names = ["login", "fetch_env", "fetch_body"]
    names += ["search_" + k for k, _ in SEARCH_KEYS] + ["search_SINCE"]
    names += ["store", "idle_append"]
    if smtp:
        names.append("idle_smtp")
    return names


def idle_wakeups(host, port, addr, pw, k, n0, how, smtp_port):
    """WAKEUPS times: a message arrives (APPEND on a second connection, or SMTP)
    while a first connection is in IDLE; latency = from the acknowledgement (tagged
    OK of APPEND, 250 after BDAT) to the untagged EXISTS on the idling one."""
    idler = Imap(host, port, src_addr(k))
    idler.login(addr, pw)
    exists = idler.select()
    tag = idler.send(b"IDLE")
    while True:
        l = idler.resp()
        if l.startswith(b"+"):
            break
        if l.startswith(tag + b" "):
            idler.logout()
            raise Refused(l[len(tag) + 1:].decode("utf-8", "replace")[:120])
    events = []
    cv = threading.Condition()
    stop = []

    def reader():
        try:
            while True:
                l = idler.resp()
                now = time.monotonic()
                if l.endswith(b" EXISTS") and l.startswith(b"* "):
                    with cv:
                        events.append((now, int(l.split()[1])))
                        cv.notify()
                if l.startswith(tag + b" "):
                    return
        except Exception as e:  # noqa: BLE001 -- reported through stop
            with cv:
                stop.append(str(e))
                cv.notify()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    other = None
    lat = []
    try:
        if how == "append":
            other = Imap(host, port, src_addr(k + 1))
            other.login(addr, pw)
        else:
            other = smtp_open(host, smtp_port)
        for j in range(WAKEUPS):
            m = wake_message(addr, j)
            t_send = time.monotonic()
            if how == "append":
                other.append("INBOX", m)
            else:
                smtp_send(other[0], other[1], addr, m)
            t_ack = time.monotonic()
            want = exists + 1
            with cv:
                ok = cv.wait_for(lambda: stop or (events and events[-1][1] >= want), timeout=30)
            if stop:
                raise RuntimeError("IDLE connection: " + stop[0])
            if not ok:
                raise RuntimeError("no EXISTS within 30 s of the acknowledgement")
            t_ex = next(t for t, e in events if e >= want)
            # < 0: EXISTS came before the acknowledgement
            lat.append((t_ex - t_ack, t_ex - t_send))
            exists = events[-1][1]
            time.sleep(0.02)
    finally:
        try:
            idler.sock.sendall(b"DONE\r\n")
            th.join(10)
            idler.logout()
        except OSError:
            pass
        if other is None:
            pass
        elif how == "append":
            other.logout()
        else:
            try:
                other[0].sendall(b"QUIT\r\n")
                other[0].close()
            except OSError:
                pass
    return lat


def client_main(k, host, port, addr, pw, n, smtp_port, barrier, q):
    names = part_names(smtp_port)
    res = {}
    sess = None

    def run(name, fn):
        barrier.wait(timeout=1800)
        c0 = time.process_time()
        r = {"ops": 0}
        try:
            r.update(fn())
        except Refused as e:
            r["error"] = "the server answered: " + str(e)
        except Exception as e:  # noqa: BLE001 -- any failure: this part is n/a
            r["error"] = "%s: %s" % (type(e).__name__, e)
            drop()   # the next part starts on a new connection
        r["cpu"] = time.process_time() - c0
        res[name] = r
        barrier.wait(timeout=1800)

    def drop():
        nonlocal sess
        if sess is not None:
            try:
                sess.sock.close()
            except OSError:
                pass
            sess = None

    def p_login():
        for _ in range(LOGINS):
            c = Imap(host, port, src_addr(k))
            c.login(addr, pw)
            c.select()
            c.logout()
        return {"ops": LOGINS}

    def session():
        nonlocal sess
        if sess is None:
            sess = Imap(host, port, src_addr(k))
            sess.login(addr, pw)
            got = sess.select()
            if got < n:
                raise RuntimeError("INBOX has %d messages, expected %d" % (got, n))
        return sess

    def p_fetch_env():
        c = session()
        msgs = 0
        for _ in range(ROUNDS):
            u = []
            c.cmd("FETCH 1:* (FLAGS ENVELOPE)", u)
            msgs += sum(1 for l in u if b" FETCH " in l[:20])
        if msgs != ROUNDS * n:
            raise RuntimeError("%d FETCH responses, expected %d" % (msgs, ROUNDS * n))
        return {"ops": msgs}

    def p_fetch_body():
        c = session()
        octets = 0
        for j in range(BODIES):
            u = []
            c.cmd("FETCH %d BODY[]" % (1 + (j * 19 + k * 7) % n), u)
            octets += sum(len(l) for l in u)
        return {"ops": BODIES, "octets": octets}

    def p_search(prog):
        def f():
            c = session()
            hits = None
            for _ in range(SEARCHES):
                u = []
                c.cmd("UID SEARCH " + prog, u)
                h = 0
                for l in u:
                    if l.startswith(b"* SEARCH"):
                        h += len(l.split()) - 2
                    elif l.startswith(b"* ESEARCH"):
                        h = -1
                hits = h
            return {"ops": SEARCHES, "hits": hits}
        return f

    def p_store():
        c = session()
        cmds = 0
        for a in range(1, n + 1, RANGE):
            c.cmd("STORE %d:%d +FLAGS (\\Seen)" % (a, min(n, a + RANGE - 1)))
            cmds += 1
        return {"ops": n, "commands": cmds}

    def p_idle(how):
        def f():
            lat = idle_wakeups(host, port, addr, pw, k, n, how, smtp_port)
            return {"ops": len(lat), "lat": lat}
        return f

    parts = {"login": p_login, "fetch_env": p_fetch_env, "fetch_body": p_fetch_body,
             "store": p_store, "idle_append": p_idle("append"), "idle_smtp": p_idle("smtp"),
             "search_SINCE": p_search("SINCE " + since_arg())}
    for key, prog in SEARCH_KEYS:
        parts["search_" + key] = p_search(prog)
    for name in names:
        if name == "idle_append" and sess is not None:
            sess.logout()
            sess = None
        run(name, parts[name])
    q.put((k, res))


def cmd_mix(name, host, port, accfile, n, server_pid, out, smtp_port=None):
    port, n, server_pid = int(port), int(n), int(server_pid)
    smtp_port = int(smtp_port) if smtp_port else None
    accs = accounts(accfile)
    names = part_names(smtp_port)
    barrier = multiprocessing.Barrier(len(accs) + 1)
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client_main,
                                     args=(k, host, port, a, p, n, smtp_port, barrier, q))
             for k, (a, p) in enumerate(accs)]
    for p in procs:
        p.start()
    walls, scpu = {}, {}
    broken = None
    for part in names:
        try:
            barrier.wait(timeout=1800)
            t0, s0 = time.monotonic(), tree_cpu(server_pid)
            barrier.wait(timeout=1800)
            walls[part] = time.monotonic() - t0
            scpu[part] = tree_cpu(server_pid) - s0
        except threading.BrokenBarrierError:
            broken = "a client process died"
            break
        print("bench: %s: %s %.2fs" % (name, part, walls[part]), file=sys.stderr)
    results = {}
    for _ in procs:
        try:
            k, r = q.get(timeout=30)
            results[k] = r
        except Exception:  # noqa: BLE001
            break
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    summary = {}
    for part in names:
        rs = [results[k].get(part) for k in results]
        errs = [r["error"] for r in rs if r and "error" in r]
        if part not in walls or len(rs) != len(accs) or None in rs or errs:
            summary[part] = {"error": errs[0] if errs else (broken or "not run")}
            continue
        s = {"ops": sum(r["ops"] for r in rs), "wall": walls[part],
             "client_cpu": sum(r["cpu"] for r in rs),
             "client_cpu_max": max(r["cpu"] for r in rs), "server_cpu": scpu[part]}
        s["rate"] = s["ops"] / max(walls[part], 1e-9)
        if part.startswith("search_"):
            s["hits"] = sorted({r["hits"] for r in rs})
        if part.startswith("idle_"):
            raw = [x for r in rs for x in r["lat"]]
            s["early"] = sum(1 for x, _ in raw if x < 0)
            s["samples"] = len(raw)
            for key, vals in (("", [max(0.0, x) for x, _ in raw]), ("send_", [y for _, y in raw])):
                vals.sort()
                s[key + "median_ms"] = statistics.median(vals) * 1000
                s[key + "p99_ms"] = vals[min(len(vals) - 1, math.ceil(0.99 * len(vals)) - 1)] * 1000
        summary[part] = s
    with open(out, "w") as f:
        json.dump({"server": name, "mix": summary}, f)


def cmd_warm(host, port, accfile, n):
    for addr, pw in accounts(accfile):
        c = Imap(host, int(port))
        c.login(addr, pw)
        got = c.select()
        if got != int(n):
            raise SystemExit("%s: INBOX has %d messages, expected %s" % (addr, got, n))
        c.cmd("FETCH 1:* (FLAGS ENVELOPE)", [])
        c.logout()


# ---------------------------------------------------------------- idle

async def idle_one(host, port, src, addr, pw, sem, conns, errors):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(src, 0)), TIMEOUT)
        except Exception as e:  # noqa: BLE001
            errors.append("connect: %s" % e)
            return
        try:
            async def upto(prefix):
                while True:
                    l = await asyncio.wait_for(r.readline(), TIMEOUT)
                    if not l:
                        raise RuntimeError("closed by the server")
                    if l.startswith(prefix):
                        return l
                    f = l.split(None, 2)
                    if len(f) >= 2 and f[0] in (b"a1", b"a2", b"a3") and f[1] != b"OK":
                        raise Refused(l.decode("utf-8", "replace").strip()[:120])
            await upto(b"* ")
            w.write(("a1 LOGIN %s %s\r\na2 SELECT INBOX\r\n" % (quote(addr), quote(pw))).encode())
            await upto(b"a2 OK")
            w.write(b"a3 IDLE\r\n")
            await upto(b"+")
            conns.append((r, w))
        except Exception as e:  # noqa: BLE001
            errors.append(str(e) or type(e).__name__)
            w.close()


async def idle_run(name, host, port, accs, count, server_pid):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    await asyncio.sleep(1)
    before = tree_mem(server_pid)
    sem = asyncio.Semaphore(IDLE_PARALLEL)
    conns, errors = [], []
    t0 = time.monotonic()
    # one first: a server without IDLE fails it, and the others are not tried
    a, p = accs[0]
    await idle_one(host, port, src_addr(0), a, p, sem, conns, errors)
    if conns:
        tasks = []
        for i in range(1, count):
            a, p = accs[i % len(accs)]
            tasks.append(idle_one(host, port, src_addr(i), a, p, sem, conns, errors))
        await asyncio.gather(*tasks)
    setup = time.monotonic() - t0
    await asyncio.sleep(3)
    after = tree_mem(server_pid)
    # all still there? (a server that dropped them would make the figure meaningless)
    alive = sum(1 for r, w in conns if not r.at_eof())
    for r, w in conns:
        w.close()
    return {"server": name, "count": count, "held": len(conns), "alive": alive,
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "setup_s": setup, "before": before, "after": after,
            "client_cpu": time.process_time()}


def cmd_idle(name, host, port, accfile, count, server_pid, out):
    r = asyncio.run(idle_run(name, host, int(port), accounts(accfile), int(count), int(server_pid)))
    with open(out, "w") as f:
        json.dump(r, f)


# ---------------------------------------------------------------- summary

LABELS = [
    ("login", "login+select (LOGIN, SELECT, LOGOUT)", "logins/s"),
    ("fetch_env", "FETCH 1:* (FLAGS ENVELOPE)", "messages/s"),
    ("fetch_body", "FETCH n BODY[] (one a command)", "messages/s"),
    ("search_SUBJECT", 'UID SEARCH SUBJECT "invoice"', "searches/s"),
    ("search_FROM", 'UID SEARCH FROM "alice"', "searches/s"),
    ("search_UNSEEN", "UID SEARCH UNSEEN", "searches/s"),
    ("search_SINCE", "UID SEARCH SINCE <yesterday>", "searches/s"),
    ("store", "STORE a:b +FLAGS (\\Seen), %d a range" % RANGE, "messages/s"),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mb(x):
    return x / 1048576


def cmd_summary(clients, n, idle_n, hpath, dpath, hipath, dipath):
    H, D = load(hpath), load(dpath)
    HI, DI = load(hipath), load(dipath)
    hna = ENV.get("BENCH_HERMOD_NA")
    hm = (H or {}).get("mix", {})
    dm = (D or {}).get("mix", {})
    print()
    print("IMAP mix: %s accounts x %s messages, %s concurrent clients (one each), %d CPUs, "
          "load average now %.1f (other work on the machine skews both servers' figures)"
          % (clients, n, clients, os.cpu_count(), os.getloadavg()[0]))
    print("%-40s %-11s %10s %10s %8s" % ("part", "unit", "hermod", "dovecot", "ratio"))
    notes, ratios = [], []

    def fig(m, part, key="rate", fmt="%.0f"):
        s = m.get(part)
        if s is None:
            return None, "-"
        if "error" in s:
            notes.append("%s %s: n/a (%s)" % (m is hm and "hermod" or "dovecot", part, s["error"]))
            return None, "n/a"
        return s[key], fmt % s[key]

    hdash = "n/a" if hna else "-"
    for part, label, unit in LABELS:
        hv, hs = fig(hm, part) if H else (None, hdash)
        dv, ds = fig(dm, part) if D else (None, "-")
        ratio = "-"
        if hv and dv:
            ratios.append(hv / dv)
            ratio = "%.2f" % (hv / dv)
        print("%-40s %-11s %10s %10s %8s" % (label, unit, hs, ds, ratio))
    for part, label in (("idle_append", "IDLE wake-up after APPEND"),
                        ("idle_smtp", "IDLE wake-up after SMTP delivery")):
        for key, unit in (("median_ms", "median ms"), ("p99_ms", "p99 ms"),
                          ("send_median_ms", "median ms*"), ("send_p99_ms", "p99 ms*")):
            hv, hs = fig(hm, part, key, "%.2f") if H else (None, hdash)
            dv, ds = fig(dm, part, key, "%.2f") if D else (None, "-")
            ratio = "%.2f" % (hv / dv) if hv and dv else "-"
            print("%-40s %-11s %10s %10s %8s" % (label if key == "median_ms" else "", unit,
                                                  hs, ds, ratio))
    for m, who in ((hm, "hermod"), (dm, "dovecot")):
        for part in ("idle_append", "idle_smtp"):
            s = m.get(part, {})
            if s.get("early"):
                notes.append("%s %s: in %d of %d wake-ups the EXISTS came before the "
                             "acknowledgement (counted as 0 ms)"
                             % (who, part, s["early"], s["samples"]))
    print("%-40s (ms: from the acknowledgement; ms*: from sending the message)" % "")
    if ratios:
        g = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        if len(ratios) < len(LABELS):
            verdict = "incomplete: %d of %d parts compared" % (len(ratios), len(LABELS))
        else:
            verdict = "met" if g >= 2 else "NOT met"
        print("%-40s %-11s %10s %10s %8.2f   target >= 2.00: %s"
              % ("mix (geometric mean of the ratios)", "", "", "", g, verdict))
    hits = []
    for k in ("SUBJECT", "FROM", "UNSEEN", "SINCE"):
        a = hm.get("search_" + k, {}).get("hits") if H else None
        b = dm.get("search_" + k, {}).get("hits") if D else None
        hits.append("%s %s/%s" % (k, "/".join(map(str, a)) if a else "-",
                                  "/".join(map(str, b)) if b else "-"))
    print("UID SEARCH hits per client (hermod/dovecot): " + ", ".join(hits))
    if H and D:
        for k in ("SUBJECT", "FROM", "UNSEEN", "SINCE"):
            a = hm.get("search_" + k, {}).get("hits")
            b = dm.get("search_" + k, {}).get("hits")
            if a is not None and b is not None and a != b:
                notes.append("UID SEARCH %s: hermod found %s, Dovecot %s messages" % (k, a, b))

    # the client must not be the bottleneck
    print("\nload generator check (CPU seconds during each part: all client processes"
          " / the busiest one / the server; wall seconds):")
    for m, who in ((hm, "hermod"), (dm, "dovecot")):
        worst = 0.0
        rows = []
        for part, s in m.items():
            if "error" in s:
                continue
            worst = max(worst, s["client_cpu_max"] / max(s["wall"], 1e-9))
            rows.append("%s %.2f/%.2f/%.2f/%.2f" % (part, s["client_cpu"], s["client_cpu_max"],
                                                   s["server_cpu"], s["wall"]))
        if rows:
            print("  %s: %s" % (who, ", ".join(rows)))
            print("  %s: busiest client process used at most %.0f%% of one core in a part%s"
                  % (who, worst * 100, " -- the client may be the bottleneck" if worst > 0.8
                     else " (not the bottleneck)"))

    if hna:
        notes.append("hermod: n/a (%s)" % hna)
    print("\nIDLE connections: resident memory (sum over the server's processes)")
    print("%-8s %7s %6s %11s %11s %11s %12s %12s" % ("server", "conns", "procs", "RSS before",
                                                    "RSS after", "PSS after", "RSS/conn",
                                                    "PSS/conn"))
    for r, who in ((HI, "hermod"), (DI, "dovecot")):
        if not r:
            if who == "hermod" and hna:
                print("%-8s n/a" % who)
            continue
        if r["held"] == 0:
            print("%-8s n/a (%s)" % (who, r["first_error"]))
            continue
        b, a = r["before"], r["after"]
        per = (a[1] - b[1]) / r["held"]
        pss_per = (a[2] - b[2]) / r["held"]
        print("%-8s %7d %6d %8.1f MB %8.1f MB %8.1f MB %9.1f KB %9.1f KB   (set-up %.0f s)"
              % (who, r["held"], a[0], mb(b[1]), mb(a[1]), mb(a[2]), per / 1024,
                 pss_per / 1024, r["setup_s"]))
        if r["errors"]:
            notes.append("%s IDLE: %d of %d connections failed (%s)"
                         % (who, r["errors"], r["count"], r["first_error"]))
        if r["alive"] != r["held"]:
            notes.append("%s IDLE: %d of %d connections closed by the server before the "
                         "measurement" % (who, r["held"] - r["alive"], r["held"]))
        tn = max(int(idle_n), TARGET_IDLE)
        rss_t = a[1]
        if r["held"] < min(500, tn):
            print("%-8s (too few connections to scale to %d)" % ("", tn))
            continue
        if r["held"] < tn:
            rss_t = b[1] + per * tn
            print("%-8s scaled to %d connections (before + growth per connection x %d): "
                  "RSS %.0f MB, PSS %.0f MB"
                  % ("", tn, tn, mb(rss_t), mb(b[2] + pss_per * tn)))
        if who == "hermod":
            print("%-8s target: under 200 MB for %d IDLE connections: %s%s"
                  % ("", TARGET_IDLE, "met" if mb(rss_t) < 200 else "NOT met",
                     "" if r["held"] >= tn else " (scaled from %d)" % r["held"]))
    if notes:
        print("\nnotes:")
        for x in dict.fromkeys(notes):   # once each, in order
            print("  " + x)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"hash": cmd_hash, "fill-smtp": cmd_fill_smtp, "fill-maildir": cmd_fill_maildir,
     "warm": cmd_warm, "mix": cmd_mix, "idle": cmd_idle, "summary": cmd_summary}[cmd](*args)
