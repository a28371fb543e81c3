"""The command-line interface: `hermod check` and the admin subcommands.

Most tests need no server: each gets a temp dir with a config file written
by the test and drives `hermod` directly.  The contract (DESIGN.md, README):
every failure is one clear line on stderr and a non-zero exit; argument
errors exit 2; add/del/passwd print nothing on success.
"""

import glob
import os
import shutil
import smtplib
import sqlite3
import subprocess
import tempfile

import pytest

from conftest import ALICE, DELIVERED_RE, make_message, unique

CLI_TIMEOUT = 60.0
SPECIAL_MAILBOXES = ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]


# --------------------------------------------------------------------------
# helpers


class Inst:
    """A temp dir with a config file; runs `hermod` against it."""

    def __init__(self, binary, base):
        self.binary = binary
        self.dir = base
        self.data_dir = os.path.join(base, "data")
        self.config_path = os.path.join(base, "hermod.conf")
        self.write_config("[server]\n"
                          "hostname = mx.example.test\n"
                          "data_dir = %s\n"
                          "\n"
                          "[listen]\n"
                          "smtp = 127.0.0.1:1\n"
                          "\n"
                          "[store]\n"
                          "fsync = no\n" % self.data_dir)

    def write_config(self, text, name="hermod.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run(self, *args, input=None, config=True, env_config=None):
        """hermod ARGS [-c CONFIG]; returns (rc, stdout str, stderr str).
        HERMOD_CONFIG is removed from the environment unless env_config."""
        argv = [self.binary] + [str(a) for a in args]
        if config is True:
            argv += ["-c", self.config_path]
        elif config:
            argv += ["-c", config]
        env = dict(os.environ)
        env.pop("HERMOD_CONFIG", None)
        if env_config is not None:
            env["HERMOD_CONFIG"] = env_config
        p = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CLI_TIMEOUT, env=env)
        return p.returncode, p.stdout.decode("utf-8", "replace"), \
            p.stderr.decode("utf-8", "replace")

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        assert rc == 0, "hermod %s exited %d\nstdout: %r\nstderr: %r" % (
            " ".join(map(str, args)), rc, out, err)
        return out

    def fails(self, *args, rc=None, **kw):
        """Runs a command that must fail with exactly one 'hermod: ' line on
        stderr. Returns that line."""
        code, out, err = self.run(*args, **kw)
        what = "hermod %s" % " ".join(map(str, args))
        assert code != 0, "%s succeeded\nstdout: %r" % (what, out)
        if rc is not None:
            assert code == rc, "%s exited %d, expected %d; stderr %r" % (what, code, rc, err)
        return one_error_line(err, what)

    def add_user(self, addr, pw="pw-" + "x" * 8):
        self.ok("user", "add", addr, "--password-stdin", input=pw + "\n")


def one_error_line(err, what=""):
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), \
        "%s: expected exactly one stderr line, got %r" % (what, err)
    assert lines[0].startswith("hermod: "), "%s: %r" % (what, lines[0])
    assert len(lines[0]) > len("hermod: ") + 3
    return lines[0]


def lines_of(out):
    return [l for l in out.splitlines() if l.strip()]


