#include "mail/text.h"

#include <errno.h>
#include <iconv.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "core/base64.h"
#include "core/str.h"

/* ---- UTF-8 helpers ---- */

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* windows-1252 0x80..0x9f (WHATWG encoding index); 0 where undefined. */
static const uint16_t cp1252_high[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

/* The code point of octet c >= 0x80 read as windows-1252 (U+FFFD for the
 * five undefined ones). */
static uint32_t cp1252_cp(unsigned char c)
{
	if (c >= 0xa0)
		return c;
	uint32_t cp = cp1252_high[c - 0x80];
	return cp ? cp : 0xfffd;
}

static int put_cp(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(out, b, n);
}

/* One UTF-8 sequence (RFC 3629) at s[0] >= 0x80: its length with *cp_r,
 * 0 when it is not well-formed (overlong, surrogate, > U+10FFFF, bad
 * continuation), -1 when s[0 .. n) is a well-formed start cut short. */
static int utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	unsigned char c = s[0];
	size_t need;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
		/* reject overlongs, surrogates and > U+10FFFF as soon as the
		 * second octet tells (so a cut sequence is a real prefix) */
		if (i == 1) {
			if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
			    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
				return 0;
		}
	}
	*cp_r = cp;
	return (int)need;
}

/* Appends s[0 .. n) without its NUL octets. */
static int append_no_nul(struct buf *out, const char *s, size_t n)
{
	while (n > 0) {
		const char *z = memchr(s, '\0', n);
		size_t l = z != NULL ? (size_t)(z - s) : n;
		if (l > 0 && buf_append(out, s, l) < 0)
			return -1;
		if (z == NULL)
			break;
		s += l + 1;
		n -= l + 1;
	}
	return 1;
}

/* UTF-8 with anything else read as windows-1252 (strict: U+FFFD): sequences starting before
 * stop are written; returns where it stopped (a sequence cut at n when not
 * final, or stop). */
static size_t utf8_run(const unsigned char *s, size_t n, size_t stop, bool final, bool strict,
                       struct buf *out, int *err)
{
	size_t i = 0;
	while (i < stop && !*err) {
		size_t j = i;
		while (j < stop && s[j] < 0x80 && s[j] != 0)
			j++;
		if (j > i && buf_append(out, s + i, j - i) < 0)
			*err = 1;
		i = j;
		if (i >= stop)
			break;
		if (s[i] == 0) {
			i++;
			continue;
		}
		uint32_t cp;
		int l = utf8_seq(s + i, n - i, &cp);
		if (l < 0 && !final)
			return i;
		if (l > 0) {
			if (buf_append(out, s + i, (size_t)l) < 0)
				*err = 1;
			i += (size_t)l;
		} else {
			if (put_cp(out, strict ? 0xfffd : cp1252_cp(s[i])) < 0)
				*err = 1;
			i++;
		}
	}
	return i;
}

/* ---- charsets ---- */

enum charset_kind {
	CHARSET_UTF8,        /* UTF-8, else windows-1252 per octet */
	CHARSET_UTF8_STRICT, /* declared UTF-8: anything else is U+FFFD */
	CHARSET_CP1252,      /* windows-1252 */
	CHARSET_ICONV,
};

#define CHARSET_CARRY_MAX 16 /* a cut multi-octet sequence kept between calls */

struct mail_charset {
	enum charset_kind kind;
	iconv_t cd;
	size_t ncarry;
	unsigned char carry[CHARSET_CARRY_MAX];
};

