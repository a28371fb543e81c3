"""Shared harness for hermod's integration tests.

Every test drives a real `hermod serve` process started on a free loopback
port with its own temporary data directory.  Nothing here talks to anything
outside 127.0.0.0/8.

Fixtures
  hermod_bin      path of the binary (env HERMOD_BIN, default <repo>/hermod)
  make_server     factory: make_server(limits={...}) -> started Server,
                  stopped (SIGTERM, then SIGKILL) and wait()ed at teardown
  server          a module-scoped default Server (limits as in DEFAULT_LIMITS)
  tls_cert        session-scoped self-signed ECDSA P-256 certificate for
                  mx.example.test (a CertPair: .cert, .key, .der, .context())
  make_cert       factory: make_cert(cn) -> CertPair for another name
  npm_dir         tests/npm with node_modules installed (skips without node)

make_server(tls=True) adds [tls] cert/key (the tls_cert pair, or tls=CertPair);
make_server(submission=True) also opens the submission (587 role, STARTTLS)
and submissions (465 role, implicit TLS) listeners on free ports:
srv.submission_port, srv.submissions_port. Submission servers get fast auth
throttling defaults (AUTH_TEST_DEFAULTS) and a smarthost on a closed loopback
port, so that queued mail never leaves the machine.
make_server(pop3=True) opens the POP3 listener (STLS when tls) on
srv.pop3_port; pop3s (default: pop3 and tls) the implicit-TLS one on
srv.pop3s_port. POP3 servers get AUTH_TEST_DEFAULTS too.
make_server(imap=True) opens the IMAP listener (STARTTLS when tls) on
srv.imap_port; imaps (default: imap and tls) the implicit-TLS one on
srv.imaps_port, with AUTH_TEST_DEFAULTS.

Helpers
  Server          temp dir, config, CLI set-up, start/stop/kill9/restart,
                  cli(), messages(), show(), deliver(), assert_serves()
  SMTPClient      raw-socket client: read full (multi-line) replies, send
                  bytes, all with timeouts; starttls()/tls() wrap the socket
  SMTPName, SMTP_SSLName   smtplib clients that connect to 127.0.0.1 but
                  verify the certificate for mx.example.test
  POP3Client      raw-socket POP3 client (status lines, multi-line responses
                  as wire bytes and un-stuffed, STLS)
"""

import base64
import collections
import os
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

HOSTNAME = "mx.example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORDS = {ALICE: "alice-secret-1", BOB: "bob-secret-2"}
# info@example.test -> alice (alias); @catch.test -> bob (catch-all).
ALIASES = [("info@example.test", ALICE), ("@catch.test", BOB)]
DOMAINS = ["example.test", "catch.test"]

DEFAULT_LIMITS = {
    "max_message_size": "40M",
    "max_recipients": "50",
    "max_connections": "200",
    "max_connections_per_ip": "100",
    "max_errors": "10",
    "idle_timeout": "60s",
}

START_TIMEOUT = 15.0   # seconds for the port to accept connections
STOP_TIMEOUT = 20.0    # seconds after SIGTERM before SIGKILL
IO_TIMEOUT = 30.0      # default socket timeout: only to avoid hanging
CLI_TIMEOUT = 60.0

# Commands whose second word is an action ("user add"): -c goes after it.
_ACTION_COMMANDS = {"domain", "user", "alias", "mailbox", "message", "queue", "dkim"}

_SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
                      b"runtime error:", b"ThreadSanitizer")

DELIVERED_RE = re.compile(r"^250 2\.0\.0 Ok: delivered as \S+$")
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")

# [auth] for servers made with submission=True: quick tests (the growing
# failure delay is capped at 1 s); tests override through extra={"auth": ...}.
AUTH_TEST_DEFAULTS = {"max_delay": "1"}

AUTH_OK = "235 2.7.0 Authentication successful"

POP3_GREETING = "+OK hermod POP3 server ready"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"

# Every Server that exists right now (so a failing test can show their logs).
_LIVE_SERVERS = []


# --------------------------------------------------------------------------
# small utilities


_HANDED_OUT = collections.deque(maxlen=2048)


