"""MTA-STS (RFC 8461) end to end through `hermod mta-sts lookup DOMAIN`: the
_mta-sts TXT record and mta-sts.DOMAIN's address from dnsmasq, the policy
from a Python HTTPS server on 127.0.0.1 whose certificate a test CA signed
([delivery] tls_ca_file = that CA, mta_sts_port = the server's port), the
cache in the store. Output and exit codes are exact."""

import http.server
import os
import shutil
import ssl
import subprocess
import tempfile
import threading

import pytest

from dnsfix import Dnsmasq
from pki import TestCA

POLICY = ("version: STSv1\r\nmode: enforce\r\nmx: mail.{d}\r\nmx: *.backup.{d}\r\n"
          "max_age: 86400\r\n")


class PolicyServer:
    """HTTPS on 127.0.0.1: every GET answers with (status, headers, body) of
    self.response; requests are recorded as (path, Host header, SNI name).
    A POST is recorded in self.posts and answered with self.post_response."""

    def __init__(self, cert, key, tls=True):
        self.requests = []
        self.response = (404, {"Content-Type": "text/plain"}, b"")
        self.by_host = {}  # Host -> a response of its own
        self.sni = []
        self.posts = []  # POSTs: (path, headers, body)
        self.post_response = (200, {}, b"")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = lambda sock, name, c: self.sni.append(name)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host"),
                                       outer.sni[-1] if outer.sni else None))
                host = (self.headers.get("Host") or "").split(":")[0]
                status, headers, body = outer.by_host.get(host, outer.response)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.posts.append((self.path, dict(self.headers.items()),
                                    self.rfile.read(n)))
                status, headers, body = outer.post_response
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def policy(self, text, ctype="text/plain; charset=utf-8"):
        self.response = (200, {"Content-Type": ctype}, text.encode())

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(10)
            self.httpd = None


@pytest.fixture(scope="module")
def ca():
    d = tempfile.mkdtemp(prefix="hermod-sts-ca-")
    yield TestCA(d)
    shutil.rmtree(d, ignore_errors=True)


