/* The SMTP client's parsers: see smtp_client_parse.h. */
#include "smtp/smtp_client_parse.h"

#include "core/str.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->reply.text, SMTP_REPLY_TEXT_MAX + SMTP_REPLY_LINES_MAX);
}

void smtp_reply_parser_reset(struct smtp_reply_parser *p)
{
	struct buf text = p->reply.text;

	buf_reset(&text);
	memset(&p->reply, 0, sizeof(p->reply));
	p->reply.text = text;
	p->len = 0;
	p->done = false;
	p->error = NULL;
}

void smtp_reply_parser_free(struct smtp_reply_parser *p)
{
	buf_free(&p->reply.text);
}

const char *smtp_reply_line(const struct smtp_reply *r, size_t i)
{
	return r->text.data + r->line_off[i];
}

/* RFC 3463 2: class "." subject "." detail, subject and detail 1-3 digits,
 * class the reply's first digit (2, 4 or 5), then SP or the end. The length
 * of the code, 0 when s does not start with one. */
static size_t smtp_enhanced_len(const char *s, int code)
{
	size_t i = 0;

	if (s[0] != '0' + code / 100 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (d < 4 && isdigit((unsigned char)s[i + d]))
			d++;
		if (d == 0 || d > 3)
			return 0;
		i += d;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	return s[i] == ' ' || s[i] == '\0' ? i : 0;
}

/* One line (no line end, NUL-terminated in p->line). 1 last line, 0 more
 * follow, -1 error. */
static int smtp_reply_line_parse(struct smtp_reply_parser *p, const char *l, size_t len)
{
	struct smtp_reply *r = &p->reply;
	int code;

	if (memchr(l, '\0', len) != NULL) {
		p->error = "NUL in a reply line";
		return -1;
	}
	/* RFC 5321 4.2: first digit 2-5, second 0-5, third 0-9 */
	if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || l[2] < '0' ||
	    l[2] > '9' || (len > 3 && l[3] != ' ' && l[3] != '-')) {
		p->error = "malformed reply line";
		return -1;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		p->error = "reply lines with different codes";
		return -1;
	}
	if (r->nlines >= SMTP_REPLY_LINES_MAX) {
		p->error = "too many reply lines";
		return -1;
	}
	bool more = len > 3 && l[3] == '-';
	const char *text = len > 3 ? l + 4 : "";
	if (r->nlines == 0) {
		r->code = code;
		size_t e = smtp_enhanced_len(text, code);
		if (e > 0 && e < sizeof(r->enhanced)) {
			memcpy(r->enhanced, text, e);
			r->enhanced[e] = '\0';
			text += e;
		}
	} else if (r->enhanced[0] != '\0') {
		size_t e = strlen(r->enhanced);
		if (strncmp(text, r->enhanced, e) == 0 && (text[e] == ' ' || text[e] == '\0'))
			text += e;
	}
	while (*text == ' ')
		text++;
	r->line_off[r->nlines++] = r->text.len;
	if (r->text.len + strlen(text) > SMTP_REPLY_TEXT_MAX ||
	    buf_append(&r->text, text, strlen(text) + 1) < 0) {
		p->error = "reply too long";
		return -1;
	}
	return more ? 0 : 1;
}

