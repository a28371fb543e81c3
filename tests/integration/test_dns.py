"""The DNS resolver (src/dns/) through `hermod dns lookup TYPE NAME`, against
a dnsmasq on a loopback port: every record type hermod asks for, negative
answers, DNSSEC state, bad input, a dead server; and against a DNSSEC-signed
zone (dnssecfix: nsd + unbound): secure, bogus and insecure answers, and
authenticated denial. The output is exact: records in the order of the
answer, then "; STATUS SECURITY ttl N"."""

import os
import subprocess
import tempfile

import pytest

import dnssecfix
from dnsfix import Dnsmasq, free_udp_tcp_port
from dnssecfix import SignedZone, tlsa_rdata

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


# --- a DNSSEC-signed zone (dnssecfix): nsd serving dane.test, unbound in front

# a TLSA record set whose signature the fixture breaks (bogus), next to an
# intact address at the same host
BAD_TLSA = "3 1 1 " + "cd" * 32


@pytest.fixture(scope="module")
def mx_cert(make_cert):
    return make_cert("mx.dane.test")


@pytest.fixture(scope="module")
def signed(mx_cert):
    why = dnssecfix.available()
    if why is not None:
        pytest.skip(why)
    z = SignedZone("dane.test", [
        ("mx", "A", "127.0.0.2"),
        ("@", "MX", "10 mx.dane.test."),
        ("_25._tcp.mx", "TLSA", tlsa_rdata(mx_cert)),
        ("bad", "A", "127.0.0.3"),
        ("_25._tcp.bad", "TLSA", BAD_TLSA),
    ], bogus=["_25._tcp.bad"])
    yield z
    z.stop()


@pytest.fixture(scope="module")
def signed_conf(signed, conf_dir):
    return write_conf(conf_dir, "signed.conf", "resolver = %s\ntrust_anchor = %s\n"
                      % (signed.resolver, signed.trust_anchor))