static bool name_is(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	if (n != l)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

static bool name_in(const char *s, size_t n, const char *const *list)
{
	for (; *list != NULL; list++)
		if (name_is(s, n, *list))
			return true;
	return false;
}

static const char *const names_utf8_strict[] = {"utf-8", "utf8", "unicode-1-1-utf-8", NULL};
static const char *const names_utf8[] = {
    "us-ascii",  "ascii",   "ansi_x3.4-1968", "iso646-us", "us",   "unknown-8bit",
    "x-unknown", "unknown", "default",        "8bit",      "7bit", "x-user-defined",
    NULL};
static const char *const names_cp1252[] = {
    "iso-8859-1", "iso8859-1",       "iso_8859-1", "latin1",       "l1",
    "iso-ir-100", "cp819",           "ibm819",     "windows-1252", "cp1252",
    "x-cp1252",   "iso_8859-1:1987", NULL};
static const char *const names_gb[] = {"gb2312",     "gbk",      "x-gbk",   "euc-cn",  "cp936",
                                       "gb_2312-80", "csgb2312", "chinese", "gb18030", NULL};
static const char *const names_sjis[] = {"shift_jis", "shift-jis",  "sjis",
                                         "x-sjis",    "ms_kanji",   "windows-31j",
                                         "cp932",     "csshiftjis", NULL};
static const char *const names_kr[] = {"ks_c_5601-1987", "euc-kr",      "cp949", "ks_c_5601",
                                       "ksc5601",        "windows-949", NULL};

int mail_charset_open(const char *name, size_t len, struct mail_charset **cs_r)
{
	*cs_r = NULL;
	enum charset_kind kind = CHARSET_ICONV;
	const char *iname = NULL;
	char nbuf[64];
	while (len > 0 && (name[0] == ' ' || name[0] == '\t')) {
		name++;
		len--;
	}
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	if (name == NULL || len == 0 || name_in(name, len, names_utf8)) {
		kind = CHARSET_UTF8;
	} else if (name_in(name, len, names_utf8_strict)) {
		kind = CHARSET_UTF8_STRICT;
	} else if (name_in(name, len, names_cp1252)) {
		kind = CHARSET_CP1252;
	} else if (name_in(name, len, names_gb)) {
		iname = "GB18030";
	} else if (name_in(name, len, names_sjis)) {
		iname = "CP932";
	} else if (name_in(name, len, names_kr)) {
		iname = "CP949";
	} else {
		/* a MIME charset name (RFC 2978 mime-charset-chars); no '/', so
		 * no iconv suffix like //TRANSLIT can be passed */
		if (len >= sizeof(nbuf))
			return 0;
		for (size_t i = 0; i < len; i++) {
			char c = name[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') ||
			      (c != '\0' && strchr("!#$%&'+-^_`{}~.:()", c) != NULL)))
				return 0;
		}
		memcpy(nbuf, name, len);
		nbuf[len] = '\0';
		iname = nbuf;
	}
	struct mail_charset *cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return -1;
	cs->kind = kind;
	if (kind == CHARSET_ICONV) {
		cs->cd = iconv_open("UTF-8", iname);
		if (cs->cd == (iconv_t)-1) {
			int e = errno;
			free(cs);
			return e == ENOMEM ? -1 : 0;
		}
	}
	*cs_r = cs;
	return 1;
}

void mail_charset_close(struct mail_charset **csp)
{
	struct mail_charset *cs = *csp;
	if (cs == NULL)
		return;
	if (cs->kind == CHARSET_ICONV)
		iconv_close(cs->cd);
	free(cs);
	*csp = NULL;
}

static int convert_utf8(struct mail_charset *cs, const unsigned char *in, size_t len, bool final,
                        struct buf *out)
{
	int err = 0;
	bool strict = cs->kind == CHARSET_UTF8_STRICT;
	if (cs->ncarry > 0) {
		/* finish the cut sequence with the first octets of in */
		unsigned char tmp[CHARSET_CARRY_MAX + 4];
		size_t take = len < 4 ? len : 4, t = cs->ncarry + take;
		memcpy(tmp, cs->carry, cs->ncarry);
		memcpy(tmp + cs->ncarry, in, take);
		bool all = take == len;
		size_t pos =
		    utf8_run(tmp, t, all ? t : cs->ncarry, final && all, strict, out, &err);
		if (all) {
			cs->ncarry = t - pos;
			memmove(cs->carry, tmp + pos, cs->ncarry);
			return err ? -1 : 1;
		}
		/* a sequence starting in the carry ends within tmp */
		in += pos - cs->ncarry;
		len -= pos - cs->ncarry;
		cs->ncarry = 0;
	}
	size_t pos = utf8_run(in, len, len, final, strict, out, &err);
	cs->ncarry = len - pos;
	memcpy(cs->carry, in + pos, cs->ncarry);
	return err ? -1 : 1;
}

static int convert_cp1252(const unsigned char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && in[j] < 0x80 && in[j] != 0)
			j++;
		if (j > i && buf_append(out, in + i, j - i) < 0)
			return -1;
		i = j;
		if (i < len) {
			if (in[i] != 0 && put_cp(out, cp1252_cp(in[i])) < 0)
				return -1;
			i++;
		}
	}
	return 1;
}

