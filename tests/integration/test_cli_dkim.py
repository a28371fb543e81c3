"""`hermod dkim keygen|list`: the key files under <data_dir>/dkim, the zone-file
lines printed, refusals and exit codes (the signatures themselves are checked
by tests/unit/test_dkim.c against dkimpy)."""

import base64
import os
import re
import stat
import time

import pytest

from test_cli import dom, inst, lines_of  # noqa: F401  (dom, inst: fixtures)

ZONE_RE = re.compile(r'^(\S+)\._domainkey\.(\S+)\. IN TXT((?: "[^"]{1,255}")+)$')


def txt_value(line):
    """The TXT value of a zone-file line: its strings joined."""
    m = ZONE_RE.match(line)
    assert m, line
    return m.group(1), m.group(2), "".join(re.findall(r'"([^"]*)"', m.group(3)))


def month():
    return time.strftime("%Y%m", time.gmtime())


def test_keygen_both_by_default(dom):
    out = dom.ok("dkim", "keygen", "Example.TEST")
    lines = lines_of(out)
    assert len(lines) == 2
    sel_r, d_r, v_r = txt_value(lines[0])
    sel_e, d_e, v_e = txt_value(lines[1])
    assert d_r == d_e == "example.test"
    if (sel_r, sel_e) != (month() + "r", month() + "e"):  # a month may have turned
        assert sel_r[-1] == "r" and sel_e[-1] == "e" and sel_r[:-1] == sel_e[:-1]
    assert v_r.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")
    assert len(v_r) > 255 and '" "' in lines[0]  # split into strings
    assert v_e.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(v_e.split("p=", 1)[1], validate=True)) == 32

    kdir = os.path.join(dom.data_dir, "dkim")
    assert stat.S_IMODE(os.stat(kdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(kdir, "example.test")).st_mode) == 0o700
    for sel in (sel_r, sel_e):
        path = os.path.join(kdir, "example.test", sel + ".pem")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            assert f.read().startswith("-----BEGIN PRIVATE KEY-----\n")

    # list: the same records, "DOMAIN SELECTOR ALGORITHM <zone line>"
    listed = lines_of(dom.ok("dkim", "list"))
    assert listed == sorted([
        "example.test %s ed25519 %s" % (sel_e, lines[1]),
        "example.test %s rsa %s" % (sel_r, lines[0]),
    ], key=lambda l: l.split()[1])

    # a second run refuses (the keys exist) and makes nothing
    err = dom.fails("dkim", "keygen", "example.test", rc=1)
    assert "already exists" in err
    assert lines_of(dom.ok("dkim", "list")) == listed


def test_keygen_one_algorithm(dom):
    out = dom.ok("dkim", "keygen", "example.test", "--algorithm", "ed25519",
                 "--selector", "Mail2")
    sel, d, v = txt_value(lines_of(out)[0])
    assert (sel, d) == ("mail2", "example.test")
    assert v.startswith("v=DKIM1; k=ed25519; p=")
    out = dom.ok("dkim", "keygen", "example.test", "--algorithm=rsa")
    sel, d, v = txt_value(lines_of(out)[0])
    assert sel.endswith("r") and v.startswith("v=DKIM1; k=rsa; ")
    err = dom.fails("dkim", "keygen", "example.test", "--algorithm", "rsa",
                    "--selector", "mail2", rc=1)
    assert err == "hermod: DKIM key mail2 for example.test already exists"
    # sorted by selector: digits before letters
    assert [l.split()[:3] for l in lines_of(dom.ok("dkim", "list"))] == [
        ["example.test", sel, "rsa"], ["example.test", "mail2", "ed25519"]]


def test_keygen_not_a_local_domain(dom):
    err = dom.fails("dkim", "keygen", "other.test", rc=1)
    assert err == "hermod: other.test is not a local domain (see hermod domain add)"
    assert not os.path.exists(os.path.join(dom.data_dir, "dkim", "other.test"))


@pytest.mark.parametrize("args", [
    ["dkim"],
    ["dkim", "keygen"],
    ["dkim", "keygen", "a.test", "b.test"],
    ["dkim", "keygen", "exa mple.test"],
    ["dkim", "keygen", "example.test", "--algorithm", "dsa"],
    ["dkim", "keygen", "example.test", "--selector", "s1"],
    ["dkim", "keygen", "example.test", "--algorithm", "rsa", "--selector", "../x"],
    ["dkim", "keygen", "example.test", "--algorithm"],
    ["dkim", "list", "example.test"],
    ["dkim", "list", "--algorithm", "rsa"],
    ["dkim", "rotate"],
])
def test_usage_errors(inst, args):
    # exit 2 before the config is read
    inst.fails(*args, rc=2, config=os.path.join(inst.dir, "missing.conf"))


def test_list_empty_and_broken_key(dom):
    assert dom.ok("dkim", "list") == ""
    dom.ok("dkim", "keygen", "example.test", "--algorithm", "ed25519", "--selector", "s")
    with open(os.path.join(dom.data_dir, "dkim", "example.test", "bad.pem"), "w") as f:
        f.write("not a key\n")
    err = dom.fails("dkim", "list", rc=1)
    assert "bad.pem" in err
