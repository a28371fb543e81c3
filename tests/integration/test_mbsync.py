"""mbsync (isync 1.4) synchronising a 1,000-message account with hermod both
ways and back: a local Maildir tree (INBOX, a nested folder, Archive; some
messages \\Seen or \\Flagged) is pushed to the server (folders created, flags
kept); changes made on the server (flags, deletions) are pulled; a fresh local
copy taken from the server then holds exactly the same messages and flags.
Messages are compared byte for byte (but for the line ends and X-TUID header
mbsync itself changes, mbsync_util.canonical). Over STARTTLS, verified against a
certificate for 127.0.0.1, for the first sync and plain on loopback for the
rest."""

import imaplib
import os
import shutil

import pytest

import mbsync_util as mb
from conftest import ALICE, PASSWORDS, make_cert_files, module_server

FOLDERS = (("INBOX", 1000), ("Lists/hermod", 100), ("Archive", 50))


@pytest.fixture(scope="module")
def msrv(hermod_bin, tmp_path_factory):
    # mbsync checks the certificate against the Host it connects to, 127.0.0.1
    # (as a string: its own check reads the DNS names and the CN)
    cert = make_cert_files(str(tmp_path_factory.mktemp("mbsync-cert")), "127.0.0.1")
    yield from module_server(hermod_bin, "mbsync", tls=cert, imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


def _need():
    if not os.path.exists(mb.MBSYNC):
        pytest.skip("mbsync not installed (Debian package isync; make deps-test)")


def _imap(srv):
    c = imaplib.IMAP4(srv.host, srv.imap_port)
    c.login(ALICE, PASSWORDS[ALICE])
    return c


def test_mbsync_both_ways(msrv, tmp_path):
    _need()
    local = str(tmp_path / "local")
    want = {}
    for folder, count in FOLDERS:
        for i in range(count):
            flags = "FS" if i % 7 == 0 else ("S" if i % 3 == 0 else "")
            mb.maildir_add(os.path.join(local, folder), mb.make_message(i, folder), flags)
        want[folder] = mb.maildir_messages(os.path.join(local, folder))
        assert len(want[folder]) == count

    # 1. push: folders created on the server, every message and flag uploaded
    conf = str(tmp_path / "mbsyncrc")
    mb.write_config(conf, msrv.host, msrv.imap_port, ALICE, PASSWORDS[ALICE], local,
                    tls="starttls", cafile=msrv.cert_path)
    r = mb.run(conf)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    imap = _imap(msrv)
    for folder, count in FOLDERS:
        got = mb.server_messages(imap, folder)
        assert len(got) == count, folder
        assert got == want[folder], folder

    # 2. changes on the server: flags on ten, five deleted
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    assert imap.store("1:10", "+FLAGS", "(\\Flagged)")[0] == "OK"
    assert imap.store("11:15", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert imap.expunge()[0] == "OK"
    server_inbox = mb.server_messages(imap, "INBOX")
    assert len(server_inbox) == 995
    imap.logout()
    mb.write_config(conf, msrv.host, msrv.imap_port, ALICE, PASSWORDS[ALICE], local)
    r = mb.run(conf)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    assert mb.maildir_messages(os.path.join(local, "INBOX")) == server_inbox

    # 3. a fresh local copy from the server: the same messages and flags
    shutil.rmtree(local)
    for name in os.listdir(str(tmp_path)):
        if name.startswith("mbsyncrc") or name.startswith(".mbsync"):
            os.remove(str(tmp_path / name))
    fresh = str(tmp_path / "fresh")
    mb.write_config(conf, msrv.host, msrv.imap_port, ALICE, PASSWORDS[ALICE], fresh)
    r = mb.run(conf)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    for folder, _ in FOLDERS:
        expect = server_inbox if folder == "INBOX" else want[folder]
        assert mb.maildir_messages(os.path.join(fresh, folder)) == expect, folder
    msrv.assert_serves()
