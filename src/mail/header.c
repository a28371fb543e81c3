#include "mail/header.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define MAIL_HEADER_ADDR_MAX 320

size_t mail_header_section_len(const char *msg, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* at the start of a line */
		if (msg[i] == '\n')
			return i + 1;
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			return i + 2;
		const char *nl = memchr(msg + i, '\n', len - i);
		if (nl == NULL)
			return len;
		i = (size_t)(nl - msg) + 1;
	}
	return len;
}

int mail_header_find(const char *msg, size_t len, const char *name, const char **value_r,
		     size_t *value_len_r)
{
	size_t hlen = mail_header_section_len(msg, len);
	size_t nlen = strlen(name);
	size_t i = 0;
	while (i < hlen) {
		const char *nl = memchr(msg + i, '\n', hlen - i);
		size_t end = nl != NULL ? (size_t)(nl - msg) + 1 : hlen;
		if (end - i > nlen && strncasecmp(msg + i, name, nlen) == 0) {
			/* RFC 5322 3.6.8: field name, optional blanks (obsolete), colon */
			size_t j = i + nlen;
			while (j < end && (msg[j] == ' ' || msg[j] == '\t'))
				j++;
			if (j < end && msg[j] == ':') {
				size_t vstart = j + 1, vend = end;
				/* continuation lines start with a blank (folding) */
				while (vend < hlen && (msg[vend] == ' ' || msg[vend] == '\t')) {
					const char *n2 = memchr(msg + vend, '\n', hlen - vend);
					vend = n2 != NULL ? (size_t)(n2 - msg) + 1 : hlen;
				}
				/* drop the final line end */
				if (vend > vstart && msg[vend - 1] == '\n')
					vend--;
				if (vend > vstart && msg[vend - 1] == '\r')
					vend--;
				*value_r = msg + vstart;
				*value_len_r = vend - vstart;
				return 1;
			}
		}
		i = end;
	}
	return 0;
}

static bool mail_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Emits s[start..end) trimmed of blanks. */
static void mail_header_emit(const char *s, size_t start, size_t end, mail_header_addr_cb *cb,
			     void *ctx, int *count)
{
	while (start < end && mail_is_blank(s[start]))
		start++;
	while (end > start && mail_is_blank(s[end - 1]))
		end--;
	if (end == start)
		return;
	(*count)++;
	if (end - start > MAIL_HEADER_ADDR_MAX)
		cb(ctx, "", 0);
	else
		cb(ctx, s + start, end - start);
}

int mail_header_addresses(const char *value, size_t len, mail_header_addr_cb *cb, void *ctx)
{
	/* One pass. Per mailbox we collect the "bare" text outside quotes and
	 * comments (an addr-spec when there is no <...>), and the angle-addr when
	 * one appears. ',' ends a mailbox; ':' (outside <>) ends a group's display
	 * name; ';' ends a group. */
	char bare[MAIL_HEADER_ADDR_MAX + 1];
	size_t blen = 0;
	bool bare_overflow = false;
	size_t angle_start = 0, angle_end = 0;
	bool have_angle = false, in_angle = false;
	int count = 0;
	size_t i = 0;

	while (i <= len) {
		char c = i < len ? value[i] : ',';
		if (in_angle) {
			if (i == len)
				return -1; /* unterminated <...> */
			if (c == '>') {
				in_angle = false;
				angle_end = i;
				have_angle = true;
			} else if (c == '<') {
				return -1;
			}
			i++;
			continue;
		}
		if (c == '"') {
			/* quoted string: part of a local part or a display name */
			size_t j = i + 1;
			while (j < len && value[j] != '"') {
				if (value[j] == '\\' && j + 1 < len)
					j++;
				j++;
			}
			if (j >= len)
				return -1;
			for (size_t k = i; k <= j; k++) {
				if (blen < MAIL_HEADER_ADDR_MAX)
					bare[blen++] = value[k];
				else
					bare_overflow = true;
			}
			i = j + 1;
			continue;
		}
		if (c == '(') {
			/* comment, may nest (RFC 5322 3.2.2) */
			int depth = 0;
			size_t j = i;
			for (; j < len; j++) {
				if (value[j] == '\\' && j + 1 < len) {
					j++;
					continue;
				}
				if (value[j] == '(')
					depth++;
				else if (value[j] == ')' && --depth == 0)
					break;
			}
			if (j >= len)
				return -1;
			i = j + 1;
			continue;
		}
		if (c == '<') {
			in_angle = true;
			angle_start = i + 1;
			i++;
			continue;
		}
		if (c == ',' || c == ';' || (c == ':' && !have_angle)) {
			if (c == ':') {
				/* group display name: discard what was collected */
				blen = 0;
				bare_overflow = false;
				i++;
				continue;
			}
			if (have_angle)
				mail_header_emit(value, angle_start, angle_end, cb, ctx, &count);
			else if (bare_overflow) {
				count++;
				cb(ctx, "", 0); /* too long to be an address */
			} else
				mail_header_emit(bare, 0, blen, cb, ctx, &count);
			blen = 0;
			bare_overflow = false;
			have_angle = false;
			i++;
			continue;
		}
		if (c == '>')
			return -1;
		if (blen < MAIL_HEADER_ADDR_MAX)
			bare[blen++] = c;
		else
			bare_overflow = true;
		i++;
	}
	return count;
}

