"""A DNS server for tests: Debian's dnsmasq serving fixed records on a
loopback port, nothing else (every other name is NXDOMAIN, no upstream).

    with Dnsmasq(["--mx-host=example.test,mx1.example.test,10"]) as dns:
        ... [dns] resolver = dns.address ...
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on host."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                u.bind((host, port))
            except OSError:
                continue
            return port
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free UDP+TCP port")


def query_ok(host, port):
    """True once the server answers a query (any rcode) over UDP."""
    # a minimal query for ". IN NS", id 0x4242
    q = b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(q, (host, port))
        data, _ = s.recvfrom(512)
        return data[:2] == b"\x42\x42"
    except OSError:
        return False
    finally:
        s.close()


class Dnsmasq:
    """dnsmasq with the given record options (--mx-host=..., --txt-record=...,
    --host-record=..., --dns-rr=..., --ptr-record=...), TTL ttl."""

    def __init__(self, records, host="127.0.0.1", ttl=300):
        self.host = host
        self.port = free_udp_tcp_port(host)
        self.dir = tempfile.mkdtemp(prefix="hermod-dns-")
        self.log = os.path.join(self.dir, "dnsmasq.log")
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--no-poll", "--conf-file=/dev/null", "--user=" + _user(),
                "--port=%d" % self.port, "--listen-address=" + host,
                "--bind-interfaces", "--local-ttl=%d" % ttl,
                "--pid-file=" + os.path.join(self.dir, "pid"),
                "--log-facility=" + self.log, "--log-queries",
                "--address=/#/"] + list(records)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not query_ok(host, self.port):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode("utf-8", "replace")
                raise RuntimeError("dnsmasq exited: %s" % err.strip())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dnsmasq did not answer on port %d" % self.port)
            time.sleep(0.05)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def queries(self):
        """The query lines dnsmasq logged so far."""
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return [l for l in f if " query[" in l]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _user():
    # dnsmasq started as root drops to this user; as anyone else it stays
    return "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
