"""mbsync (isync) against an IMAP server: a local Maildir tree synchronised both
ways with an account, for tests/integration/test_mbsync.py. Works against any
IMAP server on a loopback port (hermod, or the Dovecot reference of
refimap.py to check these helpers themselves)."""

import email
import hashlib
import os
import re
import subprocess
import time

MBSYNC = "/usr/bin/mbsync"

# Maildir info flags (Maildir spec) <-> IMAP system flags
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}


def write_config(path, host, port, user, password, local_root, tls=None, cafile=None):
    """An mbsyncrc for one channel syncing every folder both ways.
    tls: None (plain, loopback), "starttls" or "imaps"."""
    ssl = {"starttls": "STARTTLS", "imaps": "IMAPS"}.get(tls, "None")
    os.makedirs(local_root, exist_ok=True)
    lines = [
        "IMAPAccount test",
        "Host %s" % host,
        "Port %d" % port,
        "User %s" % user,
        "Pass %s" % password,
        "SSLType %s" % ssl,
        "AuthMechs LOGIN PLAIN",
        "PipelineDepth 50",
    ]
    if cafile:
        lines.append("CertificateFile %s" % cafile)
    lines += [
        "",
        "IMAPStore remote",
        "Account test",
        "",
        "MaildirStore local",
        "Path %s/" % local_root,
        "Inbox %s/INBOX" % local_root,
        "SubFolders Verbatim",
        "",
        "Channel sync",
        "Far :remote:",
        "Near :local:",
        "Patterns *",
        "Create Both",
        "Remove None",
        "Expunge Both",
        "Sync All",
        "SyncState *",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def run(config, timeout=300):
    """Runs mbsync -a; returns the CompletedProcess (check returncode)."""
    return subprocess.run([MBSYNC, "-c", config, "-a"], capture_output=True, timeout=timeout)


def maildir_add(folder, data, flags="", mtime=None):
    """Adds one message to a Maildir folder (creating it): returns its path."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    maildir_add.counter = getattr(maildir_add, "counter", 0) + 1
    name = "%d.M%dP%d.test" % (int(time.time()), maildir_add.counter, os.getpid())
    path = os.path.join(folder, "cur", name + ":2," + "".join(sorted(flags)))
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def maildir_messages(folder):
    """{sha256 of the message bytes: sorted IMAP flags} of a Maildir folder."""
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(folder, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            info = name.split(":2,", 1)[1] if ":2," in name else ""
            flags = sorted(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)
            out[hashlib.sha256(canonical(data)).hexdigest()] = flags
    return out


def canonical(data):
    """A message as compared between the two sides: mbsync stores Maildir
    messages with LF line ends and adds an X-TUID: header field to the messages
    it uploads (to find them again); neither counts."""
    data = data.replace(b"\r\n", b"\n")
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        return data
    return re.sub(rb"(^|\n)X-TUID: [^\n]*", b"", head) + sep + body


def make_message(i, folder="INBOX", size=600):
    """A distinct, plausible message (CRLF line ends)."""
    body = ("message %d of %s\r\n" % (i, folder)) + ("lorem ipsum %d\r\n" % i) * (size // 16)
    msg = ("From: Sender %d <sender%d@remote.test>\r\n"
           "To: user@example.test\r\n"
           "Subject: mbsync %s %d\r\n"
           "Date: Tue, 01 Dec 2026 10:%02d:%02d +0000\r\n"
           "Message-ID: <mbsync-%s-%d@remote.test>\r\n"
           "\r\n" % (i, i, folder, i, (i // 60) % 60, i % 60, folder.replace("/", "."), i))
    return (msg + body).encode()


def parse_flags(fetch_line):
    """Flags out of one imaplib FETCH response item."""
    s = fetch_line.decode() if isinstance(fetch_line, bytes) else fetch_line
    i = s.index("FLAGS (") + 7
    return sorted(f for f in s[i:s.index(")", i)].split() if f != "\\Recent")


def server_messages(imap, mailbox):
    """{sha256: sorted flags} of a server mailbox, read with imaplib."""
    typ, _ = imap.select('"%s"' % mailbox, readonly=True)
    assert typ == "OK", mailbox
    typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
    out = {}
    if typ != "OK":
        return out
    for item in data:
        if isinstance(item, tuple):
            out[hashlib.sha256(canonical(item[1])).hexdigest()] = parse_flags(item[0])
    return out


__all__ = ["write_config", "run", "maildir_add", "maildir_messages", "make_message",
           "server_messages", "email"]
