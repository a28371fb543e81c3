"""hermod's IMAP answers for a corpus of tricky messages, compared with
Dovecot's (Debian's dovecot-imapd, a private instance on a loopback port,
refimap.py) for the same messages in the same run: BODYSTRUCTURE, BODY,
ENVELOPE, RFC822.SIZE and a few sections, byte for byte. The corpus is the MIME
and envelope corpora of the unit tests (tests/unit/data/mime, .../envelope):
nested multipart, message/rfc822, missing and duplicate boundaries, 8-bit
headers, encoded words, groups, comments, obsolete syntax, no body.

Answers are compared as IMAP data, not as octets: a string may be sent quoted
or as a literal (both servers choose differently, both are right), and in
BODY/BODYSTRUCTURE the case of strings does not count (types, subtypes,
parameter names and encodings are case-insensitive, RFC 2045; Dovecot echoes
the message's case, hermod writes lower case). Where hermod answers
differently on purpose, the difference is listed in KNOWN with the reason
(docs/mime.md, "Compared with Dovecot"); those items must still differ (an
entry that no longer does is stale). Every other item must be equal."""

import glob
import imaplib
import os
import re

import pytest

import refimap
from conftest import ALICE, PASSWORDS, REPO, module_server

CORPUS = sorted(glob.glob(os.path.join(REPO, "tests", "unit", "data", "mime", "*.eml")) +
                glob.glob(os.path.join(REPO, "tests", "unit", "data", "envelope", "*.eml")))

ITEMS = ["BODYSTRUCTURE", "BODY", "ENVELOPE", "RFC822.SIZE", "BODY[HEADER]", "BODY[TEXT]",
         "BODY[1]", "BODY[1.MIME]"]

_RFC822_END = ("the CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1); Dovecot "
               "counts it in a message/rfc822 part's body, size and lines")
_NO_BOUNDARY = ("a multipart without a usable boundary is read as text/plain (RFC 2046 5.1.1 "
                "requires one); Dovecot makes an empty multipart")
# (file name, item) -> why hermod's answer differs from Dovecot's
KNOWN = {
    ("forwarded.eml", "BODYSTRUCTURE"): _RFC822_END,
    ("forwarded.eml", "BODY"): _RFC822_END,
    ("forwarded.eml", "BODY[1]"): _RFC822_END,
    ("encoded_message.eml", "BODYSTRUCTURE"): _RFC822_END,
    ("encoded_message.eml", "BODY"): _RFC822_END,
    ("encoded_message.eml", "BODY[1]"): _RFC822_END,
    ("empty_boundary.eml", "BODYSTRUCTURE"): _NO_BOUNDARY,
    ("empty_boundary.eml", "BODY"): _NO_BOUNDARY,
    ("empty_boundary.eml", "BODY[1]"): _NO_BOUNDARY,
    ("empty_boundary.eml", "BODY[1.MIME]"): _NO_BOUNDARY,
    ("no_boundary.eml", "BODYSTRUCTURE"): _NO_BOUNDARY,
    ("no_boundary.eml", "BODY"): _NO_BOUNDARY,
    ("no_boundary.eml", "BODY[1]"): _NO_BOUNDARY,
    ("no_boundary.eml", "BODY[1.MIME]"): _NO_BOUNDARY,
    ("bad_type.eml", "BODYSTRUCTURE"): "an invalid Content-Type is read as text/plain (RFC 2045 "
                                       "5.2); Dovecot echoes the garbage",
    ("bad_type.eml", "BODY"): "as BODYSTRUCTURE",
    ("dup_boundary.eml", "BODYSTRUCTURE"): "a parameter given twice is listed once (the first); "
                                           "Dovecot lists both",
    ("rfc2231.eml", "BODYSTRUCTURE"): "RFC 2231 continuations and charsets decoded, as RFC 9051 "
                                      "7.5.2 asks; Dovecot keeps them encoded",
    ("rfc2231.eml", "BODY"): "as BODYSTRUCTURE",
    ("11-duplicate.eml", "ENVELOPE"): "the first occurrence of a field is used, Dovecot the last",
    ("12-ids.eml", "ENVELOPE"): "blanks after a Message-ID are not part of it; Dovecot keeps them",
    ("14-garbage.eml", "ENVELOPE"): "addresses after garbage kept; Dovecot stops",
    ("15-obs.eml", "ENVELOPE"): "obsolete syntax read as RFC 5322 4.4; Dovecot gives MISSING_MAILBOX",
    ("20-nested.eml", "ENVELOPE"): "nested groups: Dovecot loses the members after the inner one",
    ("21-blanks.eml", "ENVELOPE"): "quoted-pairs in a display name (RFC 5322 3.2.4) and blanks "
                                   "after a date; Dovecot stops at the backslash",
    ("03-groups.eml", "ENVELOPE"): "groups read as RFC 5322 3.4; Dovecot gives MISSING_MAILBOX",
}