@pytest.fixture
def inst(hermod_bin):
    d = tempfile.mkdtemp(prefix="hermod-cli-")
    yield Inst(hermod_bin, d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dom(inst):
    """inst with domain example.test."""
    inst.ok("domain", "add", "example.test")
    return inst


# --------------------------------------------------------------------------
# hermod check


def test_check_ok(inst):
    rc, out, err = inst.run("check")
    assert rc == 0, err
    assert err == ""


def test_check_full_example_ok(inst):
    """Every documented key, with good values."""
    inst.write_config(
        "# a comment\n"
        "[server]\n"
        "hostname = mx.example.org\n"
        "data_dir = data\n"
        "log_level = debug\n"
        "[listen]\n"
        "smtp = 127.0.0.1:2525\n"
        "submission =\n"  # needs [tls]; covered in test_tls.py
        "pop3 =\n"
        "[auth]\n"
        "allow_plaintext_on_loopback = yes\n"
        "mechanisms = SCRAM-SHA-256-PLUS, SCRAM-SHA-256 PLAIN LOGIN\n"
        "[limits]\n"
        "max_message_size = 10M\n"
        "max_recipients = 100\n"
        "idle_timeout = 5m\n"
        "data_timeout = 1h\n"
        "shutdown_timeout = 0\n"
        "[store]\n"
        "backend = sqlite\n"
        "fsync = no   ; inline comment\n"
        "workers = 4\n"
        "[delivery]\n"
        "retry_schedule = 5m, 15m, 1h\n"
        "expiry = 5d\n")
    rc, out, err = inst.run("check")
    assert rc == 0, err


def _bad_config_line(inst, text, marker, name):
    """Writes `text`, runs check, asserts exactly one FILE:LINE: line whose
    LINE is the (1-based) line of the first line containing `marker`."""
    path = inst.write_config(text, name)
    want_line = next(i for i, l in enumerate(text.split("\n"), 1) if marker in l)
    rc, out, err = inst.run("check", config=path)
    assert rc != 0, "check accepted a bad config:\n%s" % text
    lines = err.splitlines()
    assert len(lines) == 1, "expected one error line, got %r" % err
    prefix = "%s:%d: " % (path, want_line)
    assert lines[0].startswith(prefix), "expected %r..., got %r" % (prefix, lines[0])
    assert len(lines[0]) > len(prefix) + 3, lines[0]
    return lines[0][len(prefix):]


BASE = "[server]\ndata_dir = /tmp/hermod-nonexistent-data\n\n[listen]\nsmtp = 127.0.0.1:2525\n\n"


def test_check_unknown_key(inst):
    msg = _bad_config_line(inst, BASE + "[limits]\n# c\nmax_recipients = 5\nfrobnicate = 1\n",
                           "frobnicate", "k.conf")
    assert "frobnicate" in msg


def test_check_unknown_key_in_server(inst):
    msg = _bad_config_line(inst, "[server]\n\ndata_dir = /x\nhost_name = a\n", "host_name",
                           "k2.conf")
    assert "host_name" in msg


def test_check_unknown_section(inst):
    msg = _bad_config_line(inst, BASE + "\n[bogus]\nx = 1\n", "[bogus]", "s.conf")
    assert "bogus" in msg


def test_check_bad_size(inst):
    msg = _bad_config_line(inst, BASE + "[limits]\nmax_recipients = 5\nmax_message_size = 12Q\n",
                           "12Q", "size.conf")
    assert "12Q" in msg and "max_message_size" in msg


def test_check_bad_duration(inst):
    msg = _bad_config_line(inst, BASE + "[limits]\n\n\nidle_timeout = 5y\n", "5y", "dur.conf")
    assert "5y" in msg and "idle_timeout" in msg


def test_check_bad_number(inst):
    msg = _bad_config_line(inst, BASE + "[limits]\nmax_recipients = many\n", "many", "num.conf")
    assert "max_recipients" in msg


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                                  "::1:25", "127.0.0.1:port"])
def test_check_bad_listen_address(inst, addr):
    text = "[server]\ndata_dir = /x\n\n[listen]\n# comment\nsmtp = %s\n" % addr
    msg = _bad_config_line(inst, text, "smtp =", "addr.conf")
    assert "smtp" in msg


def test_check_duplicate_key(inst):
    text = "[server]\ndata_dir = /x\n[listen]\nsmtp = 127.0.0.1:25\n\nsmtp = 127.0.0.1:26\n"
    path = inst.write_config(text, "dup.conf")
    rc, out, err = inst.run("check", config=path)
    assert rc != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(path + ":6: "), err


def test_check_missing_data_dir(inst):
    path = inst.write_config("[listen]\nsmtp = 127.0.0.1:2525\n", "nodata.conf")
    rc, out, err = inst.run("check", config=path)
    assert rc != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(path + ": "), lines[0]
    assert "data_dir" in lines[0]


def test_check_missing_file(inst):
    path = os.path.join(inst.dir, "no-such.conf")
    rc, out, err = inst.run("check", config=path)
    assert rc != 0
    lines = err.splitlines()
    assert len(lines) == 1 and path in lines[0], err


def test_serve_refuses_bad_config(inst):
    """serve validates like check: one line naming file and line, non-zero."""
    text = BASE + "[limits]\nmax_recipients = 5\nbogus_key = 1\n"
    path = inst.write_config(text, "serve-bad.conf")
    want = text.split("\n").index("bogus_key = 1") + 1
    rc, out, err = inst.run("serve", config=path)
    assert rc != 0
    assert ("%s:%d: " % (path, want)) in err, err
    assert len(err.splitlines()) == 1, err


# --------------------------------------------------------------------------
# domains


