#include "mail/envelope.h"

#include <string.h>
#include <strings.h>

#include "mail/addrlist.h"
#include "mail/mime.h"

enum env_field {
	ENV_DATE,
	ENV_SUBJECT,
	ENV_FROM,
	ENV_SENDER,
	ENV_REPLY_TO,
	ENV_TO,
	ENV_CC,
	ENV_BCC,
	ENV_IN_REPLY_TO,
	ENV_MESSAGE_ID,
	ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id",
};

struct env_value {
	const char *v; /* NULL: absent */
	size_t len;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Finds the first occurrence of each field in one pass over the section. */
static void env_find(const char *h, size_t len, struct env_value *vals)
{
	size_t i = 0;
	while (i < len) {
		/* at the start of a line */
		const char *nl = memchr(h + i, '\n', len - i);
		size_t eol = nl != NULL ? (size_t)(nl - h) + 1 : len;
		if (eol - i == 1 || (eol - i == 2 && h[i] == '\r' && h[i + 1] == '\n'))
			return; /* the empty line ending the section */
		if (is_blank(h[i])) {
			i = eol; /* a continuation line of a field not wanted */
			continue;
		}
		/* RFC 5322 3.6.8: field-name = 1*ftext (33..126 except ':');
		 * 4.5: blanks may come before the colon */
		size_t j = i;
		while (j < eol && (unsigned char)h[j] > 32 && (unsigned char)h[j] < 127 &&
		       h[j] != ':')
			j++;
		size_t name_end = j;
		while (j < eol && is_blank(h[j]))
			j++;
		size_t vend = eol;
		while (vend < len && is_blank(h[vend])) {
			const char *n2 = memchr(h + vend, '\n', len - vend);
			vend = n2 != NULL ? (size_t)(n2 - h) + 1 : len;
		}
		if (j < eol && h[j] == ':' && name_end > i) {
			for (int f = 0; f < ENV_COUNT; f++) {
				size_t nl2 = strlen(env_names[f]);
				if (vals[f].v == NULL && name_end - i == nl2 &&
				    strncasecmp(h + i, env_names[f], nl2) == 0) {
					vals[f].v = h + j + 1;
					vals[f].len = vend - (j + 1);
					break;
				}
			}
		}
		i = vend;
	}
}

/* An unstructured value: unfolded (RFC 5322 2.2.3: CR and LF removed),
 * without leading and trailing blanks; human: every run of blanks (tabs
 * included) is one space, as Dovecot writes subjects and names. */
static int env_text(struct buf *out, const char *v, size_t len, bool human, bool utf8,
                    struct buf *tmp)
{
	buf_reset(tmp);
	size_t i = 0;
	bool blank = false;
	while (i < len) {
		size_t j = i;
		while (j < len && v[j] != '\r' && v[j] != '\n' && !(human && is_blank(v[j])))
			j++;
		if (j > i) {
			if (blank && tmp->len > 0 && buf_append(tmp, " ", 1) < 0)
				return -1;
			blank = false;
			if (buf_append(tmp, v + i, j - i) < 0)
				return -1;
		}
		if (j < len && is_blank(v[j]))
			blank = true;
		i = j + 1;
	}
	/* without leading and trailing blanks */
	const char *t = tmp->len ? tmp->data : "";
	size_t a = 0, l = tmp->len;
	while (a < l && is_blank(t[a]))
		a++;
	while (l > a && is_blank(t[l - 1]))
		l--;
	return mime_imap_append_string(out, t + a, l - a, utf8);
}

static int env_nstring(struct buf *out, const struct env_value *val, bool human, bool utf8,
                       struct buf *tmp)
{
	if (val->v == NULL)
		return buf_append(out, "NIL", 3);
	return env_text(out, val->v, val->len, human, utf8, tmp);
}

static int env_str(struct buf *out, const struct mail_addrlist *l, struct mail_addr_str s,
                   const char *missing, bool utf8)
{
	size_t len;
	const char *v = mail_addrlist_str(l, s, &len);
	if (v == NULL && missing == NULL)
		return buf_append(out, "NIL", 3);
	if (v == NULL)
		return mime_imap_append_string(out, missing, strlen(missing), false);
	return mime_imap_append_string(out, v, len, utf8);
}

/* A display name, blanks made one space (a name of only blanks is "") */
static int env_name(struct buf *out, const struct mail_addrlist *l, struct mail_addr_str s,
                    bool utf8, struct buf *tmp)
{
	size_t len;
	const char *v = mail_addrlist_str(l, s, &len);
	if (v == NULL)
		return buf_append(out, "NIL", 3);
	return env_text(out, v, len, true, utf8, tmp);
}

/* RFC 9051 7.5.2: a parenthesized list of address structures, NIL when
 * empty; group start (NIL NIL name NIL), group end (NIL NIL NIL NIL). */
static int env_addresses(struct buf *out, const struct mail_addrlist *l, bool utf8, struct buf *tmp)
{
	if (l->n == 0)
		return buf_append(out, "NIL", 3);
	if (buf_append(out, "(", 1) < 0)
		return -1;
	for (unsigned k = 0; k < l->n; k++) {
		const struct mail_addr *a = &l->items[k];
		int rc;
		switch (a->kind) {
		case MAIL_ADDR_GROUP_START:
			rc = buf_append(out, "(NIL NIL ", 9) < 0 ||
			             env_name(out, l, a->name, utf8, tmp) < 0 ||
			             buf_append(out, " NIL)", 5) < 0
			         ? -1
			         : 1;
			break;
		case MAIL_ADDR_GROUP_END:
			rc = buf_append(out, "(NIL NIL NIL NIL)", 17);
			break;
		default:
			rc = buf_append(out, "(", 1) < 0 ||
			             env_name(out, l, a->name, utf8, tmp) < 0 ||
			             buf_append(out, " ", 1) < 0 ||
			             env_str(out, l, a->route, NULL, utf8) < 0 ||
			             buf_append(out, " ", 1) < 0 ||
			             env_str(out, l, a->mailbox, MAIL_ENVELOPE_MISSING_MAILBOX,
			                     utf8) < 0 ||
			             buf_append(out, " ", 1) < 0 ||
			             env_str(out, l, a->host, MAIL_ENVELOPE_MISSING_DOMAIN, utf8) <
			                 0 ||
			             buf_append(out, ")", 1) < 0
			         ? -1
			         : 1;
			break;
		}
		if (rc < 0)
			return -1;
	}
	return buf_append(out, ")", 1);
}

int mail_envelope_imap(const char *header, size_t len, bool utf8, struct buf *out)
{
	struct env_value vals[ENV_COUNT];
	memset(vals, 0, sizeof(vals));
	env_find(header, len, vals);

	struct mail_addrlist lists[ENV_COUNT];
	struct buf tmp;
	buf_init(&tmp, 0);
	int rc = 1;
	for (int f = 0; f < ENV_COUNT; f++) {
		mail_addrlist_init(&lists[f]);
		if (f >= ENV_FROM && f <= ENV_BCC && vals[f].v != NULL &&
		    mail_addrlist_parse(vals[f].v, vals[f].len, NULL, &lists[f]) < 0)
			rc = -1;
	}
	if (rc == 1 && buf_append(out, "(", 1) < 0)
		rc = -1;
	for (int f = 0; f < ENV_COUNT && rc == 1; f++) {
		if (f > 0 && buf_append(out, " ", 1) < 0) {
			rc = -1;
			break;
		}
		if (f < ENV_FROM || f > ENV_BCC) {
			rc = env_nstring(out, &vals[f], f == ENV_SUBJECT, utf8, &tmp) < 0 ? -1 : 1;
			continue;
		}
		/* RFC 9051 7.5.2: sender and reply-to absent or empty: from */
		const struct mail_addrlist *l = &lists[f];
		if ((f == ENV_SENDER || f == ENV_REPLY_TO) && l->n == 0)
			l = &lists[ENV_FROM];
		rc = env_addresses(out, l, utf8, &tmp) < 0 ? -1 : 1;
	}
	if (rc == 1 && buf_append(out, ")", 1) < 0)
		rc = -1;
	for (int f = 0; f < ENV_COUNT; f++)
		mail_addrlist_free(&lists[f]);
	buf_free(&tmp);
	return rc;
}
