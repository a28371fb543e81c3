"""A private Dovecot IMAP server on a loopback port, as the reference some tests
compare hermod's IMAP answers with (BODYSTRUCTURE, ENVELOPE, sections of tricky
messages). Debian's dovecot-imapd (installed by `make test`), configured in a
temporary directory: its own base_dir, log, passwd-file and Maildir; nothing of
the system's Dovecot configuration is used and no system instance is touched.

Dovecot needs root to start its master; tests using it are skipped otherwise
(CI runs as root)."""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(proc, port, log, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dovecot exited: " + _tail(log))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(200).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not listen: " + _tail(log))


def _tail(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-2000:]
    except OSError:
        return "(no log)"


def available():
    """Why the reference cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Dovecot reference needs root (a private dovecot master)"
    if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/imap"):
        return "dovecot-imapd is not installed (make test installs it)"
    try:
        pwd.getpwnam("dovecot")
        pwd.getpwnam("dovenull")
    except KeyError:
        return "users dovecot/dovenull missing (broken dovecot install)"
    return None


@contextlib.contextmanager
def dovecot_imap(user="ref@example.test", password="refpass"):
    """Starts Dovecot in a new directory under /tmp (its unprivileged processes
    must reach it: pytest's own temporary directories are private to root);
    yields (port, user, password). Stopped by its PID (and waited for), and its
    directory removed, when the block ends."""
    why = available()
    if why:
        pytest.skip(why)
    directory = tempfile.mkdtemp(prefix="hermod-dovecot-", dir="/tmp")
    nobody = pwd.getpwnam("nobody")
    for d in ("run", "state", "mail"):
        os.makedirs(os.path.join(directory, d), exist_ok=True)
    os.chmod(directory, 0o755)
    os.chown(os.path.join(directory, "mail"), nobody.pw_uid, nobody.pw_gid)
    port = _free_port()
    passwd = os.path.join(directory, "passwd")
    with open(passwd, "w") as f:
        f.write("%s:{PLAIN}%s:%d:%d::%s/mail/ref::\n"
                % (user, password, nobody.pw_uid, nobody.pw_gid, directory))
    os.chmod(passwd, 0o644)
    log = os.path.join(directory, "dovecot.log")
    conf = os.path.join(directory, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""# Throw-away Dovecot: the IMAP reference of hermod's tests.
protocols = imap
listen = 127.0.0.1
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = hermod-ref-{port}
log_path = {log}
info_log_path = {log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{directory}/mail/ref/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    try:
        _wait_port(proc, port, log)
        yield port, user, password
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
