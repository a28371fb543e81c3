"""A DNSSEC-signed zone for tests: the zone signed with Debian's ldnsutils
(ECDSA P-256 keys, a KSK and a ZSK, NSEC), served by Debian's nsd on a
loopback port, with Debian's unbound on another loopback port in front of it
as the validating resolver that hermod forwards to.

    with SignedZone("dane.test", [("mx", "A", "127.0.0.2"),
                                  ("@", "MX", "10 mx.dane.test."),
                                  ("_25._tcp.mx", "TLSA", tlsa_rdata(cert))],
                    bogus=["_25._tcp.mx"]) as zone:
        ... [dns] resolver = zone.resolver
            [dns] trust_anchor = zone.trust_anchor ...

SignedZone(zone="dane.test", records=(), bogus=False, ttl=300)
  zone     the zone's name (no trailing dot needed).
  records  (owner, type, rdata) in zone-file syntax: owner relative to the
           zone ("@" is the apex; a name ending in "." is absolute), type as
           in a zone file ("A", "MX", "TLSA", "TXT", ...), rdata as in a zone
           file ("10 mx.dane.test.", '"v=spf1 -all"'). Every record has TTL
           ttl. The fixture adds the SOA (negative TTL ttl), the NS
           "ns.ZONE." and its address "ns A 127.0.0.1": "ns" is taken.
  bogus    owner names (as in records) whose record sets fail validation:
           after signing, the signatures (RRSIGs) over every type at those
           names are corrupted (SOA, DNSKEY and NSEC excepted, so that the
           zone itself and its denials of existence stay secure). True
           instead of a list adds one record "bogus A 127.0.0.66" and breaks
           its signature (its full name: .bogus_name). Everything else in the
           zone stays secure. hermod with the trust anchor reports such a
           set as "; tempfail bogus ttl 60 (validation failure <NAME TYPE
           IN>: ECDSA signature verification failed from 127.0.0.1)";
           without it, the records, TTL 60 (unbound in front validates too,
           and keeps bogus data for its val-bogus-ttl).
  ttl      the TTL of every record (and the negative TTL). unbound serves
           it as is, not counted down in its cache (serve-original-ttl), so
           that tests can check exact TTLs.

Attributes
  .zone          the zone name, without the trailing dot
  .resolver      "127.0.0.1:PORT" of unbound, for [dns] resolver
  .trust_anchor  the path of a file with the zone's DS record (SHA-256 of
                 the KSK), for [dns] trust_anchor
  .dnskey        the path of a file with the zone's DNSKEY records (the
                 other form of trust anchor libunbound accepts)
  .nsd_address   "127.0.0.1:PORT" of nsd (authoritative, no recursion)
  .bogus_name    the name added by bogus=True, or None
  .dir           the temp dir with the keys, zone files, configs and logs
  .stop()        stops both daemons and waits for them (also on exit of the
                 with block); removes the temp dir

tlsa_rdata(cert, usage=3, selector=1, mtype=1) gives the TLSA presentation
rdata "3 1 1 <hex>" for a PEM certificate (a path, or an object with a .cert
path such as conftest's CertPair): selector 0 the whole certificate, 1 its
SubjectPublicKeyInfo; mtype 0 the data itself, 1 its SHA-256, 2 its SHA-512.

How it hangs together: unbound has a stub zone for the zone pointing at nsd,
the zone's DS as its trust anchor, `local-zone: "." static` (every name
outside the zone is NXDOMAIN: nothing is ever asked beyond loopback, and no
root servers) and the zone transparent. hermod's libunbound, given the trust
anchor and unbound as its forwarder, validates by itself: it asks with CD
(checking disabled) set, so unbound passes bogus data on to it rather than
SERVFAIL, and hermod sees the broken signatures and says "bogus"
(val-permissive-mode does the same for clients that do not set CD: the data,
without AD). Neither daemon touches /etc/nsd, /etc/unbound, /var/lib or port
53; neither chroots nor changes user. Start-up (about half a second) waits
until nsd answers authoritatively and unbound answers the zone's SOA with AD
set (validated). nsd forks (xfrd, main, server); each daemon runs under a
small subreaper (a child of the test process) that reaps the daemon's
processes, so stop() leaves neither daemons nor zombies; if the test process
dies, the subreaper kills its daemon (parent-death signal).

Needs the Debian packages nsd, unbound and ldnsutils (scripts/deps.sh test);
SignedZone.available() says why not, or None.
"""

