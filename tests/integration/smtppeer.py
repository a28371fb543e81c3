"""A scriptable SMTP server for the outbound tests: it plays the remote MX.

    with SMTPPeer("127.0.0.2", port, rcpt_replies={"x@b.test": "550 5.1.1 No"}) as peer:
        ... hermod delivers ...
        msg = peer.wait_messages(1)[0]   # .mail_from, .rcpts, .data, .tls

Every behaviour a test needs is a constructor argument: the greeting, the EHLO
keywords, per-recipient replies, the reply to MAIL or to the end of data, a
connection dropped at a stage, STARTTLS with a certificate. It records every
transaction and every command line it got. Threads only; it stops (and joins
its thread) on stop() or at the end of the with block.
"""

import socket
import ssl
import threading
import time


class Transaction:
    def __init__(self):
        self.helo = None
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = []
        self.data = b""
        self.tls = False
        self.peer = None


class SMTPPeer:
    def __init__(self, host, port, greeting="220 peer.test ESMTP test peer",
                 ehlo=("PIPELINING", "8BITMIME", "SIZE 100000000", "ENHANCEDSTATUSCODES",
                       "DSN", "SMTPUTF8"),
                 rcpt_replies=None, mail_reply="250 2.1.0 Ok", data_reply="250 2.0.0 Ok: queued",
                 data_replies=None, drop_at=None, tls_context=None, ehlo_reply=None,
                 name="peer.test", close_after_message=False, bdat_replies=None):
        """rcpt_replies: {address: reply line} (default "250 2.1.5 Ok");
        data_replies: a list of end-of-data replies used in turn (then
        data_reply); drop_at: "greeting", "mail", "rcpt", "data" or "dot" to
        close the connection there; tls_context: offer STARTTLS with it;
        ehlo_reply: a reply line that replaces the whole EHLO answer (e.g.
        "502 5.5.1 no EHLO" to force HELO); bdat_replies: replies to BDAT
        chunks in turn (then "250 2.0.0 Ok" for a chunk, data_reply for the
        LAST one); offer CHUNKING through ehlo."""
        self.host, self.port = host, port
        self.greeting = greeting
        self.ehlo = list(ehlo)
        self.rcpt_replies = dict(rcpt_replies or {})
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.data_replies = list(data_replies or [])
        self.drop_at = drop_at
        self.tls_context = tls_context
        self.ehlo_reply = ehlo_reply
        self.name = name
        self.close_after_message = close_after_message
        self.bdat_replies = list(bdat_replies or [])
        self.chunks = []  # (size, last) of every BDAT received
        self.messages = []
        self.commands = []
        self.connections = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = False
        self._threads = []
        self._conns = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop = True
        self._thread.join(10)
        # connections the client keeps open between messages end here
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(10)
        self._sock.close()

    def wait_messages(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("peer %s:%d got %d messages, expected %d; commands %r"
                                         % (self.host, self.port, len(self.messages), n,
                                            self.commands[-20:]))
                self._cond.wait(left)
            return list(self.messages)

    def wait_connections(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.connections < n:
            if time.monotonic() > deadline:
                raise AssertionError("peer got %d connections, expected %d"
                                     % (self.connections, n))
            time.sleep(0.05)

    # -- serving

    def _accept_loop(self):
        while not self._stop:
            try:
                conn, addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, addr), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn, addr):
        conn.settimeout(30)
        f = _LineIO(conn)
        try:
            self._session(f, addr)
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        finally:
            try:
                f.sock.close()
            except OSError:
                pass

    def _log(self, line):
        with self._lock:
            self.commands.append(line)

    def _session(self, f, addr):
        if self.drop_at == "greeting":
            return
        f.send(self.greeting)
        if not self.greeting.startswith("220"):
            # a refusing server still answers QUIT
            while True:
                line = f.readline()
                if line is None:
                    return
                self._log(line)
                if line.upper().startswith("QUIT"):
                    f.send("221 2.0.0 Bye")
                    return
                f.send("503 5.5.1 no service")
        tx = Transaction()
        tx.peer = addr
        tls = False
        while True:
            line = f.readline()
            if line is None:
                return
            self._log(line)
            cmd = line[:4].upper()
            if cmd in ("EHLO", "HELO"):
                tx = Transaction()
                tx.peer = addr
                tx.tls = tls
                tx.helo = line[5:]
                if cmd == "EHLO" and self.ehlo_reply is not None:
                    f.send(self.ehlo_reply)
                    continue
                if cmd == "HELO":
                    f.send("250 %s" % self.name)
                    continue
                kws = list(self.ehlo)
                if self.tls_context is not None and not tls:
                    kws.append("STARTTLS")
                lines = [self.name] + kws
                f.send("\r\n".join("250%s%s" % ("-" if i < len(lines) - 1 else " ", l)
                                   for i, l in enumerate(lines)))
            elif line.upper() == "STARTTLS" and self.tls_context is not None and not tls:
                f.send("220 2.0.0 Ready to start TLS")
                f.starttls(self.tls_context)
                with self._lock:
                    self._conns.append(f.sock)
                tls = True
                tx = Transaction()
                tx.tls = True
            elif cmd == "MAIL":
                if self.drop_at == "mail":
                    return
                reply = self.mail_reply
                if reply.startswith("250"):
                    tx.mail_from, _, tx.mail_params = line[10:].partition(">")
                    tx.mail_from = tx.mail_from.lstrip("<")
                    tx.mail_params = tx.mail_params.strip()
                    tx.rcpts = []
                    tx.rcpt_params = []
                    tx.tls = tls
                f.send(reply)
            elif cmd == "RCPT":
                if self.drop_at == "rcpt":
                    return
                addr_, _, params = line[8:].partition(">")
                addr_ = addr_.lstrip("<")
                reply = self.rcpt_replies.get(addr_, "250 2.1.5 Ok")
                if tx.mail_from is None:
                    reply = "503 5.5.1 MAIL first"
                if reply.startswith("250"):
                    tx.rcpts.append(addr_)
                    tx.rcpt_params.append(params.strip())
                f.send(reply)
            elif cmd == "DATA":
                if not tx.rcpts:
                    f.send("554 5.5.1 No valid recipients")
                    continue
                if self.drop_at == "data":
                    return
                f.send("354 End data with <CR><LF>.<CR><LF>")
                data = f.read_data()
                if data is None:
                    return
                if self.drop_at == "dot":
                    return
                reply = self.data_replies.pop(0) if self.data_replies else self.data_reply
                if reply.startswith("250"):
                    tx.data = data
                    with self._cond:
                        self.messages.append(tx)
                        self._cond.notify_all()
                f.send(reply)
                if self.close_after_message:
                    return
                nt = Transaction()
                nt.peer, nt.tls, nt.helo = addr, tls, tx.helo
                tx = nt
            elif cmd == "BDAT":
                # RFC 3030: BDAT size [LAST], then exactly size octets
                parts = line.split()
                size = int(parts[1])
                last = len(parts) > 2 and parts[2].upper() == "LAST"
                chunk = f.read_exact(size)
                if chunk is None:
                    return
                with self._lock:
                    self.chunks.append((size, last))
                tx.data += chunk
                if self.bdat_replies:
                    reply = self.bdat_replies.pop(0)
                elif last:
                    reply = self.data_replies.pop(0) if self.data_replies else self.data_reply
                else:
                    reply = "250 2.0.0 %d octets received" % size
                if not last:
                    f.send(reply)
                    continue
                if reply.startswith("250") and tx.rcpts:
                    with self._cond:
                        self.messages.append(tx)
                        self._cond.notify_all()
                f.send(reply)
                nt = Transaction()
                nt.peer, nt.tls, nt.helo = addr, tls, tx.helo
                tx = nt
            elif cmd == "RSET":
                nt = Transaction()
                nt.peer, nt.tls, nt.helo = addr, tls, tx.helo
                tx = nt
                f.send("250 2.0.0 Ok")
            elif cmd == "NOOP":
                f.send("250 2.0.0 Ok")
            elif cmd == "QUIT":
                f.send("221 2.0.0 Bye")
                return
            else:
                f.send("502 5.5.2 Command not recognized")


class _LineIO:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def readline(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 100000 or not self._fill():
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_data(self):
        """The message after DATA, dot-stuffing undone, CRLF kept."""
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            if not self._fill():
                return None
        whole = b"\r\n" + self.buf
        i = whole.index(b"\r\n.\r\n")
        body, self.buf = whole[2:i + 2], whole[i + 5:]
        lines = body.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)

    def starttls(self, ctx):
        self.buf = b""
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