#define ICONV_CHUNK 4096

static int convert_iconv(struct mail_charset *cs, const unsigned char *in, size_t len, bool final,
                         struct buf *out)
{
	char work[CHARSET_CARRY_MAX + ICONV_CHUNK];
	char obuf[4 * ICONV_CHUNK];
	do {
		size_t take = len < ICONV_CHUNK ? len : ICONV_CHUNK;
		memcpy(work, cs->carry, cs->ncarry);
		if (take > 0)
			memcpy(work + cs->ncarry, in, take);
		size_t n = cs->ncarry + take;
		cs->ncarry = 0;
		in += take;
		len -= take;
		bool last = final && len == 0;
		char *ip = work;
		size_t il = n;
		while (il > 0) {
			char *op = obuf;
			size_t ol = sizeof(obuf);
			size_t r = iconv(cs->cd, &ip, &il, &op, &ol);
			int e = errno;
			if (append_no_nul(out, obuf, (size_t)(op - obuf)) < 0)
				return -1;
			if (r != (size_t)-1)
				break;
			if (e == E2BIG)
				continue;
			if (e == EINVAL && !last && il <= CHARSET_CARRY_MAX) {
				/* cut at the end of this piece: kept for the next */
				memcpy(cs->carry, ip, il);
				cs->ncarry = il;
				break;
			}
			/* invalid (or cut at the very end): one U+FFFD, skip an octet */
			if (buf_append(out, REPLACEMENT, 3) < 0)
				return -1;
			ip++;
			il--;
		}
	} while (len > 0);
	if (final) {
		/* end the text: shift sequences out, then the initial state */
		char *op = obuf;
		size_t ol = sizeof(obuf);
		(void)iconv(cs->cd, NULL, NULL, &op, &ol);
		if (append_no_nul(out, obuf, (size_t)(op - obuf)) < 0)
			return -1;
		(void)iconv(cs->cd, NULL, NULL, NULL, NULL);
		cs->ncarry = 0;
	}
	return 1;
}

int mail_charset_convert(struct mail_charset *cs, const void *in, size_t len, bool final,
                         struct buf *out)
{
	if (in == NULL || len == 0) {
		in = "";
		len = 0;
	}
	switch (cs->kind) {
	case CHARSET_UTF8:
	case CHARSET_UTF8_STRICT:
		return convert_utf8(cs, in, len, final, out);
	case CHARSET_CP1252:
		return convert_cp1252(in, len, out);
	default:
		return convert_iconv(cs, in, len, final, out);
	}
}

/* ---- body decoder ---- */

enum text_cte {
	CTE_IDENTITY,
	CTE_BASE64,
	CTE_QP,
};

/* Quoted-printable lines longer than this are decoded in pieces (RFC 2045
 * 6.7 allows 76 octets; blanks at the end of such a piece stay). */
#define QP_LINE_MAX 1024

struct mail_text_decoder {
	enum text_cte cte;
	uint32_t b64_acc;
	unsigned b64_n;
	size_t nline;
	char line[QP_LINE_MAX];
	struct mail_charset *cs;
	struct buf tmp; /* decoded octets of one call, before the charset */
};

struct mail_text_decoder *mail_text_decoder_new(const char *cte, size_t cte_len,
                                                const char *charset, size_t charset_len)
{
	struct mail_text_decoder *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	buf_init(&d->tmp, 0);
	if (cte != NULL) {
		while (cte_len > 0 && (cte[0] == ' ' || cte[0] == '\t')) {
			cte++;
			cte_len--;
		}
		while (cte_len > 0 && (cte[cte_len - 1] == ' ' || cte[cte_len - 1] == '\t'))
			cte_len--;
		if (name_is(cte, cte_len, "base64"))
			d->cte = CTE_BASE64;
		else if (name_is(cte, cte_len, "quoted-printable"))
			d->cte = CTE_QP;
	}
	int rc = mail_charset_open(charset, charset != NULL ? charset_len : 0, &d->cs);
	if (rc == 0)
		rc = mail_charset_open(NULL, 0, &d->cs); /* unknown: as UTF-8 */
	if (rc < 0) {
		free(d);
		return NULL;
	}
	return d;
}

