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