def free_port(host="127.0.0.1"):
    """A free TCP port on host, not one this process was given recently: the
    kernel may hand the same ephemeral port out again at once, and a server
    taking two of them for two listeners would then refuse its config."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port
    raise RuntimeError("no fresh free port")


def unique(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def make_message(subject, body=b"hello\r\n", sender="sender@remote.test",
                 to=ALICE, msgid=None, extra_headers=()):
    """An RFC 5322 message as bytes with CRLF line ends (body used as given)."""
    if isinstance(body, str):
        body = body.encode()
    if msgid is None:
        msgid = "<%s@remote.test>" % uuid.uuid4().hex
    hdrs = [
        "From: <%s>" % sender,
        "To: <%s>" % to,
        "Subject: %s" % subject,
        "Message-ID: %s" % msgid,
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
    ]
    hdrs.extend(extra_headers)
    return ("\r\n".join(hdrs) + "\r\n\r\n").encode() + body


def dot_stuff(msg):
    """DATA transparency (RFC 5321 4.5.2) for a CRLF message; adds the final
    CRLF if missing. Returns the bytes to send *without* the terminator."""
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    lines = msg.split(b"\r\n")
    out = [(b"." + l) if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(out)


_ADDED_RE = re.compile(
    rb"\AReturn-Path: (<[^\r\n]*>)\r\n"
    rb"(Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)")


def split_stored(raw):
    """Splits a stored message into (return_path, received_field, rest).

    The stored form is "Return-Path: <sender>\\r\\n" + "Received: ...\\r\\n"
    (possibly folded) + the message as sent. Fails the test if the added
    header fields are missing or malformed."""
    m = _ADDED_RE.match(raw)
    assert m, "stored message does not start with Return-Path + Received:\n%r" % raw[:600]
    return m.group(1).decode("utf-8", "replace"), m.group(2), raw[m.end():]


def header_value(msg, name):
    """First header field value (unfolded) of a CRLF message, or None."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    head = re.sub(rb"\r\n[ \t]+", b" ", head)
    for line in head.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode("latin-1")
    return None


def b64(data):
    """base64 of str/bytes as str (the form of SASL responses)."""
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_response(user, password, authzid=""):
    """The RFC 4616 PLAIN message, base64-encoded."""
    return b64("%s\0%s\0%s" % (authzid, user, password))


class CertPair:
    """A PEM certificate + key on disk."""

    def __init__(self, cert, key, name):
        self.cert = cert
        self.key = key
        self.name = name
        with open(cert) as f:
            self.pem = f.read()
        self.der = ssl.PEM_cert_to_DER_cert(self.pem)

    def context(self, **kw):
        """A client SSLContext that trusts only this certificate and checks
        the host name (connect with server_hostname=self.name)."""
        return client_context(self.cert, **kw)


def client_context(cafile=None, verify=True, minimum_version=None, maximum_version=None):
    if verify:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = True
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum_version is not None:
        ctx.minimum_version = minimum_version
    if maximum_version is not None:
        ctx.maximum_version = maximum_version
    return ctx