void mail_text_decoder_free(struct mail_text_decoder **dp)
{
	struct mail_text_decoder *d = *dp;
	if (d == NULL)
		return;
	mail_charset_close(&d->cs);
	buf_free(&d->tmp);
	free(d);
	*dp = NULL;
}

/* The octets of a base64 quantum of n (2..4) symbols in acc. */
static int b64_flush(struct mail_text_decoder *d, struct buf *o)
{
	unsigned char b[3];
	uint32_t a = d->b64_acc << (6 * (4 - d->b64_n));
	b[0] = (unsigned char)(a >> 16);
	b[1] = (unsigned char)(a >> 8);
	b[2] = (unsigned char)a;
	size_t n = d->b64_n >= 2 ? d->b64_n - 1 : 0;
	d->b64_n = 0;
	d->b64_acc = 0;
	return n ? buf_append(o, b, n) : 1;
}

static int b64_feed(struct mail_text_decoder *d, const unsigned char *s, size_t n, struct buf *o)
{
	for (size_t i = 0; i < n; i++) {
		int v = base64_value(s[i]);
		if (v >= 0) {
			d->b64_acc = (d->b64_acc << 6) | (uint32_t)v;
			if (++d->b64_n == 4 && b64_flush(d, o) < 0)
				return -1;
		} else if (s[i] == '=' && d->b64_n > 0 && b64_flush(d, o) < 0) {
			return -1;
		}
	}
	return 1;
}

/* Decodes s[0 .. n) of a quoted-printable line; escapes starting before
 * stop are decoded. Returns where it stopped. */
static size_t qp_run(const char *s, size_t n, size_t stop, struct buf *o, int *err)
{
	size_t i = 0;
	while (i < stop && !*err) {
		const char *eq = memchr(s + i, '=', stop - i);
		size_t j = eq != NULL ? (size_t)(eq - s) : stop;
		if (j > i && buf_append(o, s + i, j - i) < 0)
			*err = 1;
		i = j;
		if (i >= stop)
			break;
		int h1 = i + 1 < n ? str_hexval((unsigned char)s[i + 1]) : -1;
		int h2 = i + 2 < n ? str_hexval((unsigned char)s[i + 2]) : -1;
		if (h1 >= 0 && h2 >= 0) {
			char c = (char)(h1 * 16 + h2);
			if (buf_append(o, &c, 1) < 0)
				*err = 1;
			i += 3;
		} else {
			if (buf_append(o, "=", 1) < 0)
				*err = 1;
			i++;
		}
	}
	return i;
}

/* A whole line (lf: it ended with LF; else the body ended without one). */
static int qp_line(const char *s, size_t n, bool lf, struct buf *o)
{
	int err = 0;
	bool cr = false;
	if (lf && n > 0 && s[n - 1] == '\r') {
		cr = true;
		n--;
	}
	/* RFC 2045 6.7 (3): blanks at the end of an encoded line are padding */
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	/* (5): a soft line break */
	bool soft = n > 0 && s[n - 1] == '=';
	if (soft)
		n--;
	qp_run(s, n, n, o, &err);
	if (!err && !soft && lf && buf_append(o, cr ? "\r\n" : "\n", cr ? 2 : 1) < 0)
		err = 1;
	return err ? -1 : 1;
}

static int qp_feed(struct mail_text_decoder *d, const char *s, size_t n, struct buf *o)
{
	while (n > 0) {
		const char *nl = memchr(s, '\n', n);
		size_t l = nl != NULL ? (size_t)(nl - s) : n;
		if (nl != NULL && d->nline == 0) {
			/* a whole line in the input: no copy */
			if (qp_line(s, l, true, o) < 0)
				return -1;
		} else {
			size_t room = QP_LINE_MAX - d->nline;
			size_t take = l < room ? l : room;
			memcpy(d->line + d->nline, s, take);
			d->nline += take;
			if (take < l || (nl == NULL && d->nline == QP_LINE_MAX)) {
				/* a long line: decode all but a possible cut escape */
				int err = 0;
				size_t pos = qp_run(d->line, d->nline, d->nline - 2, o, &err);
				if (err)
					return -1;
				memmove(d->line, d->line + pos, d->nline - pos);
				d->nline -= pos;
				s += take;
				n -= take;
				continue;
			}
			if (nl != NULL) {
				if (qp_line(d->line, d->nline, true, o) < 0)
					return -1;
				d->nline = 0;
			}
		}
		if (nl == NULL)
			break;
		s += l + 1;
		n -= l + 1;
	}
	return 1;
}