import base64
import hashlib
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

from dnsfix import free_udp_tcp_port

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
LDNS_KEYGEN = shutil.which("ldns-keygen") or "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = shutil.which("ldns-signzone") or "/usr/bin/ldns-signzone"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Record types whose signatures `bogus` leaves alone: the zone's own keys and
# SOA, and the NSEC chain (denial of existence stays provable).
_KEEP_SIGNED = {"SOA", "DNSKEY", "NSEC", "NSEC3", "NSEC3PARAM"}

# The subreaper each daemon runs under: becomes PR_SET_CHILD_SUBREAPER (the
# daemon's forked processes are reparented to it when their parent exits),
# dies with the test process (PR_SET_PDEATHSIG), runs the daemon with its
# output into a log file, passes SIGTERM on to it, reaps every process until
# none is left and exits. STOP seconds after a SIGTERM whatever is left gets
# SIGKILL (again every 0.2 s, for what is reparented to it meanwhile).
_REAPER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
parent, stop, log, cmd = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("cannot become a child subreaper")
libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    sys.exit("parent gone")
child = None
def children():
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out
def kill_all(*_):
    for pid in children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
def term(*_):
    if child is not None:
        try:
            os.kill(child, signal.SIGTERM)
        except OSError:
            pass
    signal.signal(signal.SIGALRM, kill_all)
    # then every 0.2 s: processes reparented to us after a kill get theirs
    signal.setitimer(signal.ITIMER_REAL, stop, 0.2)
signal.signal(signal.SIGTERM, term)
child = os.fork()
if child == 0:
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.execv(cmd[0], cmd)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
"""


def available():
    """Why a SignedZone cannot run here, or None."""
    for path, pkg in ((NSD, "nsd"), (UNBOUND, "unbound"), (LDNS_KEYGEN, "ldnsutils"),
                      (LDNS_SIGNZONE, "ldnsutils")):
        if not os.access(path, os.X_OK):
            return "%s not installed (Debian package %s; scripts/deps.sh test)" % (path, pkg)
    return None


# --- DNS messages (just enough to tell that a server answers) ---

def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def _query(qname, qtype, flags, do=False):
    qid = random.randrange(1, 0x10000)
    msg = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if do else 0)
    msg += _encode_name(qname) + struct.pack("!HH", qtype, 1)
    if do:
        # EDNS0 OPT: root owner, type 41, UDP size 1232, DO bit
        msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000, 0)
    return qid, msg


def ask(host, port, qname, qtype=6, rd=True, ad=False, do=False, timeout=0.3):
    """One UDP query; the answer's (rcode, flags, ancount), or None when
    nothing (valid) came back. qtype 6 is SOA."""
    flags = (0x0100 if rd else 0) | (0x0020 if ad else 0)
    qid, msg = _query(qname, qtype, flags, do)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(msg, (host, port))
        data, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12:
        return None
    rid, rflags, _, ancount = struct.unpack("!HHHH", data[:8])
    if rid != qid or not rflags & 0x8000:
        return None
    return rflags & 0x000F, rflags, ancount


# --- TLSA ---

def _der_next(data, pos):
    """(tag, start of contents, end) of the DER element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + n


def spki_der(cert_der):
    """The SubjectPublicKeyInfo (DER) of a DER certificate (RFC 5280 4.1)."""
    _, pos, _ = _der_next(cert_der, 0)  # Certificate
    _, pos, end = _der_next(cert_der, pos)  # tbsCertificate
    fields = []
    while pos < end:
        tag, start, nxt = _der_next(cert_der, pos)
        fields.append((tag, pos, nxt))
        pos = nxt
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6:
        raise ValueError("not a certificate")
    _, start, nxt = fields[5]
    return cert_der[start:nxt]


def tlsa_rdata(cert, usage=3, selector=1, mtype=1):
    """The TLSA presentation rdata "USAGE SELECTOR MTYPE HEX" (RFC 6698 2)
    for a PEM certificate: a path, or an object with a .cert path."""
    path = getattr(cert, "cert", cert)
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    data = spki_der(der) if selector == 1 else der
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())