def make_cert_files(directory, cn, cert_name="cert.pem", key_name="key.pem", days=2):
    """A self-signed ECDSA P-256 certificate for DNS name `cn`, written with
    the openssl command; returns a CertPair."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, cert_name)
    key = os.path.join(directory, key_name)
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:" + cn, "-keyout", key, "-out", cert],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=60)
    assert p.returncode == 0, "openssl req failed: %s" % p.stdout.decode("utf-8", "replace")
    os.chmod(key, 0o600)
    return CertPair(cert, key, cn)


class SMTPName(smtplib.SMTP):
    """smtplib.SMTP that connects to `addr` (127.0.0.1) but uses HOSTNAME as
    the TLS server name, so starttls(context=tls_cert.context()) verifies the
    test certificate."""

    def __init__(self, addr, port, server_name=HOSTNAME, **kw):
        self._addr = addr
        kw.setdefault("timeout", IO_TIMEOUT)
        kw.setdefault("local_hostname", "client.example.test")
        super().__init__(server_name, port, **kw)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._addr, port), timeout, self.source_address)


class SMTP_SSLName(smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL (implicit TLS) with the same trick as SMTPName."""

    def __init__(self, addr, port, server_name=HOSTNAME, **kw):
        self._addr = addr
        kw.setdefault("timeout", IO_TIMEOUT)
        kw.setdefault("local_hostname", "client.example.test")
        super().__init__(server_name, port, **kw)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((self._addr, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._host)


# --------------------------------------------------------------------------
# raw SMTP client


class ConnectionClosed(Exception):
    pass


class Reply:
    """One SMTP reply: code (int), lines (list of str without CRLF)."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    @property
    def line(self):
        """The last (for single-line replies: the only) line."""
        return self.lines[-1]

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % (self.lines,)

    def __str__(self):
        return self.text


class SMTPClient:
    """A deliberately dumb SMTP client over a raw socket."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, source=None, tls_context=None,
                 server_hostname=HOSTNAME):
        """tls_context: implicit TLS (a submissions/465 listener): the
        handshake is done before anything is read."""
        self.timeout = timeout
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=src)
        self.buf = b""
        self.closed = False
        if tls_context is not None:
            self.tls(tls_context, server_hostname)

    # -- TLS

    def tls(self, context, server_hostname=HOSTNAME):
        """TLS handshake on the socket now. Whatever was buffered but not yet
        read is dropped (and returned): after STARTTLS nothing plaintext may
        count."""
        dropped = self.buf
        self.buf = b""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.sock.settimeout(self.timeout)
        return dropped

    def starttls(self, context, server_hostname=HOSTNAME):
        """STARTTLS; asserts the 220 and does the handshake."""
        r = self.cmd("STARTTLS")
        assert r.line == "220 2.0.0 Ready to start TLS", r
        dropped = self.tls(context, server_hostname)
        assert dropped == b"", "server sent bytes after its 220 to STARTTLS: %r" % dropped
        return r

    @property
    def tls_active(self):
        return isinstance(self.sock, ssl.SSLSocket)

    def auth_plain(self, user, password):
        """AUTH PLAIN with an initial response; returns the final reply."""
        return self.cmd("AUTH PLAIN " + plain_response(user, password))

    def login(self, user, password):
        r = self.auth_plain(user, password)
        assert r.line == AUTH_OK, r
        return r

    # -- plumbing

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.closed = True
            raise ConnectionClosed("connection closed by server; unread: %r" % self.buf)
        self.buf += data

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self):
        lines = []
        while True:
            line = self.read_line()
            assert re.match(r"^\d{3}([ -]|$)", line), "malformed reply line %r" % line
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply()

    def pending(self, timeout=1.0):
        """Whatever arrives within `timeout` seconds (b"" if nothing). Used to
        show that *no* further reply is sent; never a timing assertion."""
        data = self.buf
        self.buf = b""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return data
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return data
            except OSError:
                return data
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                self.closed = True
                return data
            data += chunk

    def wait_closed(self, timeout=IO_TIMEOUT):
        """Reads until EOF; returns the bytes read. Fails if the server keeps
        the connection open longer than `timeout`."""
        data = self.buf
        self.buf = b""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            assert left > 0, "server did not close the connection; got %r" % data
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                self.closed = True
                return data
            if not chunk:
                self.closed = True
                return data
            data += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- conveniences that assert the happy path

    def greet(self):
        r = self.read_reply()
        assert r.line == "220 %s ESMTP hermod" % HOSTNAME, r
        return r

    def ehlo(self, name="client.remote.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def mail(self, sender="sender@remote.test", params=""):
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + params) if params else ""))
        assert r.line == "250 2.1.0 Ok", r
        return r

    def rcpt(self, rcpt):
        r = self.cmd("RCPT TO:<%s>" % rcpt)
        assert r.line == "250 2.1.5 Ok", r
        return r

    def data(self, msg):
        """DATA + dot-stuffed msg + terminator; returns the final reply."""
        r = self.cmd("DATA")
        assert r.line == "354 End data with <CR><LF>.<CR><LF>", r
        self.send(dot_stuff(msg) + b".\r\n")
        return self.read_reply()

    def quit(self):
        try:
            r = self.cmd("QUIT")
            assert r.line == "221 2.0.0 Bye", r
        finally:
            self.close()


# --------------------------------------------------------------------------
# raw POP3 client


class POP3Error(AssertionError):
    pass


IMAP_GREETING_PREFIX = "* OK [CAPABILITY IMAP4rev2 IMAP4rev1"
IMAP_GREETING_SUFFIX = "] hermod IMAP server ready"