enum smtp_reply_result smtp_reply_feed(struct smtp_reply_parser *p, const char *data,
				       size_t len, size_t *used_r)
{
	size_t i = 0;

	*used_r = 0;
	if (p->error != NULL)
		return SMTP_REPLY_ERROR;
	if (p->done)
		return SMTP_REPLY_DONE;
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t take = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
		/* the limit is checked before appending, line end or not (a CR
		 * before the LF may make one octet more) */
		if (p->len + take > SMTP_REPLY_LINE_MAX + 1) {
			p->error = "reply line too long";
			*used_r = i;
			return SMTP_REPLY_ERROR;
		}
		memcpy(p->line + p->len, data + i, take);
		p->len += take;
		i += take;
		if (nl == NULL)
			break;
		i++; /* the LF */
		size_t l = p->len;
		if (l > 0 && p->line[l - 1] == '\r')
			l--;
		if (l > SMTP_REPLY_LINE_MAX) {
			p->error = "reply line too long";
			*used_r = i;
			return SMTP_REPLY_ERROR;
		}
		p->line[l] = '\0';
		p->len = 0;
		int rc = smtp_reply_line_parse(p, p->line, l);
		if (rc < 0) {
			*used_r = i;
			return SMTP_REPLY_ERROR;
		}
		if (rc == 1) {
			p->done = true;
			*used_r = i;
			return SMTP_REPLY_DONE;
		}
	}
	*used_r = i;
	return SMTP_REPLY_NEED_MORE;
}

int smtp_reply_format(const struct smtp_reply *r, struct buf *out, size_t max)
{
	char head[32];
	size_t start = out->len;
	int n = snprintf(head, sizeof(head), "%d%s%s", r->code, r->enhanced[0] ? " " : "",
	                 r->enhanced);

	if (max < 8)
		max = 8;
	if (buf_append(out, head, (size_t)n) < 0)
		return -1;
	for (size_t i = 0; i < r->nlines; i++) {
		const char *t = smtp_reply_line(r, i);
		if (*t == '\0')
			continue;
		if (buf_append(out, " ", 1) < 0)
			return -1;
		for (; *t != '\0'; t++) {
			char c = (unsigned char)*t >= 0x20 && (unsigned char)*t < 0x7f ? *t : '?';
			if (out->len - start >= max - 3) {
				return buf_append(out, "...", 3);
			}
			if (buf_append(out, &c, 1) < 0)
				return -1;
		}
	}
	return 1;
}

/* ---- EHLO ---- */

/* RFC 9422 4: LIMITS limit *(SP limit), limit = name "=" 1*digit. */
static void smtp_ehlo_limits(const char *p, struct smtp_ehlo_caps *caps)
{
	static const struct {
		const char *name;
		size_t off;
	} names[] = {
	    {"RCPTMAX", offsetof(struct smtp_ehlo_caps, rcptmax)},
	    {"MAILMAX", offsetof(struct smtp_ehlo_caps, mailmax)},
	    {"RCPTDOMAINMAX", offsetof(struct smtp_ehlo_caps, rcptdomainmax)},
	};
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		const char *eq = memchr(p, '=', len);
		uint64_t v;
		if (eq != NULL && str_parse_u64(eq + 1, len - (size_t)(eq + 1 - p), &v) == 1 &&
		    v > 0 && v <= 1000000) {
			for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				if ((size_t)(eq - p) == strlen(names[i].name) &&
				    strncasecmp(p, names[i].name, (size_t)(eq - p)) == 0)
					*(unsigned *)(void *)((char *)caps + names[i].off) =
					    (unsigned)v;
		}
		p += len;
	}
}

static void smtp_ehlo_auth(const char *p, struct smtp_ehlo_caps *caps)
{
	size_t o = strlen(caps->auth);

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (len > 0 && o + len + 2 <= sizeof(caps->auth)) {
			if (o > 0)
				caps->auth[o++] = ' ';
			for (size_t i = 0; i < len; i++)
				caps->auth[o++] = (char)toupper((unsigned char)p[i]);
			caps->auth[o] = '\0';
		}
		p += len;
	}
}

