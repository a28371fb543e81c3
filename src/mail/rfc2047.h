/* Header text for display and SEARCH: RFC 2047 encoded words decoded and
 * everything converted to UTF-8. Pure: no I/O, no logging; never fails on
 * bad input (only on out of memory). The rules are in docs/mime.md. */
#ifndef HERMOD_MAIL_RFC2047_H
#define HERMOD_MAIL_RFC2047_H

#include <stddef.h>

#include "core/buf.h"

/* Limits: encoded words of at most RFC2047_WORD_MAX octets are recognised
 * (RFC 2047 2 allows 75; longer ones are common), and at most
 * RFC2047_CHARSETS_MAX charset converters are opened per call (past that,
 * words in yet another charset stay as they are). */
#define RFC2047_WORD_MAX 4096
#define RFC2047_CHARSETS_MAX 32

/* An unstructured header value (or display name) for display and SEARCH:
 * unfolded (RFC 5322 2.2.3: CR and LF removed), RFC 2047 encoded words
 * "=?charset[*lang]?B|Q?text?=" decoded (B and Q, either case; the RFC 2231
 * *lang suffix ignored) and converted to UTF-8 (mail/text.h charsets, so
 * iconv's); blanks between two encoded words dropped (RFC 2047 6.2), and
 * the octets of adjacent encoded words in the same charset joined before
 * conversion (a character may be split between words). Encoded words are
 * also recognised inside other text (as mailers write them). Words that
 * cannot be decoded stay as they are (unknown charset, bad base64, no
 * "?=" end, longer than RFC2047_WORD_MAX); octets that do not convert
 * become U+FFFD. Raw 8-bit octets are kept when valid UTF-8, else read as
 * windows-1252. NUL octets are dropped; CR, LF and other controls decoded
 * from encoded words become a space. Appends to out. 1 ok, -1 out of
 * memory. */
int mail_header_decode(const char *value, size_t len, struct buf *out);

#endif