class IMAPClient(SMTPClient):
    """A raw IMAP client (RFC 9051) on the SMTPClient plumbing: commands get
    tags t1, t2, ...; cmd() returns (untagged lines, tagged line) as str.
    Nothing is asserted unless a method says so."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, tls_context=None,
                 server_hostname=HOSTNAME, greet=True):
        super().__init__(host, port, timeout=timeout, tls_context=tls_context,
                         server_hostname=server_hostname)
        self.n = 0
        self.greeting = None
        if greet:
            self.greeting = self.read_line()
            assert self.greeting.startswith(IMAP_GREETING_PREFIX), self.greeting
            assert self.greeting.endswith(IMAP_GREETING_SUFFIX), self.greeting

    def next_tag(self):
        self.n += 1
        return "t%d" % self.n

    def read_until_tagged(self, tag):
        """Lines up to and including the one starting with `tag `."""
        lines = []
        while True:
            line = self.read_line()
            if line.startswith(tag + " "):
                return lines, line
            lines.append(line)

    def cmd(self, line, tag=None):
        """Sends `tag line`; returns (untagged lines, tagged line)."""
        tag = tag or self.next_tag()
        self.send("%s %s\r\n" % (tag, line) if isinstance(line, str)
                  else tag.encode() + b" " + line + b"\r\n")
        return self.read_until_tagged(tag)

    def ok(self, line):
        """cmd() that asserts a tagged OK; returns the untagged lines."""
        tag = self.next_tag()
        untagged, tagged = self.cmd(line, tag=tag)
        assert tagged.startswith(tag + " OK"), (line, untagged, tagged)
        return untagged

    def login(self, user, password):
        tag = self.next_tag()
        untagged, tagged = self.cmd('LOGIN "%s" "%s"' % (user, password), tag=tag)
        assert tagged.startswith(tag + " OK [CAPABILITY "), tagged
        assert tagged.endswith("] Logged in"), tagged
        return tagged

    def starttls(self, context, server_hostname=HOSTNAME):
        tag = self.next_tag()
        _, tagged = self.cmd("STARTTLS", tag=tag)
        assert tagged == tag + " OK Begin TLS negotiation now", tagged
        dropped = self.tls(context, server_hostname)
        assert dropped == b"", dropped

    def logout(self):
        tag = self.next_tag()
        untagged, tagged = self.cmd("LOGOUT", tag=tag)
        assert untagged == ["* BYE Logging out"], untagged
        assert tagged == tag + " OK LOGOUT completed", tagged
        self.wait_closed()


class POP3Client(SMTPClient):
    """A raw POP3 client (RFC 1939) on the SMTPClient plumbing: status lines
    as str, multi-line responses as bytes. Nothing is asserted unless a
    method says so."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, tls_context=None,
                 server_hostname=HOSTNAME, greet=True):
        super().__init__(host, port, timeout=timeout, tls_context=tls_context,
                         server_hostname=server_hostname)
        self.greeting = None
        if greet:
            self.greeting = self.read_line()
            assert self.greeting == POP3_GREETING, self.greeting

    def read_line_bytes(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, line):
        """Sends one command line; returns the status line (str)."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_line()

    def read_multi_wire(self):
        """The body of a multi-line response exactly as sent, up to and
        including the terminating ".\r\n"."""
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 3
                break
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                end = i + 5
                break
            self._fill()
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    @staticmethod
    def unstuff(wire):
        """A multi-line body (with its terminator) -> the data it carries
        (CRLF line ends kept, dot-stuffing and terminator removed)."""
        assert wire.endswith(b".\r\n"), wire[-50:]
        body = wire[:-3]
        if not body:
            return b""
        assert body.endswith(b"\r\n"), body[-50:]
        lines = body[:-2].split(b"\r\n")
        return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)

    def multi(self, line):
        """A command with a multi-line answer: (status, data, wire); data and
        wire are None when the status is not +OK."""
        st = self.cmd(line)
        if not st.startswith("+OK"):
            return st, None, None
        wire = self.read_multi_wire()
        return st, self.unstuff(wire), wire

    def multi_lines(self, line):
        """(status, [lines as str]) for listings such as LIST/UIDL/CAPA."""
        st, data, _ = self.multi(line)
        if data is None:
            return st, None
        return st, data.decode("utf-8", "replace").split("\r\n")[:-1]

    def capa(self):
        st, lines = self.multi_lines("CAPA")
        assert st == "+OK Capability list follows", st
        return lines

    def stls(self, context, server_hostname=HOSTNAME):
        st = self.cmd("STLS")
        assert st == "+OK Begin TLS negotiation", st
        dropped = self.tls(context, server_hostname)
        assert dropped == b"", "server sent bytes after +OK to STLS: %r" % dropped
        return st

    def login(self, user, password):
        """USER/PASS; asserts success; returns the PASS status line."""
        st = self.cmd("USER " + user)
        assert st == "+OK", st
        st = self.cmd("PASS " + password)
        assert st.startswith("+OK Logged in, "), st
        return st

    def quit(self):
        try:
            st = self.cmd("QUIT")
            assert st.startswith("+OK Bye"), st
            return st
        finally:
            self.close()


# --------------------------------------------------------------------------
# the server under test


class Server:
    def __init__(self, binary, base_dir, limits=None, extra=None, setup=True,
                 fsync=True, tls=None, submission=False, submissions=None,
                 pop3=False, pop3s=None, imap=False, imaps=None):
        """tls: None/False = no [tls]; a CertPair = that certificate (the
        files are copied into the server's directory as tls/cert.pem and
        tls/key.pem, so a test may replace them and send SIGHUP).
        submission: open the 587-role listener (srv.submission_port);
        submissions (default: submission and tls): the 465-role listener
        (srv.submissions_port).
        pop3: the POP3 listener (srv.pop3_port); pop3s (default: pop3 and
        tls): POP3 over implicit TLS (srv.pop3s_port).
        imap: the IMAP listener (srv.imap_port); imaps (default: imap and
        tls): IMAP over implicit TLS (srv.imaps_port)."""
        self.binary = binary
        self.dir = base_dir
        os.makedirs(self.dir, exist_ok=True)
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "hermod.conf")
        self.stderr_path = os.path.join(self.dir, "hermod.stderr")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.limits = dict(DEFAULT_LIMITS)
        for k, v in (limits or {}).items():
            if v is None:
                self.limits.pop(k, None)
            else:
                self.limits[k] = str(v)
        self.extra = extra or {}
        self.fsync = fsync
        self.cert = None
        if tls:
            tdir = os.path.join(self.dir, "tls")
            os.makedirs(tdir, exist_ok=True)
            self.cert_path = os.path.join(tdir, "cert.pem")
            self.key_path = os.path.join(tdir, "key.pem")
            shutil.copyfile(tls.cert, self.cert_path)
            shutil.copyfile(tls.key, self.key_path)
            os.chmod(self.key_path, 0o600)
            self.cert = CertPair(self.cert_path, self.key_path, tls.name)
        if submissions is None:
            submissions = bool(submission and tls)
        self.submission_port = free_port() if submission else None
        self.submissions_port = free_port() if submissions else None
        if pop3s is None:
            pop3s = bool(pop3 and tls)
        self.pop3_port = free_port() if pop3 else None
        self.pop3s_port = free_port() if pop3s else None
        if imaps is None:
            imaps = bool(imap and tls)
        self.imap_port = free_port() if imap else None
        self.imaps_port = free_port() if imaps else None
        self.proc = None
        self.last_returncode = None
        self._write_config()
        if setup:
            self.setup_accounts()
        _LIVE_SERVERS.append(self)

    # -- config and set-up

    def _write_config(self):
        sections = {
            # two event loops: every test runs with connections spread over
            # several loops (the machine may have fewer cores; that is fine)
            "server": {"hostname": HOSTNAME, "data_dir": self.data_dir,
                       "log_level": "info", "threads": "2"},
            "listen": {"smtp": "%s:%d" % (self.host, self.port)},
            "limits": self.limits,
            "store": {"fsync": "yes" if self.fsync else "no"},
        }
        if self.cert is not None:
            sections["tls"] = {"cert": self.cert_path, "key": self.key_path}
        if self.submission_port:
            sections["listen"]["submission"] = "%s:%d" % (self.host, self.submission_port)
        if self.submissions_port:
            sections["listen"]["submissions"] = "%s:%d" % (self.host, self.submissions_port)
        if self.pop3_port:
            sections["listen"]["pop3"] = "%s:%d" % (self.host, self.pop3_port)
        if self.pop3s_port:
            sections["listen"]["pop3s"] = "%s:%d" % (self.host, self.pop3s_port)
        if self.pop3_port or self.pop3s_port:
            sections["auth"] = dict(AUTH_TEST_DEFAULTS)
        if self.imap_port:
            sections["listen"]["imap"] = "%s:%d" % (self.host, self.imap_port)
        if self.imaps_port:
            sections["listen"]["imaps"] = "%s:%d" % (self.host, self.imaps_port)
        if self.imap_port or self.imaps_port:
            sections["auth"] = dict(AUTH_TEST_DEFAULTS)
        if self.submission_port or self.submissions_port:
            sections["auth"] = dict(AUTH_TEST_DEFAULTS)
            # Outbound mail (queued by submission) may only ever go to a
            # closed port on this machine.
            sections["delivery"] = {"smarthost": "127.0.0.1:%d" % free_port()}
        for sec, kv in self.extra.items():
            sections.setdefault(sec, {}).update(kv)
        with open(self.config_path, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def setup_accounts(self):
        for d in DOMAINS:
            self.cli("domain", "add", d)
        for addr, pw in PASSWORDS.items():
            self.cli("user", "add", addr, "--password-stdin", input=pw + "\n")
        for src, dst in ALIASES:
            self.cli("alias", "add", src, dst)

    # -- CLI

    def cli(self, *args, input=None, check=True, binary_out=False):
        """Runs `hermod ARGS` with -c CONFIG; returns CompletedProcess
        (stdout str, or bytes with binary_out)."""
        args = [str(a) for a in args]
        pos = 2 if (args and args[0] in _ACTION_COMMANDS and len(args) > 1) else 1
        argv = [self.binary] + args[:pos] + ["-c", self.config_path] + args[pos:]
        env = dict(os.environ, HERMOD_CONFIG=self.config_path)
        p = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CLI_TIMEOUT, env=env)
        if not binary_out:
            p.stdout = p.stdout.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %r\nstderr: %s" % (
                " ".join(argv), p.returncode, p.stdout[:2000],
                p.stderr.decode("utf-8", "replace")[-4000:]))
        return p

    _ROW_RE = re.compile(r"^(\d+) (\d+) \(([^)]*)\)(?: (.*))?$")

    def messages(self, addr, mailbox="INBOX"):
        """Rows of `hermod message list`: dicts uid, size, flags (list), subject."""
        out = self.cli("message", "list", addr, mailbox).stdout
        rows = []
        for line in out.splitlines():
            if not line.strip():
                continue
            m = self._ROW_RE.match(line)
            assert m, "unparsable `message list` line: %r" % line
            rows.append({"uid": int(m.group(1)), "size": int(m.group(2)),
                         "flags": m.group(3).split(), "subject": m.group(4) or ""})
        return rows

    def mailboxes(self, addr):
        """Rows of `hermod mailbox list`: dict name -> (messages, unseen, size)."""
        out = self.cli("mailbox", "list", addr).stdout
        res = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            name, n, unseen, size = line.rsplit(" ", 3)
            res[name] = (int(n), int(unseen), int(size))
        return res

    def show(self, addr, mailbox, uid):
        return self.cli("message", "show", addr, mailbox, uid, binary_out=True).stdout

    def find(self, addr, subject, mailbox="INBOX"):
        return [r for r in self.messages(addr, mailbox) if r["subject"] == subject]

    def fetch_one(self, addr, subject, mailbox="INBOX"):
        """The stored bytes of the one message with this subject."""
        rows = self.find(addr, subject, mailbox)
        assert len(rows) == 1, "expected exactly one message %r in %s/%s, found %r" % (
            subject, addr, mailbox, rows)
        return self.show(addr, mailbox, rows[0]["uid"])

    def blob_count(self):
        """Blobs the store knows (rows of its blobs table: small blobs live in
        segment files, so files are not one per blob)."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data_dir, "hermod.db"),
                             uri=True)
        try:
            return db.execute("SELECT count(*) FROM blobs").fetchone()[0]
        finally:
            db.close()

    # -- process control

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._stderr = open(self.stderr_path, "ab")
        self._stderr.write(b"---- start %s ----\n" % time.strftime("%H:%M:%S").encode())
        self._stderr.flush()
        env = dict(os.environ, HERMOD_CONFIG=self.config_path)
        self.proc = subprocess.Popen([self.binary, "serve", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._close_stderr()
                raise AssertionError("hermod serve exited with %d during start-up\n%s"
                                     % (rc, self.stderr_tail()))
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    # Take the greeting and QUIT so the probe is gone when the
                    # test starts (matters for connection-limit tests).
                    s.settimeout(10)
                    buf = b""
                    try:
                        while b"\r\n" not in buf:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            buf += chunk
                        if buf.startswith(b"220"):
                            s.sendall(b"QUIT\r\n")
                            while s.recv(4096):
                                pass
                    except OSError:
                        pass
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError("hermod did not accept connections on %s:%d within %ds\n%s"
                                     % (self.host, self.port, START_TIMEOUT, self.stderr_tail()))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`; always wait(). Returns the exit
        status (negative = signal), or None if it was not running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                self.last_returncode = "SIGKILLed after SIGTERM timeout"
                self.proc = None
                self._close_stderr()
                return self.last_returncode
        self.last_returncode = self.proc.returncode
        self.proc = None
        self._close_stderr()
        return self.last_returncode

    def kill9(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self.last_returncode = self.proc.returncode
        self.proc = None
        self._close_stderr()
        return self.last_returncode

    def restart(self):
        self.stop()
        return self.start()

    def _close_stderr(self):
        f = getattr(self, "_stderr", None)
        if f is not None:
            f.close()
            self._stderr = None

    def stderr_bytes(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def stderr_tail(self, n=60):
        lines = self.stderr_bytes().decode("utf-8", "replace").splitlines()
        return "---- hermod stderr (%s), last %d lines ----\n%s" % (
            self.stderr_path, n, "\n".join(lines[-n:]))

    def sanitizer_report(self):
        data = self.stderr_bytes()
        return any(m in data for m in _SANITIZER_MARKERS)

    def cleanup(self):
        """Stop (if running) and check the exit was clean."""
        was_running = self.alive()
        crashed_before = (self.proc is not None and not was_running)
        rc = self.stop()
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        problems = []
        if crashed_before:
            problems.append("hermod had exited on its own (status %r) before teardown" % rc)
        elif was_running and rc != 0:
            problems.append("hermod exited with %r after SIGTERM (expected 0)" % rc)
        if self.sanitizer_report():
            problems.append("sanitizer report in hermod's stderr")
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.stderr_tail(120))

    # -- SMTP conveniences

    def connect(self, timeout=IO_TIMEOUT, source=None, port=None, tls_context=None,
                server_hostname=HOSTNAME):
        return SMTPClient(self.host, port or self.port, timeout=timeout, source=source,
                          tls_context=tls_context, server_hostname=server_hostname)

    def context(self, **kw):
        """Client SSLContext trusting this server's certificate."""
        assert self.cert is not None, "server has no [tls]"
        return self.cert.context(**kw)

    def connect_587(self, starttls=True, ehlo=True, source=None, **kw):
        """A session on the submission port, greeted, EHLO'd, after STARTTLS."""
        c = self.connect(port=self.submission_port, source=source, **kw)
        c.greet()
        if ehlo or starttls:
            c.ehlo()
        if starttls:
            c.starttls(self.context())
            if ehlo:
                c.ehlo()
        return c

    def connect_465(self, ehlo=True, source=None, **kw):
        """A session on the submissions port (implicit TLS), greeted, EHLO'd."""
        c = self.connect(port=self.submissions_port, source=source,
                         tls_context=self.context(), **kw)
        c.greet()
        if ehlo:
            c.ehlo()
        return c

    def pop3(self, tls=None, **kw):
        """A greeted POP3Client: tls=None/False on srv.pop3_port (plain, no
        STLS); tls="stls" on srv.pop3_port after STLS; tls="implicit" (or
        True) on srv.pop3s_port."""
        if tls in ("implicit", True):
            return POP3Client(self.host, self.pop3s_port, tls_context=self.context(), **kw)
        c = POP3Client(self.host, self.pop3_port, **kw)
        if tls == "stls":
            c.stls(self.context())
        return c

    def queue(self):
        """Rows of `hermod queue list`: dicts id, size, created, sender, rcpts,
        state (the indented line after the entry's: "age ..., N attempts, next
        try ..."), and states: {rcpt: "STATE[: LAST-REPLY]"} from the indented
        recipient lines."""
        out = self.cli("queue", "list").stdout
        rows = []
        for line in out.splitlines():
            if not line.strip():
                continue
            if line.startswith("    "):
                assert rows, "`queue list` starts with an indented line: %r" % line
                row = rows[-1]
                if row["state"] is None:
                    row["state"] = line.strip()
                else:
                    rcpt, _, state = line.strip().partition(" ")
                    row["states"][rcpt] = state
                continue
            m = re.match(r"^(\S+) (\d+) (.+?) (\S*) -> (\S+)$", line)
            assert m, "unparsable `queue list` line: %r" % line
            rows.append({"id": m.group(1), "size": int(m.group(2)),
                         "created": m.group(3), "sender": m.group(4).strip("<>"),
                         "rcpts": m.group(5).split(","), "state": None, "states": {}})
        return rows

    def deliver(self, rcpts, msg, sender="sender@remote.test"):
        """One transaction over a new connection; returns the reply to the end
        of DATA (asserts the steps before it succeed)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with self.connect() as c:
            c.greet()
            c.ehlo()
            c.mail(sender)
            for r in rcpts:
                c.rcpt(r)
            reply = c.data(msg)
            c.quit()
        return reply

    def assert_serves(self, check_stored=True):
        """The server is alive and a fresh client gets 220 and can deliver."""
        assert self.alive(), "hermod is not running\n" + self.stderr_tail()
        subject = unique("probe")
        reply = self.deliver([ALICE], make_message(subject, b"probe\r\n"))
        assert DELIVERED_RE.match(reply.line), reply
        if check_stored:
            self.fetch_one(ALICE, subject)


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def hermod_bin():
    path = os.environ.get("HERMOD_BIN") or os.path.join(REPO, "hermod")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("hermod binary not found or not executable: %s "
                    "(build it with `make`, or set HERMOD_BIN)" % path, pytrace=False)
    return path


def _tmpdir(prefix):
    return tempfile.mkdtemp(prefix="hermod-%s-" % prefix)


@pytest.fixture
def make_server(hermod_bin, tls_cert):
    """Factory: make_server(limits={...}, extra={section: {...}}, setup=True,
    start=True, tls=False|True|CertPair, submission=False, submissions=None,
    pop3=False, pop3s=None)
    -> Server. All are stopped and checked at teardown."""
    servers = []
    dirs = []

    def factory(limits=None, extra=None, setup=True, start=True, fsync=True, tls=False,
                submission=False, submissions=None, pop3=False, pop3s=None):
        d = _tmpdir("test")
        dirs.append(d)
        if tls is True:
            tls = tls_cert
        srv = Server(hermod_bin, d, limits=limits, extra=extra, setup=setup, fsync=fsync,
                     tls=tls, submission=submission, submissions=submissions,
                     pop3=pop3, pop3s=pop3s)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    errors = []
    for srv in servers:
        try:
            srv.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    if not errors:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def module_server(hermod_bin, prefix="mod", **kwargs):
    """Generator for module-scoped server fixtures:

        @pytest.fixture(scope="module")
        def lim(hermod_bin):
            yield from module_server(hermod_bin, "limits", limits={...})
    """
    d = _tmpdir(prefix)
    srv = Server(hermod_bin, d, **kwargs)
    try:
        srv.start()
    except BaseException:
        if srv in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(srv)
        raise
    yield srv
    srv.cleanup()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(hermod_bin):
    """One default server shared by the tests of a module."""
    yield from module_server(hermod_bin)


@pytest.fixture(scope="session")
def tls_cert():
    """Self-signed ECDSA P-256 certificate for mx.example.test (valid 2 days)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (Debian package openssl)", pytrace=False)
    d = _tmpdir("cert")
    yield make_cert_files(d, HOSTNAME)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def make_cert():
    """Factory: make_cert(cn, directory=None) -> CertPair."""
    dirs = []

    def factory(cn, directory=None, cert_name="cert.pem", key_name="key.pem"):
        if directory is None:
            directory = _tmpdir("cert")
            dirs.append(directory)
        return make_cert_files(directory, cn, cert_name, key_name)

    yield factory
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


NPM_DIR = os.path.join(REPO, "tests", "npm")


@pytest.fixture(scope="session")
def npm_dir():
    """tests/npm with its node_modules (installed by `make deps-test`)."""
    if shutil.which("node") is None:
        pytest.skip("node not found (make deps-test installs it)")
    if not os.path.isdir(os.path.join(NPM_DIR, "node_modules")):
        pytest.skip("tests/npm/node_modules missing: run `make deps-test` "
                    "(cd tests/npm && npm install)")
    return NPM_DIR


def run_node(script, args, env=None, timeout=120):
    """Runs `node tests/npm/SCRIPT ARGS`; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(["node", os.path.join(NPM_DIR, script)] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=e, text=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(_LIVE_SERVERS):
            rep.sections.append(("hermod stderr %s:%d" % (srv.host, srv.port),
                                 srv.stderr_tail()))
