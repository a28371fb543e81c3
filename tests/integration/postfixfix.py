"""A receiving Postfix peer for tests: a private instance of Debian's Postfix
(its own config, queue and data directories under a temp dir in /tmp), smtpd
on one loopback address and port, the given domains delivered by virtual(8)
into Maildirs, STARTTLS offered with a self-signed certificate, logs in a
file. It only receives: nothing is relayed, every other transport is the
error(8) one and DNS is never used.

    with Postfix() as pf:
        ... deliver to user@post.test at pf.address ...
        raw = pf.wait_messages(1)[0]
        assert any("status=sent" in l for l in pf.log_lines())

Needs root (a private instance runs its daemons as the postfix user); skipped
otherwise, and when Postfix is not installed (scripts/deps.sh test). The
system's instance (/etc/postfix, /var/spool/postfix) is never touched: only
/etc/postfix/master.cf (or the package's template) is read, as the base of the
private master.cf.

`postfix start` daemonizes its master; it runs under a small subreaper
process (a child of the test process) that reaps the master and every
Postfix daemon left over, and exits when none is left, so that stop() leaves
neither daemons nor zombies behind. If the test process dies, the subreaper
stops the instance (parent-death signal)."""

import glob
import os
import pwd
import grp
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

HOSTNAME = "postfix-peer.test"
BANNER = "$myhostname ESMTP Postfix (hermod test peer)"
TMP_PREFIX = "hermod-postfix-"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# Leftover dirs of earlier runs older than this, with no live master, are
# removed at start-up.
STALE_AGE = 600.0

# The one Maildir (under virtual_mailbox_base) all mail goes to.
MAILDIR = "maildir/"