/* ---- incremental scan ---- */

/* A small state machine over the octets of a header section. A line is looked
 * at only as far as needed: its first octet (empty line, continuation, or the
 * first letter of a field name of interest), then the name and the colon;
 * the rest of an uninteresting line is skipped with memchr. */
enum mail_header_scan_state {
	MAIL_HEADER_SCAN_LINE_START,  /* at the first octet of a line */
	MAIL_HEADER_SCAN_LINE_CR,     /* the line began with CR: empty if LF follows */
	MAIL_HEADER_SCAN_NAME,        /* matching mail_header_scan_names[name] */
	MAIL_HEADER_SCAN_NAME_BLANKS, /* name matched: blanks, then the colon */
	MAIL_HEADER_SCAN_FROM_VALUE,  /* inside a From: value line */
	MAIL_HEADER_SCAN_TLSREQ_VALUE, /* the first line of a TLS-Required: value */
	MAIL_HEADER_SCAN_SKIP,        /* the rest of a line of no interest */
	MAIL_HEADER_SCAN_DONE,        /* ended, too large, or out of memory */
};

/* Lower case; their first letters differ, so a line can match only one. */
enum {
	MAIL_HEADER_SCAN_FROM,
	MAIL_HEADER_SCAN_DATE,
	MAIL_HEADER_SCAN_MESSAGE_ID,
	MAIL_HEADER_SCAN_RECEIVED,
	MAIL_HEADER_SCAN_TLS_REQUIRED,
	MAIL_HEADER_SCAN_NNAMES
};
static const char *const mail_header_scan_names[] = {"from", "date", "message-id", "received",
                                                     "tls-required"};

#define MAIL_HEADER_SCAN_MAX ((size_t)1 << 30) /* keeps value lengths in a uint32_t */

void mail_header_scan_init(struct mail_header_scan *scan, size_t max)
{
	if (max > MAIL_HEADER_SCAN_MAX)
		max = MAIL_HEADER_SCAN_MAX;
	*scan = (struct mail_header_scan){.max = max, .state = MAIL_HEADER_SCAN_LINE_START};
	/* the values and their lengths fit in twice the section (see header.h) */
	buf_init(&scan->from, 2 * max + 8);
}

void mail_header_scan_free(struct mail_header_scan *scan)
{
	buf_free(&scan->from);
	scan->in_from = false;
	scan->nfrom = 0;
}

