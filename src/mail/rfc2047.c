#include "mail/rfc2047.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/str.h"
#include "mail/text.h"

struct ew {
	const char *charset; /* without the *lang suffix */
	size_t charset_len;
	char enc; /* 'b' or 'q' */
	const char *text;
	size_t text_len;
	size_t end; /* offset after "?=" */
};

/* Where the encoded texts of the words tried so far end: the first "?="
 * and the first octet that cannot be in an encoded text at or after the
 * last text start (texts start further on each time, so the two only move
 * forward: linear time however many "=?" a value holds). */
struct ew_scan {
	size_t from; /* the positions below hold for texts starting here or later */
	size_t qe;   /* first "?=" at or after from (n: none) */
	size_t stop; /* first blank, control or 8-bit octet at or after from */
};

static void ew_scan_to(struct ew_scan *sc, const char *v, size_t n, size_t t)
{
	if (t < sc->from)
		return; /* cannot happen: starts only grow */
	if (sc->qe < t) {
		size_t k = t;
		while (k + 1 < n && !(v[k] == '?' && v[k + 1] == '='))
			k++;
		sc->qe = k + 1 < n ? k : n;
	}
	if (sc->stop < t) {
		size_t k = t;
		while (k < n && (unsigned char)v[k] > ' ' && (unsigned char)v[k] < 0x7f)
			k++;
		sc->stop = k;
	}
	sc->from = t;
}