# The subreaper: becomes PR_SET_CHILD_SUBREAPER, runs the command (postfix
# start) with its output into a file, prints the command's exit status on
# stdout, then reaps every process until none is left. SIGTERM (sent by the
# parent-death signal, or by stop() as a last resort) kills the instance.
_REAPER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
lock, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
def kill_all(*_):
    try:
        with open(lock) as f:
            pid = int(f.read().split()[0])
        os.kill(-pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid():
                    os.kill(int(d), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
signal.signal(signal.SIGTERM, kill_all)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("cannot become a child subreaper")
libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() == 1:
    sys.exit("parent gone")
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.execvp(cmd[0], cmd)
while True:
    try:
        wpid, st = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if wpid == pid:
        sys.stdout.write("%d\n" % os.waitstatus_to_exitcode(st))
        sys.stdout.flush()
"""


def available():
    """Why the Postfix peer cannot run here, or None."""
    if os.geteuid() != 0:
        return ("the Postfix peer needs root (a private instance runs its "
                "daemons as the postfix user)")
    if not os.path.exists(POSTFIX) or not os.path.exists(POSTCONF):
        return "postfix not installed (Debian package postfix; scripts/deps.sh test)"
    if not os.path.exists(OPENSSL):
        return "openssl not installed (Debian package openssl)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "user postfix / group postdrop missing (broken postfix install)"
    return None


def free_port(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _interface_addresses():
    """IPv4 addresses configured on this machine's interfaces (iproute2), or
    None when they cannot be listed."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        r = subprocess.run([ip, "-o", "-4", "addr", "show"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return set(re.findall(r"\binet (\d+\.\d+\.\d+\.\d+)/", r.stdout.decode()))


def _interfaces_for(host):
    """inet_interfaces for an smtpd on host: host itself when it is an
    interface's address, else 127.0.0.1 (loopback addresses such as
    127.0.0.2 work with any socket but Postfix refuses them here)."""
    addrs = _interface_addresses()
    if addrs is not None and host in addrs:
        return host
    if host.startswith("127."):
        return "127.0.0.1"
    if addrs is None:
        return host
    raise RuntimeError("%s is not an address of this machine" % host)


def _proc_state(pid):
    """The one-letter state of pid, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid):
    st = _proc_state(pid)
    return st is not None and st != "Z"


def _lock_pid(data_dir):
    """The master's PID from its lock file in data_dir, or None."""
    try:
        with open(os.path.join(data_dir, "master.lock")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _master_alive(pid):
    if pid is None or not _alive(pid):
        return False
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == "master"
    except OSError:
        return False


def _sweep_stale():
    """Removes temp dirs of earlier runs that crashed: old enough, and no
    master running from them."""
    now = time.time()
    for d in glob.glob(os.path.join("/tmp", TMP_PREFIX + "*")):
        try:
            if now - os.stat(d).st_mtime < STALE_AGE:
                continue
        except OSError:
            continue
        if _master_alive(_lock_pid(os.path.join(d, "data"))):
            continue
        shutil.rmtree(d, ignore_errors=True)


def delivered_to(raw):
    """The (lower-cased) address of the first Delivered-To: field of a
    stored message, or None."""
    head = raw.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        k, _, v = line.partition(b":")
        if k.lower() == b"delivered-to":
            return v.strip().decode("utf-8", "replace").lower()
    return None


def _tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no %s)" % path


class Postfix:
    """A private Postfix instance receiving mail for domains on host:port."""

    def __init__(self, host="127.0.0.2", port=None, domains=("post.test",)):
        why = available()
        if why:
            pytest.skip(why)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.domains = tuple(d.lower() for d in domains)
        self.reaper = None
        self.master_pid = None
        self._stopped = False
        _sweep_stale()
        self.dir = tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp")
        try:
            self._setup()
            self._start()
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------ set-up

    def _setup(self):
        d = self.dir
        self.etc = os.path.join(d, "etc")
        self.spool = os.path.join(d, "spool")
        self.data = os.path.join(d, "data")
        self.vmail = os.path.join(d, "vmail")
        self.log = os.path.join(d, "maillog")
        self.start_log = os.path.join(d, "start.log")
        pf = pwd.getpwnam("postfix")
        self.uid, self.gid = pf.pw_uid, pf.pw_gid
        for p in (self.etc, self.spool, self.data, self.vmail):
            os.mkdir(p)
        # Postfix daemons (user postfix) must traverse the temp dir.
        for p in (d, self.etc, self.spool):
            os.chmod(p, 0o755)
        os.chown(self.data, self.uid, self.gid)
        os.chmod(self.data, 0o700)
        os.chown(self.vmail, self.uid, self.gid)
        os.chmod(self.vmail, 0o700)

        # The TLS key + certificate, self-signed (smtpd reads them as root).
        self.key = os.path.join(self.etc, "key.pem")
        self.cert = os.path.join(self.etc, "cert.pem")
        r = subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.key, "-out", self.cert, "-days", "30",
             "-subj", "/CN=" + HOSTNAME,
             "-addext", "subjectAltName=DNS:" + HOSTNAME],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl req failed: %s"
                               % r.stderr.decode("utf-8", "replace").strip())
        os.chmod(self.key, 0o600)

        master = None
        for cand in ("/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist"):
            if os.path.isfile(cand):
                master = cand
                break
        if master is None:
            raise RuntimeError("no master.cf to start from (postfix package broken?)")
        shutil.copyfile(master, os.path.join(self.etc, "master.cf"))

        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(self._main_cf())

        svc = "%s:%d" % (self.host, self.port)
        self._postconf("-MX", "smtp/inet")
        # the stock file may have a commented submission etc.: only ours
        for line in self._postconf("-M").splitlines():
            w = line.split()
            if len(w) >= 2 and w[1] == "inet":
                self._postconf("-MX", "%s/inet" % w[0])
        self._postconf("-M", "%s/inet = %s inet n - n - - smtpd" % (svc, svc))
        self._postconf("-F", "*/*/chroot = n")
        if not self._postconf("-M", "postlog/unix-dgram").strip():
            self._postconf("-M", "postlog/unix-dgram = "
                           "postlog unix-dgram n - n - 1 postlogd")
        inet = [l for l in self._postconf("-M").splitlines()
                if len(l.split()) >= 2 and l.split()[1] == "inet"]
        if len(inet) != 1 or inet[0].split()[0] != svc:
            raise RuntimeError("unexpected inet services in master.cf: %r" % inet)

    def _main_cf(self):
        none = "error:5.7.1 this test peer only receives"
        return "\n".join([
            "# Private Postfix instance for hermod's integration tests.",
            "compatibility_level = 3.6",
            "config_directory = " + self.etc,
            "queue_directory = " + self.spool,
            "data_directory = " + self.data,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = " + HOSTNAME,
            "mydomain = " + HOSTNAME,
            "myorigin = $myhostname",
            "mydestination =",
            "relay_domains =",
            # Postfix wants an interface's address here; 127.0.0.2 and such
            # are loopback without being on lo (master.cf binds the smtpd)
            "inet_interfaces = " + _interfaces_for(self.host),
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            # nothing is relayed, loopback clients included
            "smtpd_relay_restrictions = reject_unauth_destination",
            "smtpd_recipient_restrictions =",
            "smtpd_banner = " + BANNER,
            "smtpd_peername_lookup = no",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "biff = no",
            "notify_classes =",
            "append_dot_mydomain = no",
            "virtual_mailbox_domains = " + ", ".join(self.domains),
            "virtual_mailbox_base = " + self.vmail,
            # Every recipient of the domains: one Maildir (virtual(8) allows
            # no $n substitution); Delivered-To: says whose a message is
            "virtual_mailbox_maps = static:" + MAILDIR,
            "virtual_uid_maps = static:%d" % self.uid,
            "virtual_gid_maps = static:%d" % self.gid,
            "virtual_minimum_uid = %d" % min(self.uid, 100),
            # Nothing leaves this machine, nor asks DNS.
            "default_transport = " + none,
            "relay_transport = " + none,
            "local_transport = " + none,
            "smtp_dns_support_level = disabled",
            "smtp_host_lookup = native",
            "lmtp_host_lookup = native",
            "smtpd_tls_security_level = may",
            "smtpd_tls_chain_files = %s, %s" % (self.key, self.cert),
            "smtpd_tls_loglevel = 1",
            "smtpd_tls_received_header = yes",
            "tls_random_source = dev:/dev/urandom",
            "maillog_file = " + self.log,
            "maillog_file_prefixes = " + self.dir,
            "",
        ])

    def _postconf(self, *args):
        r = subprocess.run([POSTCONF, "-c", self.etc] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            raise RuntimeError("postconf %s: %s" % (
                " ".join(args), r.stderr.decode("utf-8", "replace").strip()))
        return r.stdout.decode("utf-8", "replace")

    # ------------------------------------------------------------ start / stop

    def _start(self):
        t0 = time.monotonic()
        deadline = t0 + START_TIMEOUT
        self.reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER,
             os.path.join(self.data, "master.lock"), self.start_log,
             POSTFIX, "-c", self.etc, "start"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd="/")
        # `postfix start` returns once the master has bound its sockets.
        status = self._read_status(deadline)
        if status != 0:
            raise RuntimeError("postfix start failed (%s):\n%s\n%s" % (
                status, _tail(self.start_log), _tail(self.log)))
        self.master_pid = _lock_pid(self.data)
        if not _master_alive(self.master_pid):
            raise RuntimeError("postfix master not running after start:\n"
                               + _tail(self.log))
        # smtpd answers (TLS set-up included) before the tests talk to it
        self._wait_banner(deadline)
        self.start_seconds = time.monotonic() - t0

    def _read_status(self, deadline):
        out = self.reaper.stdout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            r, _, _ = select.select([out], [], [], left)
            if r:
                chunk = os.read(out.fileno(), 64)
                if not chunk:
                    err = self.reaper.stderr.read().decode("utf-8", "replace")
                    return "subreaper exited: %s" % err.strip()
                buf += chunk
        try:
            return int(buf.split(b"\n", 1)[0])
        except ValueError:
            return buf.decode("utf-8", "replace")

    def _wait_banner(self, deadline):
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    data = b""
                    while b"\n" not in data:
                        chunk = s.recv(512)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"220 "):
                        s.sendall(b"QUIT\r\n")
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError("postfix smtpd does not answer on %s:%d (%r):\n%s"
                           % (self.host, self.port, last, _tail(self.log)))

    def stop(self):
        """postfix stop; waits for the master (its PID from the lock in the
        data dir) and every other daemon of this instance to exit, then
        removes the temp dir. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.reaper is not None:
                self._stop_instance()
        finally:
            if self.reaper is not None:
                for f in (self.reaper.stdout, self.reaper.stderr):
                    if f:
                        f.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_instance(self):
        pid = self.master_pid or _lock_pid(self.data)
        if _master_alive(pid):
            subprocess.run([POSTFIX, "-c", self.etc, "stop"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _master_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The subreaper exits once no process of the instance is left.
        try:
            self.reaper.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.reaper.terminate()  # it SIGKILLs the instance
            try:
                self.reaper.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
                self.reaper.wait()
            raise RuntimeError("Postfix processes still running after "
                               "postfix stop; killed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ results

    @property
    def address(self):
        """(host, port) of the smtpd."""
        return (self.host, self.port)

    def _files(self):
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(self.vmail, MAILDIR, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            files.extend(os.path.join(d, n) for n in names)
        # Maildir names start with the delivery time: oldest first
        def key(p):
            try:
                return (os.stat(p).st_mtime, os.path.basename(p))
            except OSError:
                return (0, os.path.basename(p))
        return sorted(files, key=key)

    def messages(self):
        """Every delivered message (bytes as stored, starting with the
        Return-Path:, Delivered-To: and Received: fields Postfix adds), one
        per recipient, oldest first."""
        out = []
        for p in self._files():
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
        return out

    def messages_for(self, addr):
        """The messages delivered to addr (case-insensitive; by the
        Delivered-To: field virtual(8) puts first), oldest first."""
        want = addr.strip().strip("<>").lower()
        return [m for m in self.messages() if delivered_to(m) == want]

    def wait_messages(self, n, timeout=30):
        """Waits until at least n messages were delivered (any recipient);
        returns them all (bytes), oldest first. Fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "Postfix peer: %d message(s) delivered after %ss, wanted %d; log:\n%s"
                    % (len(msgs), timeout, n, _tail(self.log)))
            time.sleep(0.05)

    def log_lines(self):
        """The lines of this instance's log so far (str, without newlines)."""
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
