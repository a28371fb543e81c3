#!/usr/bin/python3
"""Independent check of hermod's DKIM signatures with dkimpy (Debian's
python3-dkim; Ed25519 needs python3-nacl). Run by tests/unit/test_dkim.c:

    dkim_verify.py DIR [-v]

DIR holds signed messages (*.eml) and the key records, one file per DNS name:
<selector>._domainkey.<domain>.txt holding the TXT value. Every signature of
every message must verify, and must fail on tampered copies (body changed,
Subject changed, a From: added). Prints a summary line (every check
with -v or when one went wrong); exit 0 when all
checks give the expected result, 1 otherwise, 2 when dkimpy is missing."""
import os
import sys

try:
    import dkim
except ImportError:
    print("dkim_verify: python3-dkim is not installed", file=sys.stderr)
    sys.exit(2)


def main():
    d = sys.argv[1]

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        path = os.path.join(d, name.rstrip(".") + ".txt")
        try:
            with open(path, "rb") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def count(msg):
        return sum(1 for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))

    def check(msg, idx):
        try:
            return dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            report.append(f"  dkimpy: {e}")
            return False

    def tamper_body(msg):
        head, sep, body = msg.partition(b"\r\n\r\n")
        return head + sep + body.replace(b"e", b"E", 1) + b"tampered\r\n"

    def tamper_subject(msg):
        return msg.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1)

    def add_from(msg):
        head, sep, body = msg.partition(b"\r\n\r\n")
        return head + b"\r\nFrom: evil@example.net" + sep + body

    failures = checks = 0
    report = []
    files = sorted(f for f in os.listdir(d) if f.endswith(".eml"))
    if not files:
        print("no messages")
        return 1
    for name in files:
        with open(os.path.join(d, name), "rb") as f:
            msg = f.read()
        n = count(msg)
        if n == 0:
            print(f"{name}: no signature")
            failures += 1
            continue
        for idx in range(n):
            cases = [("intact", msg, True)]
            if b"\r\nSubject: " in msg:
                cases.append(("subject changed", tamper_subject(msg), False))
            cases += [("body changed", tamper_body(msg), False),
                      ("From added", add_from(msg), False)]
            for what, m, want in cases:
                got = bool(check(m, idx))
                ok = got == want
                checks += 1
                failures += not ok
                report.append(f"{name} sig {idx} {what}: {'pass' if got else 'fail'}"
                              f" ({'ok' if ok else 'UNEXPECTED'})")
    if failures or "-v" in sys.argv[2:]:
        print("\n".join(report))
    print(f"dkim_verify: {checks} checks, {failures} unexpected")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