def test_tlsa_rdata(mx_cert):
    """The SPKI digest is the one openssl computes."""
    pub = subprocess.run(["openssl", "x509", "-in", mx_cert.cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    import hashlib
    assert tlsa_rdata(mx_cert) == "3 1 1 " + hashlib.sha256(der).hexdigest()
    assert tlsa_rdata(mx_cert.cert, 3, 0, 1) == "3 0 1 " + hashlib.sha256(mx_cert.der).hexdigest()
    assert tlsa_rdata(mx_cert, 2, 0, 0) == "2 0 0 " + mx_cert.der.hex()


@pytest.mark.parametrize("rtype,name,records", [
    ("A", "mx.dane.test", ["A 127.0.0.2"]),
    ("MX", "dane.test", ["MX 10 mx.dane.test"]),
    ("TLSA", "_25._tcp.mx.dane.test", None),  # the certificate's: filled in below
    # the address next to the bogus TLSA set is fine
    ("A", "bad.dane.test", ["A 127.0.0.3"]),
])
def test_signed_secure(hermod_bin, signed_conf, mx_cert, rtype, name, records):
    if records is None:
        records = ["TLSA " + tlsa_rdata(mx_cert)]
    r = lookup(hermod_bin, signed_conf, rtype, name)
    assert (r.returncode, r.stdout, r.stderr) == (
        0, "".join(l + "\n" for l in records) + "; ok secure ttl 300\n", "")


def test_signed_bogus(hermod_bin, signed_conf):
    """A record set whose signature does not verify: bogus, no records, a
    temporary failure (docs/dns.md; RFC 4035 5.5), libunbound's reason."""
    r = lookup(hermod_bin, signed_conf, "TLSA", "_25._tcp.bad.dane.test")
    assert (r.returncode, r.stderr) == (1, "")
    assert r.stdout == (
        "; tempfail bogus ttl 60 (validation failure <_25._tcp.bad.dane.test. TLSA IN>: "
        "ECDSA signature verification failed from 127.0.0.1)\n")


def test_signed_denial(hermod_bin, signed_conf):
    """Authenticated denial of existence (NSEC): NXDOMAIN and NODATA, secure,
    with the SOA's negative TTL."""
    r = lookup(hermod_bin, signed_conf, "A", "nosuch.dane.test")
    assert (r.returncode, r.stdout, r.stderr) == (0, "; nxdomain secure ttl 300\n", "")
    r = lookup(hermod_bin, signed_conf, "TLSA", "_25._tcp.nosuch.dane.test")
    assert (r.returncode, r.stdout, r.stderr) == (0, "; nxdomain secure ttl 300\n", "")
    r = lookup(hermod_bin, signed_conf, "TXT", "mx.dane.test")
    assert (r.returncode, r.stdout, r.stderr) == (0, "; nodata secure ttl 300\n", "")


def test_signed_dnskey_anchor(hermod_bin, signed, conf_dir):
    """The zone's DNSKEY records work as the trust anchor as well as its DS."""
    c = write_conf(conf_dir, "signed-dnskey.conf", "resolver = %s\ntrust_anchor = %s\n"
                   % (signed.resolver, signed.dnskey))
    r = lookup(hermod_bin, c, "A", "mx.dane.test")
    assert (r.returncode, r.stdout) == (0, "A 127.0.0.2\n; ok secure ttl 300\n")


def test_signed_without_trust_anchor(hermod_bin, signed, conf_dir, mx_cert):
    """The same zone through the same forwarder, no trust_anchor: nothing is
    validated, every answer is insecure, the broken signature unnoticed."""
    c = write_conf(conf_dir, "signed-nota.conf", "resolver = %s\n" % signed.resolver)
    for rtype, name, out in [
            ("A", "mx.dane.test", "A 127.0.0.2\n; ok insecure ttl 300\n"),
            ("MX", "dane.test", "MX 10 mx.dane.test\n; ok insecure ttl 300\n"),
            ("TLSA", "_25._tcp.mx.dane.test",
             "TLSA %s\n; ok insecure ttl 300\n" % tlsa_rdata(mx_cert)),
            # unbound (validating in front) found it bogus, passes it on and
            # keeps it for its val-bogus-ttl: 60 s
            ("TLSA", "_25._tcp.bad.dane.test", "TLSA %s\n; ok insecure ttl 60\n" % BAD_TLSA),
            ("A", "nosuch.dane.test", "; nxdomain insecure ttl 300\n")]:
        r = lookup(hermod_bin, c, rtype, name)
        assert (r.returncode, r.stdout, r.stderr) == (0, out, ""), (rtype, name)


def test_signed_zone_fixture(hermod_bin, conf_dir):
    """Another zone name (outside .test), bogus=True; names outside the zone
    are NXDOMAIN from unbound (nothing asked beyond loopback); stop() leaves
    no process behind."""
    why = dnssecfix.available()
    if why is not None:
        pytest.skip(why)
    with SignedZone("signed.example", [("www", "A", "127.0.0.9")], bogus=True) as z:
        assert z.bogus_name == "bogus.signed.example"
        reapers = [p.pid for _, p in z._procs]
        daemons = [pid for pid in _all_pids() if _ppid(pid) in reapers]
        assert len(daemons) == 2
        c = write_conf(conf_dir, "signed2.conf", "resolver = %s\ntrust_anchor = %s\n"
                       % (z.resolver, z.trust_anchor))
        r = lookup(hermod_bin, c, "A", "www.signed.example")
        assert (r.returncode, r.stdout) == (0, "A 127.0.0.9\n; ok secure ttl 300\n")
        r = lookup(hermod_bin, c, "A", z.bogus_name)
        assert (r.returncode, r.stdout) == (1, (
            "; tempfail bogus ttl 60 (validation failure <bogus.signed.example. A IN>: "
            "ECDSA signature verification failed from 127.0.0.1)\n"))
        r = lookup(hermod_bin, c, "A", "www.example.com")
        assert (r.returncode, r.stdout) == (0, "; nxdomain insecure ttl 0\n")
    for pid in reapers + daemons:
        assert not os.path.exists("/proc/%d" % pid), pid


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