# --- the zone ---

def _corrupt_signature(line):
    """An RRSIG line with its signature altered (same length, valid base64)."""
    fields = line.split()
    sig = bytearray(base64.b64decode("".join(fields[12:])))
    sig[len(sig) // 2] ^= 0x01
    return "\t".join(fields[:12] + [base64.b64encode(bytes(sig)).decode("ascii")])


class SignedZone:
    """See the module docstring."""

    available = staticmethod(available)

    def __init__(self, zone="dane.test", records=(), bogus=False, ttl=300):
        why = available()
        if why is not None:
            raise RuntimeError(why)
        self.zone = zone.rstrip(".").lower()
        self.ttl = ttl
        self.dir = tempfile.mkdtemp(prefix="hermod-dnssec-")
        self.bogus_name = None
        self._procs = []
        records = list(records)
        if bogus is True:
            records.append(("bogus", "A", "127.0.0.66"))
            bogus = ["bogus"]
            self.bogus_name = "bogus." + self.zone
        self._bogus = {self._fqdn(o) for o in (bogus or [])}
        try:
            self._sign(records)
            # both start at once; unbound is asked only once nsd answers
            nsd = self._start_nsd()
            unbound = self._start_unbound()
            self._wait("nsd", nsd, self._nsd_ready)
            self._wait("unbound", unbound, self._unbound_ready)
        except BaseException:
            self.stop()
            raise

    def _fqdn(self, owner):
        if owner == "@":
            return self.zone + "."
        if owner.endswith("."):
            return owner.lower()
        return "%s.%s." % (owner.lower(), self.zone)

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, args):
        r = subprocess.run(args, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (args[0], (r.stderr or r.stdout).strip()))
        return r.stdout.strip()

    def _sign(self, records):
        z = self.zone + "."
        lines = ["$ORIGIN %s" % z, "$TTL %d" % self.ttl,
                 "@ IN SOA ns.%s hostmaster.%s 1 3600 900 86400 %d" % (z, z, self.ttl),
                 "@ IN NS ns.%s" % z, "ns IN A 127.0.0.1"]
        for owner, rtype, rdata in records:
            lines.append("%s IN %s %s" % (owner, rtype, rdata))
        with open(self._path("zone"), "w") as f:
            f.write("\n".join(lines) + "\n")
        ksk = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", self.zone])
        zsk = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", self.zone])
        # signatures valid from an hour ago (clock steps) for a week
        now = time.time()
        stamp = lambda t: time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
        self._run([LDNS_SIGNZONE, "-o", self.zone, "-i", stamp(now - 3600),
                   "-e", stamp(now + 7 * 86400), "-f", self._path("zone.signed"),
                   self._path("zone"), ksk, zsk])
        # the trust anchors: the KSK's DS (ldns-keygen writes it, SHA-256 for
        # algorithm 13) and the DNSKEY set
        self.trust_anchor = self._path("ds")
        shutil.copyfile(self._path(ksk + ".ds"), self.trust_anchor)
        self.dnskey = self._path("dnskey")
        with open(self.dnskey, "w") as out:
            for k in (ksk, zsk):
                with open(self._path(k + ".key")) as f:
                    out.write(f.read())
        if self._bogus:
            self._tamper()

    def _tamper(self):
        path = self._path("zone.signed")
        with open(path) as f:
            lines = f.read().splitlines()
        done = set()
        out = []
        for line in lines:
            fields = line.split()
            if (len(fields) > 12 and fields[3] == "RRSIG" and fields[0].lower() in self._bogus
                    and fields[4] not in _KEEP_SIGNED):
                line = _corrupt_signature(line)
                done.add(fields[0].lower())
            out.append(line)
        missing = self._bogus - done
        if missing:
            raise RuntimeError("bogus: no signed record set at %s" % ", ".join(sorted(missing)))
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    def _spawn(self, name, args):
        log = self._path(name + ".log")
        p = subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid()),
                              str(STOP_TIMEOUT / 2), log] + args,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        self._procs.append((name, p))
        return p

    def _wait(self, name, p, ready):
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if p.poll() is not None:
                raise RuntimeError("%s exited: %s" % (name, self._log_tail(name, p)))
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not answer: %s" % (name, self._log_tail(name, p)))
            time.sleep(0.02)

    def _log_tail(self, name, p):
        text = ""
        try:
            with open(self._path(name + ".log"), errors="replace") as f:
                text = f.read()
        except OSError:
            pass
        if p.poll() is not None:
            text += p.stderr.read().decode("utf-8", "replace")
        return text.strip()[-2000:]

    def _start_nsd(self):
        self.nsd_port = free_udp_tcp_port()
        self.nsd_address = "127.0.0.1:%d" % self.nsd_port
        d = self.dir
        conf = self._path("nsd.conf")
        with open(conf, "w") as f:
            f.write('server:\n'
                    '  ip-address: 127.0.0.1@%d\n'
                    '  port: %d\n'
                    '  do-ip6: no\n'
                    '  username: ""\n'
                    '  chroot: ""\n'
                    '  zonesdir: "%s"\n'
                    '  database: ""\n'
                    '  pidfile: "%s/nsd.pid"\n'
                    '  xfrdfile: "%s/xfrd.state"\n'
                    '  zonelistfile: "%s/zone.list"\n'
                    '  xfrdir: "%s"\n'
                    '  server-count: 1\n'
                    '  verbosity: 1\n'
                    'remote-control:\n'
                    '  control-enable: no\n'
                    'zone:\n'
                    '  name: "%s"\n'
                    '  zonefile: "%s/zone.signed"\n'
                    % (self.nsd_port, self.nsd_port, d, d, d, d, d, self.zone, d))
        return self._spawn("nsd", [NSD, "-d", "-c", conf])

    def _nsd_ready(self):
        a = ask("127.0.0.1", self.nsd_port, self.zone, rd=False)
        return a is not None and a[0] == 0 and a[1] & 0x0400 and a[2] >= 1  # AA

    def _start_unbound(self):
        self.port = free_udp_tcp_port()
        self.resolver = "127.0.0.1:%d" % self.port
        d = self.dir
        z = self.zone + "."
        under_test = z == "test." or z.endswith(".test.")
        conf = self._path("unbound.conf")
        with open(conf, "w") as f:
            f.write('server:\n'
                    '  interface: 127.0.0.1\n'
                    '  port: %d\n'
                    '  do-ip6: no\n'
                    '  interface-automatic: no\n'
                    '  so-reuseport: no\n'
                    '  num-threads: 1\n'
                    '  outgoing-range: 64\n'
                    '  num-queries-per-thread: 32\n'
                    '  username: ""\n'
                    '  chroot: ""\n'
                    '  directory: "%s"\n'
                    '  pidfile: "%s/unbound.pid"\n'
                    '  use-syslog: no\n'
                    '  logfile: ""\n'
                    '  verbosity: 1\n'
                    '  do-not-query-localhost: no\n'
                    '  module-config: "validator iterator"\n'
                    '  trust-anchor-file: "%s"\n'
                    '  trust-anchor-signaling: no\n'
                    '  root-key-sentinel: no\n'
                    '  val-permissive-mode: yes\n'
                    '  serve-original-ttl: yes\n'
                    '  local-zone: "." static\n'
                    '%s'
                    '  local-zone: "%s" transparent\n'
                    'stub-zone:\n'
                    '  name: "%s"\n'
                    '  stub-addr: 127.0.0.1@%d\n'
                    'remote-control:\n'
                    '  control-enable: no\n'
                    % (self.port, d, d, self.trust_anchor,
                       '  local-zone: "test." nodefault\n' if under_test else "", z, z,
                       self.nsd_port))
        return self._spawn("unbound", [UNBOUND, "-d", "-c", conf])

    def _unbound_ready(self):
        a = ask("127.0.0.1", self.port, self.zone, ad=True, do=True)
        return a is not None and a[0] == 0 and a[1] & 0x0020 and a[2] >= 1  # AD

    def stop(self):
        """Stops both daemons (SIGTERM to their subreapers, which pass it on
        and reap), waits for them, removes the temp dir."""
        for _, p in reversed(self._procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in reversed(self._procs):
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stderr.close()
        self._procs = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