int mail_text_decoder_feed(struct mail_text_decoder *d, const void *data, size_t len,
                           struct buf *out)
{
	const char *s = data;
	if (d->cte == CTE_IDENTITY)
		return mail_charset_convert(d->cs, s, len, false, out);
	buf_reset(&d->tmp);
	int rc = d->cte == CTE_BASE64 ? b64_feed(d, (const unsigned char *)s, len, &d->tmp)
	                              : qp_feed(d, s, len, &d->tmp);
	if (rc < 0)
		return -1;
	return mail_charset_convert(d->cs, d->tmp.data, d->tmp.len, false, out);
}

int mail_text_decoder_finish(struct mail_text_decoder *d, struct buf *out)
{
	buf_reset(&d->tmp);
	if (d->cte == CTE_BASE64 && d->b64_n > 0 && b64_flush(d, &d->tmp) < 0)
		return -1;
	if (d->cte == CTE_QP && d->nline > 0) {
		if (qp_line(d->line, d->nline, false, &d->tmp) < 0)
			return -1;
		d->nline = 0;
	}
	return mail_charset_convert(d->cs, d->tmp.data, d->tmp.len, true, out);
}

/* ---- case folding ---- */

static pthread_once_t fold_once = PTHREAD_ONCE_INIT;
static locale_t fold_locale;

static void fold_init(void)
{
	fold_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (fold_locale == (locale_t)0)
		fold_locale = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
}

/* Simple case foldings (Unicode CaseFolding.txt, status C and S) that are
 * not the lower case of the character. Sorted. */
static const struct {
	uint32_t from, to;
} fold_extra[] = {
    {0x00b5, 0x03bc}, {0x017f, 0x0073}, {0x0345, 0x03b9}, {0x03c2, 0x03c3}, {0x03d0, 0x03b2},
    {0x03d1, 0x03b8}, {0x03d5, 0x03c6}, {0x03d6, 0x03c0}, {0x03f0, 0x03ba}, {0x03f1, 0x03c1},
    {0x03f5, 0x03b5}, {0x1c80, 0x0432}, {0x1c81, 0x0434}, {0x1c82, 0x043e}, {0x1c83, 0x0441},
    {0x1c84, 0x0442}, {0x1c85, 0x0442}, {0x1c86, 0x044a}, {0x1c87, 0x0463}, {0x1c88, 0xa64b},
    {0x1e9b, 0x1e61}, {0x1fbe, 0x03b9},
};

static uint32_t fold_cp(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	/* Cherokee folds to the upper case letters (Unicode 8) */
	if (cp >= 0x13f8 && cp <= 0x13fd)
		return cp - 8;
	if (cp >= 0xab70 && cp <= 0xabbf)
		return cp - 0xab70 + 0x13a0;
	size_t lo = 0, hi = sizeof(fold_extra) / sizeof(fold_extra[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (fold_extra[mid].from == cp)
			return fold_extra[mid].to;
		if (fold_extra[mid].from < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (fold_locale != (locale_t)0) {
		wint_t l = towlower_l((wint_t)cp, fold_locale);
		/* Cherokee upper case letters are the folded form */
		if (!(cp >= 0x13a0 && cp <= 0x13f5))
			return (uint32_t)l;
	}
	return cp;
}

int mail_text_fold(const char *s, size_t len, struct buf *out)
{
	pthread_once(&fold_once, fold_init);
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		/* ASCII runs in one append */
		size_t j = i;
		while (j < len && u[j] < 0x80 && !(u[j] >= 'A' && u[j] <= 'Z'))
			j++;
		if (j > i && buf_append(out, s + i, j - i) < 0)
			return -1;
		i = j;
		if (i >= len)
			break;
		uint32_t cp;
		if (u[i] < 0x80) {
			cp = u[i++];
		} else {
			int l = utf8_seq(u + i, len - i, &cp);
			if (l > 0) {
				i += (size_t)l;
			} else {
				cp = cp1252_cp(u[i]);
				i++;
			}
		}
		if (put_cp(out, fold_cp(cp)) < 0)
			return -1;
	}
	return 1;
}