def test_domain_add_list_del(inst):
    assert lines_of(inst.ok("domain", "list")) == []
    assert inst.ok("domain", "add", "example.org") == ""
    inst.ok("domain", "add", "Other.Example")
    got = lines_of(inst.ok("domain", "list"))
    assert sorted(got) == ["example.org", "other.example"]
    assert inst.ok("domain", "del", "example.org") == ""
    assert lines_of(inst.ok("domain", "list")) == ["other.example"]


def test_domain_add_twice_fails(inst):
    inst.ok("domain", "add", "example.org")
    line = inst.fails("domain", "add", "example.org")
    assert "example.org" in line
    line = inst.fails("domain", "add", "EXAMPLE.org")
    assert lines_of(inst.ok("domain", "list")) == ["example.org"]


def test_domain_del_unknown_fails(inst):
    line = inst.fails("domain", "del", "nowhere.example")
    assert "nowhere.example" in line


def test_domain_del_with_accounts_refused(dom):
    dom.add_user("a@example.test")
    line = dom.fails("domain", "del", "example.test")
    assert "example.test" in line
    assert lines_of(dom.ok("domain", "list")) == ["example.test"]
    assert lines_of(dom.ok("user", "list")) == ["a@example.test"]
    # once the account is gone, the domain can go
    dom.ok("user", "del", "a@example.test")
    dom.ok("domain", "del", "example.test")
    assert lines_of(dom.ok("domain", "list")) == []


def test_domain_del_with_alias_refused(dom):
    dom.add_user("a@example.test")
    dom.ok("domain", "add", "other.test")
    dom.ok("alias", "add", "@other.test", "a@example.test")
    dom.fails("domain", "del", "other.test")
    assert "other.test" in lines_of(dom.ok("domain", "list"))


@pytest.mark.parametrize("bad", ["exa mple.org", "-bad.org", "a..b", "x@y.org"])
def test_domain_bad_syntax(inst, bad):
    line = inst.fails("domain", "add", bad, rc=2)
    assert lines_of(inst.ok("domain", "list")) == []


def test_domain_missing_argument(inst):
    inst.fails("domain", "add", rc=2)
    inst.fails("domain", rc=2)
    inst.fails("domain", "frob", "x.org", rc=2)


# --------------------------------------------------------------------------
# users


def test_user_add_list_passwd_del(dom):
    rc, out, err = dom.run("user", "add", "a@example.test", "--password-stdin",
                           input="first-pw\n")
    assert rc == 0, err
    assert out == ""
    dom.add_user("b@example.test")
    assert sorted(lines_of(dom.ok("user", "list"))) == ["a@example.test", "b@example.test"]
    db = _db_hashes(dom.data_dir)
    old = db["a@example.test"]
    assert dom.ok("user", "passwd", "a@example.test", "--password-stdin",
                  input="second-pw\n") == ""
    new = _db_hashes(dom.data_dir)["a@example.test"]
    assert new != old and new.startswith("$y$")
    assert dom.ok("user", "del", "a@example.test") == ""
    assert lines_of(dom.ok("user", "list")) == ["b@example.test"]
    # gone: del and passwd fail with one line
    assert "a@example.test" in dom.fails("user", "del", "a@example.test")
    dom.fails("user", "passwd", "a@example.test", "--password-stdin", input="x\n")


def test_user_add_twice_fails(dom):
    dom.add_user("a@example.test")
    line = dom.fails("user", "add", "a@example.test", "--password-stdin", input="pw\n")
    assert "a@example.test" in line


def test_user_add_domain_missing(dom):
    line = dom.fails("user", "add", "a@nowhere.example", "--password-stdin", input="pw\n")
    assert "nowhere.example" in line
    assert lines_of(dom.ok("user", "list")) == []


@pytest.mark.parametrize("bad", ["a@@example.test", "no-at-sign", "a b@example.test",
                                 "@example.test", "a@", "a@[127.0.0.1]"])
def test_user_add_bad_address(dom, bad):
    line = dom.fails("user", "add", bad, "--password-stdin", input="pw\n", rc=2)
    assert lines_of(dom.ok("user", "list")) == []


def test_user_add_empty_password_refused(dom):
    dom.fails("user", "add", "a@example.test", "--password-stdin", input="\n")
    dom.fails("user", "add", "a@example.test", "--password-stdin", input="")
    assert lines_of(dom.ok("user", "list")) == []


