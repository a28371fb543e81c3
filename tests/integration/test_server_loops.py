"""The server layer: the protocol registry ([listen] keys without a protocol),
session ids, per-listener connection limits, the file-descriptor limit and
accept back-off, and several event loops."""
import os
import re
import resource
import signal
import subprocess
import time

import pytest

from conftest import ALICE, BOB, PASSWORDS, POP3_GREETING, make_message, unique, DELIVERED_RE

TOO_MANY = "421 4.7.0 Too many connections"
SID_RE = re.compile(r" sid=(\S+) event=connect ")


def _line_of(path, prefix):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.startswith(prefix):
                return n
    raise AssertionError("%r not in %s" % (prefix, path))


# ------------------------------------------------------------ protocol registry


@pytest.mark.parametrize("key", ["http"])
def test_listener_without_protocol_is_an_error(make_server, key):
    srv = make_server(start=False, tls=True,
                      extra={"listen": {key: "127.0.0.1:1"}})
    line = _line_of(srv.config_path, key + " = ")
    msg = ("%s:%d: [listen] %s: no protocol implements this listener yet "
           "(leave it empty or remove it)" % (srv.config_path, line, key))
    p = srv.cli("check", check=False)
    assert p.returncode == 1
    assert p.stderr.decode().strip() == msg
    p = subprocess.run([srv.binary, "serve", "-c", srv.config_path], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == "hermod: " + msg


def test_empty_reserved_listener_is_fine(make_server):
    srv = make_server(extra={"listen": {"http": ""}})
    assert srv.cli("check").stdout.strip() == "%s: ok" % srv.config_path
    srv.assert_serves()


# ------------------------------------------------------------ session ids


def _sids(srv):
    return SID_RE.findall(srv.stderr_bytes().decode("utf-8", "replace"))


def test_session_ids_unique_within_and_across_processes(make_server):
    a = make_server()
    b = make_server()
    for srv in (a, b):
        for _ in range(60):
            with srv.connect() as c:
                c.greet()
                c.quit()
    ids_a, ids_b = _sids(a), _sids(b)
    # the start-up probe counts too
    assert len(ids_a) >= 60 and len(ids_b) >= 60
    assert len(set(ids_a)) == len(ids_a)
    assert len(set(ids_b)) == len(ids_b)
    assert not set(ids_a) & set(ids_b)
    for sid in ids_a + ids_b:
        assert re.fullmatch(r"[0-9a-z]{14,19}", sid), sid
    # a restart is another process: new ids again
    a.restart()
    with a.connect() as c:
        c.greet()
        c.quit()
    after = _sids(a)[len(ids_a):]
    assert after and not set(after) & set(ids_a)


# ------------------------------------------------------------ per-listener limits


def _open_smtp(srv, n):
    conns = []
    for _ in range(n):
        c = srv.connect()
        conns.append(c)
        assert c.read_reply().code == 220
    return conns


def _wait_count(srv):
    """Closing is asynchronous: give the server a moment to count them out."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with srv.connect() as c:
            r = c.read_reply()
            if r.code == 220:
                c.quit()
                return
        time.sleep(0.1)
    raise AssertionError("port 25 still full after closing its connections")


@pytest.mark.parametrize("limits,smtp_max", [
    ({"max_connections": "8"}, 6),                                # default: 3/4
    ({"max_connections": "20", "max_connections_smtp": "4"}, 4),  # explicit
])
def test_port_25_cannot_take_the_whole_pool(make_server, limits, smtp_max):
    srv = make_server(tls=True, submission=True, pop3=True, limits=limits)
    conns = _open_smtp(srv, smtp_max)
    try:
        with srv.connect() as c:
            assert c.read_reply().line == TOO_MANY
            assert c.wait_closed() == b""
        # the authenticated services still have room
        with srv.connect_587() as c:
            c.login(ALICE, PASSWORDS[ALICE])
            c.quit()
        p = srv.pop3(tls="stls")
        p.login(ALICE, PASSWORDS[ALICE])
        p.quit()
        # the sessions already open are untouched
        for c in conns:
            assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    finally:
        for c in conns:
            c.close()
    _wait_count(srv)
    srv.assert_serves()


def test_listener_limit_above_global_is_an_error(make_server):
    srv = make_server(start=False, setup=False,
                      limits={"max_connections": "10", "max_connections_pop3": "11"})
    line = _line_of(srv.config_path, "max_connections_pop3 = ")
    p = srv.cli("check", check=False)
    assert p.returncode == 1
    assert p.stderr.decode().strip() == ("%s:%d: max_connections_pop3 (11) is larger than "
                                "max_connections (10)" % (srv.config_path, line))


# ------------------------------------------------------------ file descriptors


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _accept_errors(srv):
    return srv.stderr_bytes().decode("utf-8", "replace").count("event=accept-error")


def test_accept_backs_off_at_the_descriptor_limit(make_server):
    srv = make_server(limits={"max_connections": "50"})
    pid = srv.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    used = len(os.listdir("/proc/%d/fd" % pid))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 3, hard))
    served, waiting = [], []
    try:
        served = _open_smtp(srv, 3)
        # these complete the TCP handshake in the listen queue, but accept() fails
        for _ in range(3):
            waiting.append(srv.connect())
        deadline = time.monotonic() + 10
        while _accept_errors(srv) == 0:
            assert time.monotonic() < deadline, "no accept error logged\n" + srv.stderr_tail()
            time.sleep(0.05)
        errors0, cpu0 = _accept_errors(srv), _cpu_seconds(pid)
        time.sleep(2.0)
        errors1, cpu1 = _accept_errors(srv), _cpu_seconds(pid)
        # one line per pause of 100 ms..1 s: at most ~20 in 2 s (a busy loop
        # wrote hundreds of thousands), and the process is not spinning
        assert errors1 - errors0 <= 21, srv.stderr_tail()
        assert cpu1 - cpu0 < 0.5, (cpu0, cpu1)
        for c in waiting:
            assert c.pending(0.2) == b""
        # room again: the waiting clients are served
        for c in served:
            c.close()
        served = []
        for c in waiting:
            assert c.read_reply().code == 220
    finally:
        for c in served + waiting:
            c.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    srv.assert_serves()


def _serve_with_nofile(srv, limit):
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)
    return subprocess.Popen([srv.binary, "serve", "-c", srv.config_path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lower)


def test_refuses_to_start_when_the_hard_limit_is_too_low(make_server):
    srv = make_server(start=False, limits={"max_connections": "1000"})
    p = _serve_with_nofile(srv, (100, 100))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1
    ncpu = os.cpu_count()
    need = 1000 + 64 + 1 + 4 * 16 + 2 * ncpu + 4 * 2
    assert err.strip().splitlines()[-1] == (
        "hermod: %s: [limits] max_connections = 1000 needs %d file descriptors, but the "
        "hard limit is 100 (raise it, e.g. LimitNOFILE=%d, or lower max_connections)"
        % (srv.config_path, need, need))


def test_raises_the_soft_limit(make_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ncpu = os.cpu_count()
    need = 200 + 64 + 1 + 4 * 16 + 2 * ncpu + 4 * 2
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("hard limit %d below %d" % (hard, need))
    srv = make_server(start=False)
    p = _serve_with_nofile(srv, (100, hard))
    try:
        deadline = time.monotonic() + 15
        limits = ""
        while time.monotonic() < deadline:
            with open("/proc/%d/limits" % p.pid) as f:
                limits = f.read()
            m = re.search(r"^Max open files\s+(\d+)", limits, re.M)
            if m and int(m.group(1)) == need:
                break
            time.sleep(0.05)
        assert re.search(r"^Max open files\s+%d\s" % need, limits, re.M), limits
        # serving (and so handling SIGTERM) before it is stopped
        while True:
            assert time.monotonic() < deadline, "not accepting connections"
            try:
                with srv.connect() as c:
                    assert c.read_reply().code == 220
                    c.quit()
                break
            except OSError:
                time.sleep(0.05)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "event=nofile-raised from=100 to=%d" % need in err


# ------------------------------------------------------------ several loops


def test_connections_spread_over_loops_and_all_serve(make_server):
    srv = make_server(limits={"max_connections": "100"}, extra={"server": {"threads": "3"}})
    conns = _open_smtp(srv, 9)
    try:
        # each new connection goes to the loop with the fewest
        log = srv.stderr_bytes().decode()
        loops = [int(m) for m in re.findall(r"event=connect proto=smtp ip=\S+ loop=(\d+)",
                                            log)[-9:]]
        counts = [loops.count(i) for i in range(3)]
        assert min(counts) >= 2 and max(counts) - min(counts) <= 1, loops
        subjects = []
        for c in conns:
            c.ehlo()
            c.mail()
            c.rcpt(ALICE)
            subjects.append(unique("loop"))
            assert DELIVERED_RE.match(c.data(make_message(subjects[-1])).line)
            c.quit()
    finally:
        for c in conns:
            c.close()
    for s in subjects:
        srv.fetch_one(ALICE, s)
    assert re.search(r"event=started .* threads=3$", srv.stderr_bytes().decode(), re.M)


def test_rcpt_lookups_of_many_sessions_answer_each_its_own(make_server):
    """RCPT lookups of the sessions of one loop share worker round trips
    (conn_submit_batched): every session still gets the answer for its own
    recipient, whichever sessions were looked up together."""
    srv = make_server(limits={"max_connections": "100"}, extra={"server": {"threads": "1"}})
    conns = _open_smtp(srv, 12)
    try:
        for c in conns:
            c.ehlo()
            c.mail()
        rcpts = [(ALICE if i % 3 == 0 else BOB if i % 3 == 1 else
                  "nobody-%d@example.test" % i) for i in range(len(conns))]
        for _ in range(3):
            # every session's RCPT on the wire before any reply is read
            for c, r in zip(conns, rcpts):
                c.send("RCPT TO:<%s>\r\n" % r)
            for c, r in zip(conns, rcpts):
                want = "550 5.1.1 User unknown" if r.startswith("nobody") else "250 2.1.5 Ok"
                assert c.read_reply().line == want, r
        subjects = {}
        for c, r in zip(conns, rcpts):
            if r.startswith("nobody"):
                c.quit()
                continue
            subject = unique("batch")
            subjects[subject] = r
            assert DELIVERED_RE.match(c.data(make_message(subject)).line)
            c.quit()
    finally:
        for c in conns:
            c.close()
    for subject, r in subjects.items():
        srv.fetch_one(r, subject)


def test_one_loop_is_allowed(make_server):
    srv = make_server(extra={"server": {"threads": "1"}})
    srv.assert_serves()
    log = srv.stderr_bytes().decode()
    assert re.search(r"event=started .* threads=1$", log, re.M)
    assert set(re.findall(r"event=connect proto=smtp ip=\S+ loop=(\d+)", log)) == {"0"}


def _wait_log(srv, needle, before):
    deadline = time.monotonic() + 30
    while srv.stderr_bytes().decode("utf-8", "replace").count(needle) <= before:
        assert time.monotonic() < deadline, "no %r in the log\n%s" % (needle, srv.stderr_tail())
        time.sleep(0.05)


def test_reload_reaches_every_loop(make_server):
    srv = make_server(limits={"max_recipients": "2"}, extra={"server": {"threads": "3"}})
    good = open(srv.config_path).read()
    before = srv.stderr_bytes().decode().count("event=reloaded")
    with open(srv.config_path, "w") as f:
        f.write(good.replace("max_recipients = 2", "max_recipients = 3"))
    srv.proc.send_signal(signal.SIGHUP)
    _wait_log(srv, "event=reloaded", before)
    # six sessions at once: two on each loop, each with the new limit
    conns = _open_smtp(srv, 6)
    try:
        log = srv.stderr_bytes().decode()
        loops = re.findall(r"event=connect proto=smtp ip=\S+ loop=(\d+)", log)[-6:]
        assert sorted(loops) == ["0", "0", "1", "1", "2", "2"], loops
        for c in conns:
            c.ehlo()
            c.mail()
            assert [c.cmd("RCPT TO:<%s>" % ALICE).code for _ in range(3)] == [250] * 3
            assert c.cmd("RCPT TO:<%s>" % ALICE).line == "452 4.5.3 Too many recipients"
            c.quit()
    finally:
        for c in conns:
            c.close()


def test_reload_with_a_listener_without_protocol_keeps_the_old_config(make_server):
    srv = make_server()
    before = srv.stderr_bytes().decode().count("event=reload-failed")
    with open(srv.config_path, "a") as f:
        f.write("[listen]\n")  # a second [listen] section continues the first
    with open(srv.config_path, "a") as f:
        f.write("http = 127.0.0.1:1\n")
    line = _line_of(srv.config_path, "http = ")
    srv.proc.send_signal(signal.SIGHUP)
    _wait_log(srv, "event=reload-failed", before)
    failed = [l for l in srv.stderr_bytes().decode().splitlines()
              if "event=reload-failed" in l][-1]
    assert failed.endswith('event=reload-failed error="%s:%d: [listen] http: no protocol '
                           'implements this listener yet (leave it empty or remove it)"'
                           % (srv.config_path, line)), failed
    srv.assert_serves(check_stored=False)


def _sigterm(srv):
    before = srv.stderr_bytes().decode().count("event=stopping")
    srv.proc.send_signal(signal.SIGTERM)
    _wait_log(srv, "event=stopping", before)


def _loops_of_last(srv, n):
    log = srv.stderr_bytes().decode()
    return re.findall(r"event=connect proto=smtp ip=\S+ loop=(\d+)", log)[-n:]


def test_sigterm_drains_every_loop(make_server):
    srv = make_server(extra={"server": {"threads": "3"}})
    conns = _open_smtp(srv, 3)
    assert sorted(_loops_of_last(srv, 3)) == ["0", "1", "2"]
    subjects = []
    for c in conns:
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
    _sigterm(srv)
    # every loop lets its transaction finish, then the process exits 0
    for c in conns:
        subjects.append(unique("drain"))
        assert DELIVERED_RE.match(c.data(make_message(subjects[-1])).line)
    for c in conns:
        c.close()
    srv.proc.wait(timeout=30)
    assert srv.stop() == 0
    for s in subjects:
        srv.fetch_one(ALICE, s)


def test_shutdown_timeout_ends_sessions_on_every_loop(make_server):
    srv = make_server(limits={"shutdown_timeout": "1s"}, extra={"server": {"threads": "2"}})
    conns = _open_smtp(srv, 2)
    assert sorted(_loops_of_last(srv, 2)) == ["0", "1"]
    for c in conns:
        c.ehlo()
        c.mail()
        c.rcpt(ALICE)
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stuck\r\n\r\nhalf a message")
    _sigterm(srv)
    for c in conns:
        c.wait_closed()
        c.close()
    srv.proc.wait(timeout=30)
    assert srv.stop() == 0
    log = srv.stderr_bytes().decode()
    assert sorted(re.findall(r"event=shutdown-timeout loop=(\d+) sessions=1", log)) == ["0", "1"]
