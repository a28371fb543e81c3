"""A small test PKI: a CA and leaf certificates it signs, made with the
openssl command, for peers whose certificate must verify (MTA-STS, REQUIRETLS,
DANE-TA) and for TLSA data.

    ca = TestCA(directory)
    leaf = ca.issue("mx.sts.test")          # CertPair: .cert, .key, .name
    leaf_ip = ca.issue("127.0.0.2")         # an IP subjectAltName
    ctx = server_context(leaf)              # an ssl.SSLContext serving it
    tlsa = tlsa_rdata(leaf.cert)            # "3 1 1 <sha256 of the SPKI>"
"""

import base64
import hashlib
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
        return CertPair(cert, key, names[0])


def server_context(pair):
    """A server-side SSLContext presenting pair."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


def spki_der(cert_pem_path):
    """The DER SubjectPublicKeyInfo of a PEM certificate."""
    pem = _run(["openssl", "x509", "-in", cert_pem_path, "-noout", "-pubkey"])
    body = b"".join(l for l in pem.splitlines() if l and not l.startswith(b"-----"))
    return base64.b64decode(body)


def tlsa_rdata(cert_pem_path, usage=3, selector=1, mtype=1):
    """TLSA presentation data for the certificate (RFC 6698 2.1): selector 1
    the SubjectPublicKeyInfo, 0 the whole certificate; mtype 1 SHA-256, 2
    SHA-512, 0 the data itself."""
    if selector == 1:
        data = spki_der(cert_pem_path)
    else:
        with open(cert_pem_path) as f:
            data = ssl.PEM_cert_to_DER_cert(f.read())
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())
