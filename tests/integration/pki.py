"""A small test PKI: a CA and leaf certificates it signs, made with the
openssl command, for peers whose certificate must verify (MTA-STS, REQUIRETLS,
DANE-TA) and for TLSA data.

    ca = TestCA(directory)
    leaf = ca.issue("mx.sts.test")          # CertPair: .cert, .key, .name
    leaf_ip = ca.issue("127.0.0.2")         # an IP subjectAltName
    ctx = server_context(leaf)              # an ssl.SSLContext serving it
    ctx = server_context(leaf, chain=True)  # ... with the CA's certificate

(TLSA data for them: dnssecfix.tlsa_rdata.)
"""

import ipaddress
import os
import ssl
import subprocess

from conftest import CertPair


def _run(args):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 0, "%s failed: %s" % (args[:2], p.stdout.decode("utf-8", "replace"))
    return p.stdout


class TestCA:
    """A self-signed ECDSA P-256 CA in directory (ca.pem, ca.key)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, name="hermod test CA"):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-days", "2", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-keyout", self.key, "-out", self.cert])
        self.n = 0

    def issue(self, *names, days=2):
        """A leaf for the DNS names / IP addresses given (the first is its CN)."""
        self.n += 1
        base = os.path.join(self.dir, "leaf%d" % self.n)
        key, csr, cert = base + ".key", base + ".csr", base + ".pem"
        sans = []
        for n in names:
            try:
                ipaddress.ip_address(n)
                sans.append("IP:" + n)
            except ValueError:
                sans.append("DNS:" + n)
        _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-subj", "/CN=" + names[0], "-keyout", key, "-out", csr])
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % ",".join(sans))
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
              "-CAcreateserial", "-days", str(days), "-extfile", ext, "-out", cert])
        os.chmod(key, 0o600)
        pair = CertPair(cert, key, names[0])
        # the leaf then the CA, as a server sends its chain (DANE-TA needs the
        # trust anchor in it: RFC 7672 3.2.1)
        pair.chain = base + "-chain.pem"
        with open(pair.chain, "w") as out, open(cert) as a, open(self.cert) as b:
            out.write(a.read() + b.read())
        return pair


def server_context(pair, chain=False):
    """A server-side SSLContext presenting pair (with chain, and the CA's
    certificate after it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.chain if chain else pair.cert, pair.key)
    return ctx