@pytest.fixture(scope="module")
def hsrv(hermod_bin):
    yield from module_server(hermod_bin, "imapref", imap=True,
                             extra={"auth": {"allow_plaintext_on_loopback": "yes"}})


@pytest.fixture(scope="module")
def dovecot():
    with refimap.dovecot_imap() as ref:
        yield ref


def _fetch_all(host, port, user, password, box):
    """{file name: {item: answer}} after APPENDing the corpus to box."""
    c = imaplib.IMAP4(host, port)
    c.login(user, password)
    typ, _ = c.create(box)
    assert typ == "OK"
    for path in CORPUS:
        with open(path, "rb") as f:
            typ, data = c.append(box, None, None, f.read())
        assert typ == "OK", (path, data)
    typ, _ = c.select(box, readonly=True)
    assert typ == "OK"
    out = {}
    for seq, path in enumerate(CORPUS, 1):
        name = os.path.basename(path)
        out[name] = {}
        for item in ITEMS:
            typ, data = c.fetch(str(seq), "(%s)" % item)
            assert typ == "OK", (name, item, data)
            out[name][item] = _flatten(data)
    c.logout()
    return out


def _flatten(data):
    """One FETCH response as bytes, literals inline (as {n}\\r\\n...)."""
    parts = []
    for d in data:
        if isinstance(d, tuple):
            parts.append(d[0] + b"\r\n" + d[1])
        elif d is not None:
            parts.append(d)
    # the sequence number is not compared
    return re.sub(rb"^\d+ \(", b"(", b"".join(parts))


def parse_imap(data):
    """IMAP data (RFC 9051 4) as Python values: lists for parenthesized lists,
    None for NIL, bytes for atoms, numbers, quoted strings and literals (so a
    string reads the same however it was sent)."""
    pos = 0

    def value():
        nonlocal pos
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            out = []
            while data[pos:pos + 1] != b")":
                if data[pos:pos + 1] == b" ":
                    pos += 1
                    continue
                out.append(value())
            pos += 1
            return out
        if c == b'"':
            pos += 1
            out = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                out += data[pos:pos + 1]
                pos += 1
            pos += 1
            return bytes(out)
        if c == b"{":
            end = data.index(b"}", pos)
            n = int(data[pos + 1:end].rstrip(b"+"))
            pos = end + 3
            v = data[pos:pos + n]
            pos += n
            return v
        m = re.compile(rb"[^ ()]+(\[[^\]]*\](<\d+>)?)?").match(data, pos)
        assert m, data[pos:pos + 40]
        pos = m.end()
        return None if m.group(0) == b"NIL" else m.group(0)

    v = value()
    assert pos == len(data), (data, pos)
    return v


def _lower(v):
    if isinstance(v, list):
        return [_lower(x) for x in v]
    return v.lower() if isinstance(v, bytes) else v


def _same(item, a, b):
    va, vb = parse_imap(a), parse_imap(b)
    if item in ("BODY", "BODYSTRUCTURE"):
        va, vb = _lower(va), _lower(vb)
    return va == vb


def test_corpus_matches_dovecot(hsrv, dovecot):
    assert len(CORPUS) >= 40
    port, user, password = dovecot
    ref = _fetch_all("127.0.0.1", port, user, password, "Corpus")
    got = _fetch_all(hsrv.host, hsrv.imap_port, ALICE, PASSWORDS[ALICE], "Corpus")
    mismatches = []
    for name in sorted(ref):
        for item in ITEMS:
            if (name, item) in KNOWN:
                # still different (else the entry is stale: remove it)
                assert not _same(item, got[name][item], ref[name][item]), (name, item)
                continue
            if not _same(item, got[name][item], ref[name][item]):
                mismatches.append("%s %s\n  hermod:  %r\n  dovecot: %r" % (
                    name, item, got[name][item][:600], ref[name][item][:600]))
    assert not mismatches, "%d differences:\n%s" % (len(mismatches), "\n".join(mismatches))
    hsrv.assert_serves()
