"""The DNS resolver (src/dns/) through `hermod dns lookup TYPE NAME`, against
a dnsmasq on a loopback port: every record type hermod asks for, negative
answers, DNSSEC state, bad input, a dead server. The output is exact:
records in the order of the answer, then "; STATUS SECURITY ttl N"."""

import os
import subprocess
import tempfile

import pytest

from dnsfix import Dnsmasq, free_udp_tcp_port

RECORDS = [
    "--mx-host=example.test,mx1.example.test,10",
    "--mx-host=example.test,mx2.example.test,20",
    "--txt-record=example.test,v=spf1 ip4:127.0.0.2 -all",
    # two character-strings in one record: joined without a separator
    "--txt-record=split.example.test,v=DKIM1; k=ed25519; ,p=abc",
    "--host-record=mx1.example.test,127.0.0.2,::2",
    "--ptr-record=2.0.0.127.in-addr.arpa,mx1.example.test",
    # RFC 7505 null MX: preference 0, the root ("00 00" + root label "00")
    "--dns-rr=nullmx.example.test,15,000000",
    # TLSA 3 1 1 <sha-256>
    "--dns-rr=_25._tcp.mx1.example.test,52,030101" + "ab" * 32,
    # a name under a TXT-only domain: NODATA for MX
    "--txt-record=textonly.example.test,hello",
]


@pytest.fixture(scope="module")
def dns():
    d = Dnsmasq(RECORDS)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def conf_dir():
    d = tempfile.mkdtemp(prefix="hermod-dnscli-")
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def write_conf(conf_dir, name, dns_section):
    path = os.path.join(conf_dir, name)
    with open(path, "w") as f:
        f.write("[server]\nhostname = mx.example.test\ndata_dir = %s\n[dns]\n%s"
                % (os.path.join(conf_dir, "data"), dns_section))
    return path


def lookup(hermod_bin, conf, rtype, name, timeout=60):
    return subprocess.run([hermod_bin, "dns", "lookup", rtype, name, "-c", conf],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def conf(dns, conf_dir):
    return write_conf(conf_dir, "fwd.conf", "resolver = %s\n" % dns.address)


@pytest.mark.parametrize("rtype,name,out", [
    ("MX", "example.test", None),  # order of the answer is dnsmasq's: checked below
    ("TXT", "example.test", 'TXT "v=spf1 ip4:127.0.0.2 -all"\n; ok insecure ttl 300\n'),
    ("TXT", "split.example.test", 'TXT "v=DKIM1; k=ed25519; p=abc"\n; ok insecure ttl 300\n'),
    ("A", "mx1.example.test", "A 127.0.0.2\n; ok insecure ttl 300\n"),
    ("AAAA", "mx1.example.test", "AAAA ::2\n; ok insecure ttl 300\n"),
    ("a", "MX1.Example.Test.", "A 127.0.0.2\n; ok insecure ttl 300\n"),
    ("PTR", "2.0.0.127.in-addr.arpa", "PTR mx1.example.test\n; ok insecure ttl 300\n"),
    ("MX", "nullmx.example.test", "MX 0 .\n; ok insecure ttl 300\n"),
    ("TLSA", "_25._tcp.mx1.example.test",
     "TLSA 3 1 1 " + "ab" * 32 + "\n; ok insecure ttl 300\n"),
])
def test_record_types(hermod_bin, conf, rtype, name, out):
    r = lookup(hermod_bin, conf, rtype, name)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    if out is None:
        lines = r.stdout.splitlines()
        assert sorted(lines[:-1]) == ["MX 10 mx1.example.test", "MX 20 mx2.example.test"]
        assert lines[-1] == "; ok insecure ttl 300"
    else:
        assert r.stdout == out


def test_negative_answers(hermod_bin, conf):
    # NXDOMAIN: dnsmasq's --address=/#/ answers so for every other name
    r = lookup(hermod_bin, conf, "MX", "nosuch.example.test")
    # no SOA in dnsmasq's answer: not to be kept (RFC 2308 5)
    assert (r.returncode, r.stdout) == (0, "; nxdomain insecure ttl 0\n")
    # the name exists (TXT), no MX: NODATA
    r = lookup(hermod_bin, conf, "MX", "textonly.example.test")
    assert r.returncode == 0
    assert r.stdout == "; nodata insecure ttl 0\n"


def test_forwarder_sees_private_names(hermod_bin, conf, dns):
    """With a forwarder, libunbound's built-in answers for test. and
    127.in-addr.arpa are off: the forwarder is asked."""
    before = len(dns.queries())
    r = lookup(hermod_bin, conf, "PTR", "2.0.0.127.in-addr.arpa")
    assert r.stdout == "PTR mx1.example.test\n; ok insecure ttl 300\n"
    assert any("2.0.0.127.in-addr.arpa" in l for l in dns.queries()[before:])


@pytest.mark.parametrize("args,err", [
    (["MX", "bad..name"], "hermod: 'bad..name' is not a valid domain name\n"),
    (["MX", "a" * 64 + ".test"], "hermod: '%s' is not a valid domain name\n" % ("a" * 64 + ".test")),
    (["SOA", "example.test"],
     "hermod: unknown record type 'SOA' (A, AAAA, MX, TXT, PTR, TLSA)\n"),
])
def test_bad_arguments(hermod_bin, conf, args, err):
    r = subprocess.run([hermod_bin, "dns", "lookup"] + args + ["-c", conf],
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", err)


def test_usage(hermod_bin, conf):
    r = subprocess.run([hermod_bin, "dns", "lookup", "MX", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr == "hermod: usage: hermod dns lookup TYPE NAME [-c FILE]\n"


def test_validation_with_forwarder_that_strips_dnssec(hermod_bin, dns, conf_dir):
    """trust_anchor set with a forwarder that serves no DNSSEC records (dnsmasq):
    every answer is bogus, and is not used (docs/dns.md: why validation is off
    with a forwarder unless trust_anchor is set)."""
    c = write_conf(conf_dir, "ta.conf", "resolver = %s\ntrust_anchor = /usr/share/dns/root.key\n"
                   % dns.address)
    r = lookup(hermod_bin, c, "A", "mx1.example.test")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("; tempfail bogus ttl "), r.stdout


def test_trust_anchor_missing(hermod_bin, dns, conf_dir):
    c = write_conf(conf_dir, "ta2.conf", "resolver = %s\ntrust_anchor = %s/none.key\n"
                   % (dns.address, conf_dir))
    r = lookup(hermod_bin, c, "A", "mx1.example.test")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "hermod: trust anchor %s/none.key: No such file or directory\n" % conf_dir


def test_dead_server(hermod_bin, conf_dir):
    """Nothing listens: a temporary failure, after libunbound's retries."""
    c = write_conf(conf_dir, "dead.conf", "resolver = 127.0.0.1:%d\n" % free_udp_tcp_port())
    r = lookup(hermod_bin, c, "A", "mx1.example.test", timeout=90)
    assert (r.returncode, r.stdout) == (1, "; tempfail insecure ttl 0 (SERVFAIL)\n")


def test_config_values(hermod_bin, conf_dir):
    ok = write_conf(conf_dir, "rec.conf", "resolver = recursive\n")
    r = subprocess.run([hermod_bin, "check", "-c", ok], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    bad = write_conf(conf_dir, "bad.conf", "resolver = dns.example.test:53\n")
    r = subprocess.run([hermod_bin, "check", "-c", bad], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip().endswith(
        "bad address 'dns.example.test:53' for resolver (expected IPv4:port or "
        "[IPv6]:port, port 1-65535, or recursive)")
