/* libFuzzer target: encoded-word decoding, body text decoding, case
 * folding and dates. Every output must be well-formed UTF-8 without NUL;
 * the body decoder must give the same text however its input is split;
 * folding must be idempotent. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/date.h"
#include "mail/rfc2047.h"
#include "mail/text.h"

static void check_utf8(const struct buf *b)
{
	const unsigned char *s = (const unsigned char *)b->data;
	size_t n = b->len, i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t need;
		if (c == 0)
			abort();
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 2;
		else if (c >= 0xe0 && c <= 0xef)
			need = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 4;
		else
			abort();
		if (i + need > n)
			abort();
		uint32_t cp = c & (0x7f >> need);
		for (size_t k = 1; k < need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				abort();
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			abort();
		i += need;
	}
}

static const char *const charsets[] = {
    NULL,     "utf-8",       "us-ascii", "iso-8859-1", "iso-8859-15", "windows-1252",
    "koi8-r", "iso-2022-jp", "gb2312",   "gbk",        "shift_jis",   "euc-kr",
    "big5",   "utf-16",      "utf-7",    "x-unknown",  "euc-jp",      "iso-2022-kr",
};
static const char *const ctes[] = {NULL, "base64", "quoted-printable", "8bit"};

static void decode(const char *cte, const char *cs, const uint8_t *d, size_t n, size_t piece,
                   struct buf *out)
{
	struct mail_text_decoder *dec =
	    mail_text_decoder_new(cte, cte ? strlen(cte) : 0, cs, cs ? strlen(cs) : 0);
	if (dec == NULL)
		abort();
	for (size_t i = 0; i < n; i += piece) {
		size_t k = n - i < piece ? n - i : piece;
		if (mail_text_decoder_feed(dec, d + i, k, out) != 1)
			abort();
	}
	if (mail_text_decoder_finish(dec, out) != 1)
		abort();
	mail_text_decoder_free(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);

	if (mail_header_decode(s, size, &a) != 1)
		abort();
	check_utf8(&a);
	buf_reset(&b);
	if (mail_text_fold(a.data ? a.data : "", a.len, &b) != 1)
		abort();
	check_utf8(&b);
	buf_reset(&a);
	if (mail_text_fold(b.data ? b.data : "", b.len, &a) != 1)
		abort();
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();

	int64_t t;
	int off;
	if (mail_date_parse(s, size, &t, &off) == 1 && (off < -6000 || off > 6000))
		abort();

	if (size >= 2) {
		const char *cs = charsets[data[0] % (sizeof(charsets) / sizeof(charsets[0]))];
		const char *cte = ctes[(data[0] >> 5) % 4];
		size_t piece = data[1] % 13 + 1;
		buf_reset(&a);
		buf_reset(&b);
		decode(cte, cs, data + 2, size - 2, size, &a);
		decode(cte, cs, data + 2, size - 2, piece, &b);
		check_utf8(&a);
		if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
			abort();
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
