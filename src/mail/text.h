/* Message text as UTF-8, for display and SEARCH: charset conversion
 * (iconv, with built-in UTF-8 and windows-1252), a streaming decoder of a
 * part's body (Content-Transfer-Encoding, then charset) and case folding.
 *
 * Nothing here fails on bad input: invalid octets become U+FFFD, unknown
 * charsets are read as UTF-8 (octets that are not UTF-8 as windows-1252),
 * NUL octets are dropped. Only out of memory is an error. Pure: no I/O, no
 * logging; memory per converter and decoder is a few KiB whatever the
 * input. The rules are in docs/mime.md. */
#ifndef HERMOD_MAIL_TEXT_H
#define HERMOD_MAIL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* ---- charsets ---- */
struct mail_charset;

/* A converter from the charset named name[0 .. len) (MIME charset name,
 * case-insensitive; NULL or len 0 means us-ascii/utf-8) to UTF-8. Aliases
 * are read as their common supersets: iso-8859-1 and us-ascii with 8-bit
 * octets as windows-1252, gb2312/gbk as GB18030, shift_jis as CP932,
 * ks_c_5601-1987/euc-kr as CP949. 1 ok (*cs_r), 0 a charset iconv does not
 * know (or a name that is not a charset name), -1 out of memory. */
int mail_charset_open(const char *name, size_t len, struct mail_charset **cs_r);
/* Converts in[0 .. len) and appends UTF-8 to out. A sequence cut at the end
 * of in is kept for the next call; final: the text ends here (a cut
 * sequence becomes U+FFFD and the converter starts afresh for the next
 * text). 1 ok, -1 out of memory. */
int mail_charset_convert(struct mail_charset *cs, const void *in, size_t len, bool final,
                         struct buf *out);
void mail_charset_close(struct mail_charset **cs);

/* ---- a part's body as UTF-8 text (SEARCH BODY/TEXT) ---- */
struct mail_text_decoder;
/* cte: Content-Transfer-Encoding value (NULL/unknown: identity -- 7bit,
 * 8bit and binary are identity too); charset: NULL means us-ascii/utf-8;
 * an unknown charset is read as that. NULL on out of memory. */
struct mail_text_decoder *mail_text_decoder_new(const char *cte, size_t cte_len,
                                                const char *charset, size_t charset_len);
/* Decodes body octets fed in pieces of any size (the result does not
 * depend on the split); UTF-8 appended to out. base64: characters outside
 * the alphabet are skipped, '=' ends a quantum. quoted-printable (RFC 2045
 * 6.7): "=XX" decoded (hex digits of either case), soft line breaks
 * removed, blanks at the end of a line removed, an "=" not starting either
 * kept as it is. Line ends are kept as they are (CRLF or LF). 1 ok, -1 out
 * of memory. */
int mail_text_decoder_feed(struct mail_text_decoder *d, const void *data, size_t len,
                           struct buf *out);
/* The body has ended: what is pending is written. 1 ok, -1 out of memory.
 * The decoder can then only be freed. */
int mail_text_decoder_finish(struct mail_text_decoder *d, struct buf *out);
void mail_text_decoder_free(struct mail_text_decoder **d);

/* ---- case folding ----
 * Case-insensitive substring search for SEARCH (RFC 9051 6.4.4: the
 * i;unicode-casemap of RFC 5051, simplified): folds the UTF-8 text
 * s[0 .. len) into out: every character to its lower case by towlower_l(3)
 * in glibc's C.UTF-8 locale (all of Unicode's simple lower-case mappings),
 * plus the simple case foldings that are not lower-casings (final sigma,
 * micro sign, long s, Greek symbol variants, Cherokee, ...). Octets that
 * are not UTF-8 are read as windows-1252. Without the C.UTF-8 locale only
 * ASCII and the extra foldings are applied. No normalization (RFC 5051's
 * decomposition is not done). 1 ok, -1 out of memory. */
int mail_text_fold(const char *s, size_t len, struct buf *out);

#endif