void smtp_ehlo_caps_parse(const struct smtp_reply *r, struct smtp_ehlo_caps *caps)
{
	static const struct {
		const char *kw;
		size_t off;
	} flags[] = {
	    {"PIPELINING", offsetof(struct smtp_ehlo_caps, pipelining)},
	    {"STARTTLS", offsetof(struct smtp_ehlo_caps, starttls)},
	    {"8BITMIME", offsetof(struct smtp_ehlo_caps, eightbitmime)},
	    {"SMTPUTF8", offsetof(struct smtp_ehlo_caps, smtputf8)},
	    {"CHUNKING", offsetof(struct smtp_ehlo_caps, chunking)},
	    {"BINARYMIME", offsetof(struct smtp_ehlo_caps, binarymime)},
	    {"DSN", offsetof(struct smtp_ehlo_caps, dsn)},
	    {"REQUIRETLS", offsetof(struct smtp_ehlo_caps, requiretls)},
	    {"ENHANCEDSTATUSCODES", offsetof(struct smtp_ehlo_caps, enhancedstatuscodes)},
	};

	memset(caps, 0, sizeof(*caps));
	if (r->code != 250)
		return;
	for (size_t i = 1; i < r->nlines; i++) {
		const char *l = smtp_reply_line(r, i);
		size_t kwlen = strcspn(l, " ");
		const char *params = l + kwlen;
		while (*params == ' ')
			params++;
		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			if (kwlen == strlen(flags[k].kw) && strncasecmp(l, flags[k].kw, kwlen) == 0)
				*(bool *)(void *)((char *)caps + flags[k].off) = true;
		if (kwlen == 4 && strncasecmp(l, "SIZE", 4) == 0) {
			/* RFC 1870 4: SIZE [number]; 0 or none: no fixed maximum */
			uint64_t v = 0;
			if (*params == '\0' || str_parse_u64(params, strlen(params), &v) == 1) {
				caps->size = true;
				caps->size_max = v;
			}
		} else if (kwlen == 6 && strncasecmp(l, "LIMITS", 6) == 0) {
			smtp_ehlo_limits(params, caps);
		} else if (kwlen == 4 && strncasecmp(l, "AUTH", 4) == 0) {
			smtp_ehlo_auth(params, caps);
		}
	}
}

/* ---- wire copy ---- */

void smtp_wire_init(struct smtp_wire *w, bool dotstuff)
{
	memset(w, 0, sizeof(*w));
	w->dotstuff = dotstuff;
}

static int smtp_wire_eol(struct smtp_wire *w, struct buf *out)
{
	w->col = 0;
	return buf_append(out, "\r\n", 2);
}

int smtp_wire_encode(struct smtp_wire *w, const char *data, size_t len, struct buf *out)
{
	size_t run = 0; /* octets of data[i - run .. i) not yet appended */

	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (w->cr) {
			/* CR LF, or a bare CR: both end the line */
			w->cr = false;
			if (smtp_wire_eol(w, out) < 0)
				return -1;
			if (c == '\n')
				continue;
		}
		if (c == '\r' || c == '\n') {
			if (buf_append(out, data + i - run, run) < 0)
				return -1;
			run = 0;
			if (c == '\r')
				w->cr = true;
			else if (smtp_wire_eol(w, out) < 0)
				return -1;
			continue;
		}
		if (w->col == SMTP_WIRE_LINE_MAX) {
			/* RFC 5322 2.1.1: 998 octets at most; the rest on a
			 * continuation line */
			if (buf_append(out, data + i - run, run) < 0 ||
			    buf_append(out, "\r\n ", 3) < 0)
				return -1;
			run = 0;
			w->col = 1;
			w->lines_broken++;
		} else if (w->col == 0 && c == '.' && w->dotstuff) {
			/* RFC 5321 4.5.2 */
			if (buf_append(out, data + i - run, run) < 0 || buf_append(out, ".", 1) < 0)
				return -1;
			run = 0;
			w->col = 1;
		}
		run++;
		w->col++;
	}
	return buf_append(out, data + len - run, run);
}

int smtp_wire_finish(struct smtp_wire *w, struct buf *out)
{
	if (w->cr || w->col > 0) {
		w->cr = false;
		if (smtp_wire_eol(w, out) < 0)
			return -1;
	}
	return w->dotstuff ? buf_append(out, ".\r\n", 3) : 1;
}