/* An encoded word at v[i] == '=' (RFC 2047 2): 1 with *w, 0 not one. */
static int ew_parse(const char *v, size_t n, size_t i, struct ew_scan *sc, struct ew *w)
{
	size_t max = n - i < RFC2047_WORD_MAX ? n - i : RFC2047_WORD_MAX;
	const char *s = v + i;
	if (max < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	size_t j = 2;
	/* charset: token octets up to '?' (no '=': so the next "=?" ends it) */
	while (j < max && s[j] != '?') {
		unsigned char c = (unsigned char)s[j];
		if (c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '<' || c == '>' ||
		    c == '@' || c == ',' || c == ';' || c == ':' || c == '"' || c == '/' ||
		    c == '[' || c == ']' || c == '=' || c == '\\')
			return 0;
		j++;
	}
	if (j == 2 || j + 3 >= max || s[j + 2] != '?')
		return 0;
	w->charset = s + 2;
	w->charset_len = j - 2;
	/* RFC 2231 5: charset*language */
	const char *star = memchr(w->charset, '*', w->charset_len);
	if (star != NULL)
		w->charset_len = (size_t)(star - w->charset);
	if (w->charset_len == 0)
		return 0;
	char e = s[j + 1];
	if (e == 'B' || e == 'b')
		w->enc = 'b';
	else if (e == 'Q' || e == 'q')
		w->enc = 'q';
	else
		return 0;
	/* encoded-text: printable ASCII without blanks, up to "?=" */
	size_t t = i + j + 3;
	ew_scan_to(sc, v, n, t);
	if (sc->qe >= sc->stop || sc->qe + 2 - i > RFC2047_WORD_MAX)
		return 0;
	w->text = v + t;
	w->text_len = sc->qe - t;
	w->end = sc->qe + 2;
	return 1;
}

/* The octets of w's text appended to o: 1 ok, 0 not decodable (bad base64),
 * -1 out of memory. */
static int ew_decode(const struct ew *w, struct buf *o)
{
	const unsigned char *s = (const unsigned char *)w->text;
	size_t n = w->text_len;
	if (w->enc == 'q') {
		/* RFC 2047 4.2: "_" is a space, "=XX" an octet; a stray "="
		 * stays */
		for (size_t i = 0; i < n; i++) {
			char c = (char)s[i];
			if (c == '_') {
				c = ' ';
			} else if (c == '=' && i + 2 < n && str_hexval(s[i + 1]) >= 0 &&
			           str_hexval(s[i + 2]) >= 0) {
				c = (char)(str_hexval(s[i + 1]) * 16 + str_hexval(s[i + 2]));
				i += 2;
			}
			if (buf_append(o, &c, 1) < 0)
				return -1;
		}
		return 1;
	}
	/* RFC 2047 4.1 base64; padding may be missing */
	uint32_t acc = 0;
	unsigned k = 0;
	size_t i = 0;
	for (; i < n && s[i] != '='; i++) {
		int v = base64_value(s[i]);
		if (v < 0)
			return 0;
		acc = (acc << 6) | (uint32_t)v;
		if (++k == 4) {
			unsigned char b[3] = {(unsigned char)(acc >> 16), (unsigned char)(acc >> 8),
			                      (unsigned char)acc};
			if (buf_append(o, b, 3) < 0)
				return -1;
			k = 0;
			acc = 0;
		}
	}
	for (; i < n; i++)
		if (s[i] != '=')
			return 0;
	if (k == 1)
		return 0;
	if (k > 1) {
		acc <<= 6 * (4 - k);
		unsigned char b[2] = {(unsigned char)(acc >> 16), (unsigned char)(acc >> 8)};
		if (buf_append(o, b, k - 1) < 0)
			return -1;
	}
	return 1;
}

struct dec {
	struct buf *out;
	struct buf octets;       /* decoded octets of the pending encoded words */
	struct buf ws;           /* blanks after the last word, not yet written */
	struct buf word;         /* one word's octets */
	struct mail_charset *cs; /* converter of the pending words' charset */
	char name[64];           /* its charset name */
	size_t name_len;
	unsigned opened;
	struct mail_charset *raw; /* UTF-8 / windows-1252 for raw octets */
};

/* Writes the pending encoded words' text; controls become spaces. */
static int dec_flush(struct dec *d)
{
	if (d->octets.len == 0)
		return 1;
	size_t start = d->out->len;
	if (mail_charset_convert(d->cs, d->octets.data, d->octets.len, true, d->out) < 0)
		return -1;
	for (size_t i = start; i < d->out->len; i++) {
		unsigned char c = (unsigned char)d->out->data[i];
		if (c < 0x20 || c == 0x7f)
			d->out->data[i] = ' ';
	}
	buf_reset(&d->octets);
	return 1;
}

/* The converter for w's charset (the pending one when it is the same):
 * 1 ok, 0 unknown charset or too many, -1 out of memory. */
static int dec_charset(struct dec *d, const struct ew *w)
{
	if (d->cs != NULL && d->name_len == w->charset_len &&
	    strncasecmp(d->name, w->charset, w->charset_len) == 0)
		return 1;
	if (w->charset_len >= sizeof(d->name) || d->opened >= RFC2047_CHARSETS_MAX)
		return 0;
	struct mail_charset *cs;
	d->opened++;
	int rc = mail_charset_open(w->charset, w->charset_len, &cs);
	if (rc <= 0)
		return rc;
	if (dec_flush(d) < 0) {
		mail_charset_close(&cs);
		return -1;
	}
	mail_charset_close(&d->cs);
	d->cs = cs;
	memcpy(d->name, w->charset, w->charset_len);
	d->name_len = w->charset_len;
	return 1;
}

static int dec_raw(struct dec *d, const char *s, size_t n)
{
	if (dec_flush(d) < 0)
		return -1;
	if (d->ws.len > 0) {
		if (buf_append(d->out, d->ws.data, d->ws.len) < 0)
			return -1;
		buf_reset(&d->ws);
	}
	/* raw text is cut at ASCII octets only: a whole text each time */
	return mail_charset_convert(d->raw, s, n, true, d->out);
}

int mail_header_decode(const char *v, size_t n, struct buf *out)
{
	struct dec d = {.out = out};
	buf_init(&d.octets, 0);
	buf_init(&d.ws, 0);
	buf_init(&d.word, 0);
	int rc = mail_charset_open(NULL, 0, &d.raw);
	bool last_ew = false;
	struct ew_scan scan = {0, 0, 0};
	size_t i = 0;
	while (rc == 1 && i < n) {
		char c = v[i];
		if (c == '\r' || c == '\n') {
			i++; /* unfolding */
			continue;
		}
		if (c == ' ' || c == '\t') {
			if (buf_append(&d.ws, &c, 1) < 0)
				rc = -1;
			i++;
			continue;
		}
		struct ew w;
		if (c == '=' && ew_parse(v, n, i, &scan, &w) == 1) {
			int cr = dec_charset(&d, &w);
			if (cr < 0) {
				rc = -1;
				break;
			}
			buf_reset(&d.word);
			int dr = cr == 1 ? ew_decode(&w, &d.word) : 0;
			if (dr < 0) {
				rc = -1;
				break;
			}
			if (dr == 1) {
				/* RFC 2047 6.2: blanks between encoded words vanish;
				 * after raw text they are written before the word */
				if (!last_ew && d.ws.len > 0 &&
				    buf_append(out, d.ws.data, d.ws.len) < 0)
					rc = -1;
				buf_reset(&d.ws);
				if (d.word.len > 0 &&
				    buf_append(&d.octets, d.word.data, d.word.len) < 0)
					rc = -1;
				last_ew = true;
				i = w.end;
				continue;
			}
			/* not decodable: the word stays as it is */
			if (dec_raw(&d, v + i, w.end - i) < 0)
				rc = -1;
			last_ew = false;
			i = w.end;
			continue;
		}
		/* raw text up to the next blank, line end or "=?" */
		size_t j = i + 1;
		while (j < n && v[j] != ' ' && v[j] != '\t' && v[j] != '\r' && v[j] != '\n' &&
		       !(v[j] == '=' && j + 1 < n && v[j + 1] == '?'))
			j++;
		if (dec_raw(&d, v + i, j - i) < 0)
			rc = -1;
		last_ew = false;
		i = j;
	}
	if (rc == 1 &&
	    (dec_flush(&d) < 0 || (d.ws.len > 0 && buf_append(out, d.ws.data, d.ws.len) < 0)))
		rc = -1;
	mail_charset_close(&d.cs);
	mail_charset_close(&d.raw);
	buf_free(&d.octets);
	buf_free(&d.ws);
	buf_free(&d.word);
	return rc;
}