static char mail_header_scan_lower(char c)
{
	/* ASCII only, as strncasecmp in the C locale */
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void mail_header_scan_fail(struct mail_header_scan *scan)
{
	scan->failed = true;
	scan->state = MAIL_HEADER_SCAN_DONE;
	mail_header_scan_free(scan);
}

static void mail_header_scan_from_open(struct mail_header_scan *scan)
{
	uint32_t zero = 0;
	scan->from_start = scan->from.len;
	if (buf_append(&scan->from, &zero, sizeof(zero)) < 0) {
		mail_header_scan_fail(scan);
		return;
	}
	scan->nfrom++;
	scan->in_from = true;
}

/* The open From: value has ended: as mail_header_find, drop a final LF, then a
 * final CR. */
static void mail_header_scan_from_close(struct mail_header_scan *scan)
{
	if (!scan->in_from)
		return;
	scan->in_from = false;
	size_t start = scan->from_start + sizeof(uint32_t);
	const char *v = scan->from.data + start;
	size_t vl = scan->from.len - start;
	if (vl > 0 && v[vl - 1] == '\n')
		vl--;
	if (vl > 0 && v[vl - 1] == '\r')
		vl--;
	scan->from.len = start + vl;
	scan->from.data[scan->from.len] = '\0';
	uint32_t l = (uint32_t)vl;
	memcpy(scan->from.data + scan->from_start, &l, sizeof(l));
}

/* Consumes octets of a line up to and including its LF (into the open From:
 * value when collect); returns how many. */
static size_t mail_header_scan_line_rest(struct mail_header_scan *scan, const char *p, size_t n,
					 bool collect)
{
	const char *nl = memchr(p, '\n', n);
	size_t used = nl != NULL ? (size_t)(nl - p) + 1 : n;
	if (collect && buf_append(&scan->from, p, used) < 0) {
		mail_header_scan_fail(scan);
		return used;
	}
	if (nl != NULL)
		scan->state = MAIL_HEADER_SCAN_LINE_START;
	return used;
}

static void mail_header_scan_field(struct mail_header_scan *scan)
{
	scan->state = MAIL_HEADER_SCAN_SKIP;
	switch (scan->name) {
	case MAIL_HEADER_SCAN_FROM:
		scan->state = MAIL_HEADER_SCAN_FROM_VALUE;
		mail_header_scan_from_open(scan);
		break;
	case MAIL_HEADER_SCAN_DATE:
		scan->have_date = true;
		break;
	case MAIL_HEADER_SCAN_MESSAGE_ID:
		scan->have_message_id = true;
		break;
	case MAIL_HEADER_SCAN_RECEIVED:
		scan->nreceived++;
		break;
	case MAIL_HEADER_SCAN_TLS_REQUIRED:
		scan->state = MAIL_HEADER_SCAN_TLSREQ_VALUE;
		scan->tlsreq_len = 0;
		break;
	}
}

/* Octets of the first line of a TLS-Required: value; "No" (RFC 8689 5) with
 * blanks around it, in any case, sets tls_required_no at the line's end. A
 * folded value is not looked at (the policies then stay as they are). */
static size_t mail_header_scan_tlsreq(struct mail_header_scan *scan, const char *p, size_t n)
{
	size_t i = 0;
	for (; i < n; i++) {
		char c = p[i];
		if (c == '\n') {
			i++;
			size_t a = 0, b = scan->tlsreq_len == UINT8_MAX ? 0 : scan->tlsreq_len;
			while (a < b && (scan->tlsreq[a] == ' ' || scan->tlsreq[a] == '\t'))
				a++;
			while (b > a && (scan->tlsreq[b - 1] == ' ' || scan->tlsreq[b - 1] == '\t' ||
			                 scan->tlsreq[b - 1] == '\r'))
				b--;
			if (b - a == 2 && mail_header_scan_lower(scan->tlsreq[a]) == 'n' &&
			    mail_header_scan_lower(scan->tlsreq[a + 1]) == 'o')
				scan->tls_required_no = true;
			scan->state = MAIL_HEADER_SCAN_LINE_START;
			return i;
		}
		if (scan->tlsreq_len < sizeof(scan->tlsreq))
			scan->tlsreq[scan->tlsreq_len++] = c;
		else
			scan->tlsreq_len = UINT8_MAX; /* too long to be "No" */
	}
	return i;
}

static int mail_header_scan_result(const struct mail_header_scan *scan)
{
	if (scan->state != MAIL_HEADER_SCAN_DONE)
		return 0;
	return scan->ended && !scan->too_large && !scan->failed ? 1 : -1;
}

int mail_header_scan_feed(struct mail_header_scan *scan, const void *data, size_t len)
{
	if (scan->state == MAIL_HEADER_SCAN_DONE)
		return mail_header_scan_result(scan);
	const char *p = data;
	/* one octet past the limit tells a section of max octets from a longer one */
	size_t room = scan->max - scan->len + 1;
	size_t n = len < room ? len : room;
	size_t i = 0;
	while (i < n && scan->state != MAIL_HEADER_SCAN_DONE) {
		char c = p[i];
		switch (scan->state) {
		case MAIL_HEADER_SCAN_LINE_START:
			if (scan->in_from) {
				/* a line starting with a blank continues the field */
				if (c == ' ' || c == '\t') {
					scan->state = MAIL_HEADER_SCAN_FROM_VALUE;
					continue;
				}
				mail_header_scan_from_close(scan);
			}
			if (c == '\n') {
				i++;
				scan->ended = true;
				scan->state = MAIL_HEADER_SCAN_DONE;
			} else if (c == '\r') {
				i++;
				scan->state = MAIL_HEADER_SCAN_LINE_CR;
			} else {
				scan->state = MAIL_HEADER_SCAN_SKIP;
				for (uint8_t k = 0; k < MAIL_HEADER_SCAN_NNAMES; k++) {
					if (mail_header_scan_lower(c) == mail_header_scan_names[k][0]) {
						scan->name = k;
						scan->name_pos = 1;
						scan->state = MAIL_HEADER_SCAN_NAME;
						i++;
						break;
					}
				}
			}
			break;
		case MAIL_HEADER_SCAN_LINE_CR:
			if (c == '\n') {
				i++;
				scan->ended = true;
				scan->state = MAIL_HEADER_SCAN_DONE;
			} else {
				scan->state = MAIL_HEADER_SCAN_SKIP;
			}
			break;
		case MAIL_HEADER_SCAN_NAME: {
			const char *name = mail_header_scan_names[scan->name];
			if (mail_header_scan_lower(c) != name[scan->name_pos]) {
				scan->state = MAIL_HEADER_SCAN_SKIP;
				break;
			}
			i++;
			if (name[++scan->name_pos] == '\0')
				scan->state = MAIL_HEADER_SCAN_NAME_BLANKS;
			break;
		}
		case MAIL_HEADER_SCAN_NAME_BLANKS:
			/* RFC 5322 4.5 (obsolete syntax): blanks before the colon */
			if (c == ' ' || c == '\t') {
				i++;
			} else if (c == ':') {
				i++;
				mail_header_scan_field(scan);
			} else {
				scan->state = MAIL_HEADER_SCAN_SKIP;
			}
			break;
		case MAIL_HEADER_SCAN_FROM_VALUE:
			i += mail_header_scan_line_rest(scan, p + i, n - i, true);
			break;
		case MAIL_HEADER_SCAN_SKIP:
			i += mail_header_scan_line_rest(scan, p + i, n - i, false);
			break;
		case MAIL_HEADER_SCAN_TLSREQ_VALUE:
			i += mail_header_scan_tlsreq(scan, p + i, n - i);
			break;
		case MAIL_HEADER_SCAN_DONE:
			break;
		}
	}
	scan->len += i;
	if (scan->len > scan->max && !scan->failed) {
		scan->too_large = true;
		scan->state = MAIL_HEADER_SCAN_DONE;
		mail_header_scan_free(scan);
	}
	return mail_header_scan_result(scan);
}

int mail_header_scan_end(struct mail_header_scan *scan)
{
	if (scan->state != MAIL_HEADER_SCAN_DONE) {
		/* no empty line: the whole message is the header section */
		mail_header_scan_from_close(scan);
		scan->state = MAIL_HEADER_SCAN_DONE;
	}
	if (scan->failed)
		return -1;
	return scan->too_large ? 0 : 1;
}

int mail_header_scan_next_from(const struct mail_header_scan *scan, size_t *pos,
			       const char **value_r, size_t *len_r)
{
	if (scan->in_from || scan->from.data == NULL || *pos > scan->from.len ||
	    scan->from.len - *pos < sizeof(uint32_t))
		return 0;
	uint32_t l;
	memcpy(&l, scan->from.data + *pos, sizeof(l));
	*value_r = scan->from.data + *pos + sizeof(l);
	*len_r = l;
	*pos += sizeof(l) + l;
	return 1;
}