def test_user_add_without_tty_or_stdin_flag(dom):
    """No --password-stdin and no terminal: a clear error, not a hang."""
    p = subprocess.run([dom.binary, "user", "add", "a@example.test", "-c", dom.config_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=CLI_TIMEOUT, start_new_session=True)
    assert p.returncode != 0
    one_error_line(p.stderr.decode())


def test_user_password_stdin_on_del_is_usage_error(dom):
    dom.add_user("a@example.test")
    dom.fails("user", "del", "a@example.test", "--password-stdin", rc=2)


def _db_hashes(data_dir):
    con = sqlite3.connect(os.path.join(data_dir, "hermod.db"))
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            cols = [r[1] for r in con.execute("PRAGMA table_info(%s)" % t)]
            addr = [c for c in cols if c in ("address", "name", "email", "login")]
            hashcol = [c for c in cols if "hash" in c or "password" in c]
            if addr and hashcol:
                return {a: h for a, h in con.execute(
                    "SELECT %s, %s FROM %s" % (addr[0], hashcol[0], t))}
    finally:
        con.close()
    raise AssertionError("no accounts table with a password hash column found")


def test_password_stored_hashed(dom):
    pw = "Plaintext-" + unique("pw")
    dom.ok("user", "add", "a@example.test", "--password-stdin", input=pw + "\n")
    blob = b""
    for f in glob.glob(os.path.join(dom.data_dir, "hermod.db*")):
        with open(f, "rb") as fh:
            blob += fh.read()
    assert blob, "no database files under %s" % dom.data_dir
    assert pw.encode() not in blob, "plaintext password found in the database files"
    assert b"$y$" in blob, "no yescrypt hash in the database files"
    h = _db_hashes(dom.data_dir)["a@example.test"]
    assert h.startswith("$y$") and pw not in h
    # passwd stores a fresh hash, the new plaintext is nowhere either
    pw2 = "Second-" + unique("pw")
    dom.ok("user", "passwd", "a@example.test", "--password-stdin", input=pw2 + "\n")
    blob = b""
    for f in glob.glob(os.path.join(dom.data_dir, "hermod.db*")):
        with open(f, "rb") as fh:
            blob += fh.read()
    assert pw2.encode() not in blob
    assert _db_hashes(dom.data_dir)["a@example.test"].startswith("$y$")


def test_same_password_different_salt(dom):
    dom.add_user("a@example.test", "same-password")
    dom.add_user("b@example.test", "same-password")
    h = _db_hashes(dom.data_dir)
    assert h["a@example.test"] != h["b@example.test"]


# --------------------------------------------------------------------------
# aliases


def test_alias_add_list_del(dom):
    dom.add_user("a@example.test")
    dom.add_user("b@example.test")
    assert dom.ok("alias", "add", "info@example.test", "a@example.test") == ""
    dom.ok("alias", "add", "info@example.test", "b@example.test")
    dom.ok("alias", "add", "@example.test", "b@example.test")
    got = sorted(lines_of(dom.ok("alias", "list")))
    assert got == sorted(["info@example.test a@example.test",
                          "info@example.test b@example.test",
                          "@example.test b@example.test"])
    # del with a target removes only that pair
    assert dom.ok("alias", "del", "info@example.test", "b@example.test") == ""
    got = sorted(lines_of(dom.ok("alias", "list")))
    assert got == sorted(["info@example.test a@example.test", "@example.test b@example.test"])
    dom.ok("alias", "del", "@example.test")
    assert lines_of(dom.ok("alias", "list")) == ["info@example.test a@example.test"]
    dom.ok("alias", "del", "info@example.test")
    assert lines_of(dom.ok("alias", "list")) == []
    dom.fails("alias", "del", "info@example.test")
    dom.fails("alias", "del", "@example.test", "b@example.test")


def test_alias_add_twice_fails(dom):
    dom.add_user("a@example.test")
    dom.ok("alias", "add", "info@example.test", "a@example.test")
    dom.fails("alias", "add", "info@example.test", "a@example.test")
    assert lines_of(dom.ok("alias", "list")) == ["info@example.test a@example.test"]


def test_alias_nonlocal_source_refused(dom):
    dom.add_user("a@example.test")
    line = dom.fails("alias", "add", "x@other.example", "a@example.test")
    assert "other.example" in line
    dom.fails("alias", "add", "@other.example", "a@example.test")
    assert lines_of(dom.ok("alias", "list")) == []


@pytest.mark.parametrize("src,dst", [("bad@@example.test", "a@example.test"),
                                     ("@", "a@example.test"),
                                     ("@bad..domain", "a@example.test"),
                                     ("info@example.test", "not-an-address")])
def test_alias_bad_syntax(dom, src, dst):
    dom.fails("alias", "add", src, dst, rc=2)


def test_alias_missing_target_is_usage_error(dom):
    dom.fails("alias", "add", "info@example.test", rc=2)


# --------------------------------------------------------------------------
# mailboxes and messages


def test_mailbox_list_new_account(dom):
    dom.add_user("a@example.test")
    out = dom.ok("mailbox", "list", "a@example.test")
    rows = lines_of(out)
    assert sorted(rows) == sorted("%s 0 0 0" % n for n in SPECIAL_MAILBOXES), out
    assert len(rows) == 6


def test_mailbox_list_unknown_account(dom):
    line = dom.fails("mailbox", "list", "nobody@example.test")
    assert "nobody@example.test" in line


def test_message_list_empty(dom):
    dom.add_user("a@example.test")
    assert dom.ok("message", "list", "a@example.test") == ""
    assert dom.ok("message", "list", "a@example.test", "Archive") == ""


def test_message_list_unknown_account(dom):
    assert "nobody@example.test" in dom.fails("message", "list", "nobody@example.test")


def test_message_list_unknown_mailbox(dom):
    dom.add_user("a@example.test")
    assert "Nope" in dom.fails("message", "list", "a@example.test", "Nope")


def test_message_show_errors(dom):
    dom.add_user("a@example.test")
    dom.fails("message", "show", "nobody@example.test", "INBOX", "1")
    dom.fails("message", "show", "a@example.test", "Nope", "1")
    assert "7" in dom.fails("message", "show", "a@example.test", "INBOX", "7")
    for bad in ("x", "0", "-1", "1.5", "99999999999", ""):
        dom.fails("message", "show", "a@example.test", "INBOX", bad, rc=2)
    dom.fails("message", "show", "a@example.test", "INBOX", rc=2)
    dom.fails("message", "list", rc=2)


# --------------------------------------------------------------------------
# general argument handling


def _global(inst, *args, input=None, form="-c"):
    """hermod -c CONFIG ARGS (the config before the subcommand)."""
    pre = ["--config=" + inst.config_path] if form == "--config=" else [form, inst.config_path]
    return inst.run(*(pre + list(args)), input=input, config=False)


def _global_ok(inst, *args, **kw):
    rc, out, err = _global(inst, *args, **kw)
    assert rc == 0, "hermod -c FILE %s exited %d: %r" % (" ".join(args), rc, err)
    assert err == "", err
    return out


@pytest.mark.parametrize("form", ["-c", "--config", "--config="])
def test_global_config_before_every_subcommand(inst, form):
    """`hermod -c FILE SUBCOMMAND ...`: the global option works for every
    subcommand (no HERMOD_CONFIG in the environment, no -c after)."""
    g = lambda *a, **kw: _global_ok(inst, *a, form=form, **kw)  # noqa: E731
    assert g("check") == "%s: ok\n" % inst.config_path
    assert g("domain", "add", "example.test") == ""
    assert g("domain", "list") == "example.test\n"
    assert g("user", "add", "a@example.test", "--password-stdin", input="pw-aaaaaaaa\n") == ""
    assert g("user", "passwd", "a@example.test", "--password-stdin",
             input="pw-bbbbbbbb\n") == ""
    assert g("user", "list") == "a@example.test\n"
    assert g("alias", "add", "b@example.test", "a@example.test") == ""
    assert g("alias", "list") == "b@example.test a@example.test\n"
    assert lines_of(g("mailbox", "list", "a@example.test")) == [
        "%s 0 0 0" % m for m in SPECIAL_MAILBOXES]
    assert g("message", "list", "a@example.test") == ""
    assert g("queue", "list") == ""
    assert g("alias", "del", "b@example.test") == ""
    assert g("user", "del", "a@example.test") == ""
    assert g("domain", "del", "example.test") == ""
    assert g("domain", "list") == ""
    assert g("version").startswith("hermod ")
    # message show reaches the store of that config (and fails there: no account)
    rc, out, err = _global(inst, "message", "show", "nobody@example.test", "INBOX", "1",
                           form=form)
    assert rc == 1, (rc, err)
    one_error_line(err)


def test_global_config_serve_uses_it(inst):
    """serve reads the config given before it: a missing file is named."""
    path = os.path.join(inst.dir, "missing.conf")
    rc, out, err = inst.run("-c", path, "serve", config=False)
    assert rc == 1, (rc, err)
    assert path in err, err


def test_global_config_errors(inst):
    rc, out, err = inst.run("-c", config=False)
    assert rc == 2
    assert one_error_line(err) == "hermod: option -c needs a file"
    rc, out, err = inst.run("-x", "domain", "list", config=False)
    assert rc == 2
    assert one_error_line(err) == "hermod: unknown option '-x' (try 'hermod help')"
    rc, out, err = inst.run("-c", inst.config_path, config=False)
    assert rc == 2
    assert "usage" in err.lower()


def test_global_config_and_subcommand_config(inst):
    """Both given: the one after the subcommand wins."""
    other = Inst(inst.binary, tempfile.mkdtemp(prefix="hermod-cli3-"))
    try:
        other.ok("domain", "add", "other.example")
        inst.ok("domain", "add", "inst.example")
        rc, out, err = inst.run("-c", inst.config_path, "domain", "list",
                                "-c", other.config_path, config=False)
        assert rc == 0, err
        assert lines_of(out) == ["other.example"]
    finally:
        shutil.rmtree(other.dir, ignore_errors=True)


def test_check_bad_mechanisms(inst):
    msg = _bad_config_line(inst, BASE + "[auth]\nmechanisms = PLAIN, CRAM-MD5\n",
                           "CRAM-MD5", "mech.conf")
    assert msg == ("bad mechanisms: unknown SASL mechanism 'CRAM-MD5' (expected "
                   "SCRAM-SHA-256-PLUS, SCRAM-SHA-256, PLAIN, LOGIN)"), msg
    msg = _bad_config_line(inst, BASE + "[auth]\nmechanisms =\n", "mechanisms", "mech2.conf")
    assert msg == "bad mechanisms: no SASL mechanism given", msg


def test_unknown_subcommand(inst):
    rc, out, err = inst.run("frobnicate", config=False)
    assert rc == 2
    one_error_line(err)
    rc, out, err = inst.run("frobnicate")
    assert rc == 2
    one_error_line(err)


def test_no_arguments_prints_usage(hermod_bin):
    p = subprocess.run([hermod_bin], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=CLI_TIMEOUT)
    assert p.returncode == 2
    assert b"usage" in (p.stderr + p.stdout).lower()


def test_unknown_option(dom):
    dom.fails("domain", "list", "--frob", rc=2)


def test_missing_config_file(inst):
    path = os.path.join(inst.dir, "missing.conf")
    line = inst.fails("domain", "list", config=path)
    assert path in line


def test_hermod_config_env(inst):
    inst.ok("domain", "add", "env.example", config=False, env_config=inst.config_path)
    assert lines_of(inst.ok("domain", "list")) == ["env.example"]
    assert lines_of(inst.ok("domain", "list", config=False,
                            env_config=inst.config_path)) == ["env.example"]
    rc, out, err = inst.run("check", config=False, env_config=inst.config_path)
    assert rc == 0, err
    # -c wins over the environment
    other = Inst(inst.binary, tempfile.mkdtemp(prefix="hermod-cli2-"))
    try:
        assert lines_of(inst.ok("domain", "list", config=other.config_path,
                                env_config=inst.config_path)) == []
    finally:
        shutil.rmtree(other.dir, ignore_errors=True)
    # an env var naming a bad file is used (and fails) rather than ignored
    bad = os.path.join(inst.dir, "nope.conf")
    rc, out, err = inst.run("check", config=False, env_config=bad)
    assert rc != 0 and bad in err


# --------------------------------------------------------------------------
# with a running server


def test_cli_while_server_runs(make_server):
    srv = make_server()
    addr = "new-%s@example.test" % unique("u")[2:]
    srv.cli("user", "add", addr, "--password-stdin", input="pw-new\n")
    assert srv.mailboxes(addr)["INBOX"] == (0, 0, 0)
    subject = unique("cli-live")
    with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail("sender@remote.test", [addr], make_message(subject, to=addr))
    rows = srv.messages(addr)
    assert [r["subject"] for r in rows] == [subject]
    assert rows[0]["flags"] == []
    raw = srv.show(addr, "INBOX", rows[0]["uid"])
    assert ("Subject: %s" % subject).encode() in raw
    assert srv.mailboxes(addr)["INBOX"][0] == 1
    # deleting an alias / adding one live works too
    srv.cli("alias", "add", "live@example.test", addr)
    subject2 = unique("cli-alias")
    reply = srv.deliver(["live@example.test"], make_message(subject2))
    assert DELIVERED_RE.match(reply.line), reply
    assert len(srv.find(addr, subject2)) == 1
    assert srv.alive()