class Env:
    """One domain: dnsmasq with its records, the HTTPS server, a config and a
    data directory that outlive restarts of dnsmasq (the cache stays)."""

    def __init__(self, ca, domain, cert_name=None, tls=True):
        self.ca = ca
        self.domain = domain
        self.dir = tempfile.mkdtemp(prefix="hermod-sts-")
        leaf = ca.issue(cert_name or "mta-sts." + domain)
        cert, key = leaf.cert, leaf.key
        self.server = PolicyServer(cert, key, tls)
        self.dns = None
        self.conf = os.path.join(self.dir, "hermod.conf")

    def records(self, txt=None, address=True):
        """(Re)starts dnsmasq: TXT _mta-sts.DOMAIN = txt (None: no record, a
        list: several records),
        mta-sts.DOMAIN A 127.0.0.1 when address."""
        if self.dns is not None:
            self.dns.stop()
        recs = []
        for t in ([] if txt is None else [txt] if isinstance(txt, str) else txt):
            recs.append("--txt-record=_mta-sts.%s,%s" % (self.domain, t))
        if address:
            recs.append("--host-record=mta-sts.%s,127.0.0.1" % self.domain)
        self.dns = Dnsmasq(recs)
        with open(self.conf, "w") as f:
            f.write("[server]\nhostname = mx.example.test\ndata_dir = %s\n"
                    "[dns]\nresolver = %s\n"
                    "[delivery]\ntls_ca_file = %s\nmta_sts_port = %d\n"
                    % (os.path.join(self.dir, "data"), self.dns.address, self.ca.cert,
                       self.server.port))

    def lookup(self, hermod_bin, domain=None):
        p = subprocess.run([hermod_bin, "mta-sts", "lookup", domain or self.domain,
                            "-c", self.conf], capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def policy_out(self, id_, reason, mode="enforce", max_age=86400):
        d = self.domain
        return ("mode %s\nid %s\nmax_age %d\nmx mail.%s\nmx *.backup.%s\n; %s\n"
                % (mode, id_, max_age, d, d, reason))

    def stop(self):
        if self.dns is not None:
            self.dns.stop()
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def env(ca, request):
    made = []

    def factory(domain, cert_name=None, tls=True):
        e = Env(ca, domain, cert_name, tls)
        made.append(e)
        return e

    yield factory
    for e in made:
        e.stop()


def test_fetched_then_cached(env, hermod_bin):
    e = env("fetch.test")
    e.records(txt="v=STSv1; id=20160831085700Z;")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (0, e.policy_out("20160831085700Z", "fetched"), "")
    assert e.server.requests == [("/.well-known/mta-sts.txt", "mta-sts.fetch.test",
                                  "mta-sts.fetch.test")]
    # the same id: from the cache, the server is not asked again
    assert e.lookup(hermod_bin) == (0, e.policy_out("20160831085700Z", "cached"), "")
    assert len(e.server.requests) == 1
    # the domain in another case, with a trailing dot: the same cache entry
    rc, out, err = e.lookup(hermod_bin, "FETCH.Test.")
    assert (rc, out, err) == (0, e.policy_out("20160831085700Z", "cached"), "")
    assert len(e.server.requests) == 1


def test_id_change_refetches(env, hermod_bin):
    e = env("idchange.test")
    e.records(txt="v=STSv1; id=one")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (0, e.policy_out("one", "fetched"), "")
    e.records(txt="v=STSv1; id=two")
    e.server.policy(POLICY.format(d=e.domain).replace("enforce", "testing"))
    assert e.lookup(hermod_bin) == (0, e.policy_out("two", "fetched", mode="testing"), "")
    assert len(e.server.requests) == 2
    assert e.lookup(hermod_bin) == (0, e.policy_out("two", "cached", mode="testing"), "")
    assert len(e.server.requests) == 2


def test_max_age_zero_is_not_reused(env, hermod_bin):
    e = env("maxage.test")
    e.records(txt="v=STSv1; id=a1")
    e.server.policy(POLICY.format(d=e.domain).replace("86400", "0"))
    assert e.lookup(hermod_bin) == (0, e.policy_out("a1", "fetched", max_age=0), "")
    assert e.lookup(hermod_bin) == (0, e.policy_out("a1", "fetched", max_age=0), "")
    assert len(e.server.requests) == 2


def test_mode_none_is_a_policy(env, hermod_bin):
    e = env("none.test")
    e.records(txt="v=STSv1; id=n")
    e.server.policy("version: STSv1\nmode: none\nmax_age: 600\n")
    assert e.lookup(hermod_bin) == (0, "mode none\nid n\nmax_age 600\n; fetched\n", "")


def test_certificate_for_another_name(env, hermod_bin):
    e = env("wrongname.test", cert_name="www.wrongname.test")
    e.records(txt="v=STSv1; id=x")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (
        1, "; no policy: fetch failed: certificate: hostname mismatch\n", "")
    assert e.server.requests == []


def test_plain_http_is_not_tls(env, hermod_bin):
    e = env("plain.test", tls=False)
    e.records(txt="v=STSv1; id=x")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (1, "; no policy: fetch failed: TLS: wrong version number\n", "")


BAD = [
    ("404", (404, {"Content-Type": "text/plain"}, b"not here"), "HTTP status 404"),
    ("redirect", (301, {"Location": "https://elsewhere.test/.well-known/mta-sts.txt"}, b""),
     "HTTP status 301"),
    ("oversized", (200, {"Content-Type": "text/plain"}, b"x" * (64 * 1024 + 1)),
     "response too large (limit 65536 octets)"),
    ("content-type", (200, {"Content-Type": "text/html"}, None),
     "Content-Type text/html (text/plain required)"),
    ("no-content-type", (200, {}, None), "no Content-Type (text/plain required)"),
    ("no-mx", (200, {"Content-Type": "text/plain"},
               b"version: STSv1\nmode: enforce\nmax_age: 1\n"), "policy: no mx"),
    ("bad-version", (200, {"Content-Type": "text/plain"},
                     b"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n"),
     "policy: unsupported version"),
    ("bad-max-age", (200, {"Content-Type": "text/plain"},
                     b"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n"),
     "policy: bad max_age"),
]


@pytest.mark.parametrize("name,response,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_responses(env, hermod_bin, name, response, reason):
    e = env("bad-%s.test" % name)
    e.records(txt="v=STSv1; id=b")
    status, headers, body = response
    if body is None:
        body = POLICY.format(d=e.domain).encode()
    e.server.response = (status, headers, body)
    assert e.lookup(hermod_bin) == (1, "; no policy: fetch failed: %s\n" % reason, "")
    assert len(e.server.requests) == 1


def test_server_down_uses_cache(env, hermod_bin):
    e = env("down.test")
    e.records(txt="v=STSv1; id=old")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (0, e.policy_out("old", "fetched"), "")
    port = e.server.port
    e.server.stop()
    # a new id makes hermod fetch; the fetch fails; the cached policy holds
    e.records(txt="v=STSv1; id=new")
    rc, out, err = e.lookup(hermod_bin)
    assert (rc, out, err) == (0, e.policy_out(
        "old", "cached (fetch failed: 127.0.0.1:%d: cannot connect)" % port), "")


def test_server_down_nothing_cached(env, hermod_bin):
    e = env("downempty.test")
    e.records(txt="v=STSv1; id=x")
    port = e.server.port
    e.server.stop()
    assert e.lookup(hermod_bin) == (
        1, "; no policy: fetch failed: 127.0.0.1:%d: cannot connect\n" % port, "")


def test_txt_gone_uses_cache(env, hermod_bin):
    e = env("gone.test")
    e.records(txt="v=STSv1; id=g1")
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (0, e.policy_out("g1", "fetched"), "")
    e.records(txt=None)
    assert e.lookup(hermod_bin) == (0, e.policy_out("g1", "cached (no TXT record)"), "")
    assert len(e.server.requests) == 1


@pytest.mark.parametrize("txt,reason", [
    (None, "no TXT record"),
    ("v=spf1 -all", "no STSv1 TXT record"),
    ("v=STSv1; id=", "TXT record: bad id"),
    ("v=STSv1 id=abc", "TXT record: ';' expected"),
    (["v=STSv1; id=a", "v=STSv1; id=b"], "several STSv1 TXT records"),
    (["v=spf1 -all", "v=STSv10; id=b"], "no STSv1 TXT record"),
])
def test_no_policy_published(env, hermod_bin, txt, reason):
    e = env("nopolicy.test")
    e.records(txt=txt)
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (1, "; no policy: %s\n" % reason, "")
    assert e.server.requests == []


def test_no_address(env, hermod_bin):
    e = env("noaddr.test")
    e.records(txt="v=STSv1; id=x", address=False)
    assert e.lookup(hermod_bin) == (
        1, "; no policy: fetch failed: mta-sts.noaddr.test: no address\n", "")


def test_usage(hermod_bin):
    p = subprocess.run([hermod_bin, "mta-sts", "lookup"], capture_output=True, text=True)
    assert (p.returncode, p.stdout, p.stderr) == (
        2, "", "hermod: usage: hermod mta-sts lookup DOMAIN [-c FILE]\n")
    p = subprocess.run([hermod_bin, "mta-sts", "lookup", "a..test"], capture_output=True,
                       text=True)
    assert (p.returncode, p.stdout, p.stderr) == (
        2, "", "hermod: 'a..test' is not a valid domain name\n")


def test_other_txt_records_ignored(env, hermod_bin):
    e = env("othertxt.test")
    e.records(txt=["v=spf1 -all", "v=STSv1; id=z9; ext=1", "hello"])
    e.server.policy(POLICY.format(d=e.domain))
    assert e.lookup(hermod_bin) == (0, e.policy_out("z9", "fetched"), "")
