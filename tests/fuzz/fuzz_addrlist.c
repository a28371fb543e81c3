/* libFuzzer target: the address-list parser and the ENVELOPE writer. The
 * parser must keep its limits (items, string lengths, groups ended) under
 * the default and small limits, give the same list when its input is
 * parsed into a list that already holds items, and the envelope must be
 * one balanced parenthesized list whatever the header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addrlist.h"
#include "mail/envelope.h"

static void check_list(const struct mail_addrlist *l, unsigned first,
                       const struct mail_addrlist_limits *lim)
{
	if (l->n > lim->max_items)
		abort();
	bool in_group = false;
	for (unsigned k = first; k < l->n; k++) {
		const struct mail_addr *a = &l->items[k];
		const struct mail_addr_str s[4] = {a->name, a->route, a->mailbox, a->host};
		for (int j = 0; j < 4; j++) {
			if (s[j].off == MAIL_ADDR_NONE)
				continue;
			if ((size_t)s[j].off + s[j].len >= l->pool.len + 1 ||
			    s[j].len > lim->max_string)
				abort();
			if (l->pool.data[s[j].off + s[j].len] != '\0')
				abort();
		}
		if (a->kind == MAIL_ADDR_GROUP_START) {
			if (in_group || a->name.off == MAIL_ADDR_NONE)
				abort();
			in_group = true;
		} else if (a->kind == MAIL_ADDR_GROUP_END) {
			if (!in_group)
				abort();
			in_group = false;
		}
	}
	if (in_group)
		abort();
}

/* The envelope is "(" ... ")" with balanced parentheses outside strings. */
static void check_envelope(const struct buf *b)
{
	int depth = 0;
	size_t i = 0;
	if (b->len < 2 || b->data[0] != '(' || b->data[b->len - 1] != ')')
		abort();
	while (i < b->len) {
		char c = b->data[i];
		if (c == '"') {
			for (i++; i < b->len && b->data[i] != '"'; i++)
				if (b->data[i] == '\\')
					i++;
			i++;
		} else if (c == '{') {
			char *end;
			unsigned long n = strtoul(b->data + i + 1, &end, 10);
			if (end[0] != '}' || end[1] != '\r' || end[2] != '\n')
				abort();
			i = (size_t)(end + 3 - b->data) + n;
		} else {
			if (c == '(')
				depth++;
			else if (c == ')' && --depth < 0)
				abort();
			i++;
		}
	}
	if (depth != 0 || i != b->len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;
	struct mail_addrlist_limits def, small = {.max_items = 5, .max_string = 6};
	mail_addrlist_limits_default(&def);

	struct mail_addrlist l;
	mail_addrlist_init(&l);
	if (mail_addrlist_parse(v, size, &def, &l) == 1)
		check_list(&l, 0, &def);
	/* again into the same list: the new items repeat the first ones */
	unsigned n1 = l.n;
	if (!l.truncated && mail_addrlist_parse(v, size, &def, &l) == 1 && l.n <= 2 * n1 &&
	    !l.truncated) {
		if (l.n != 2 * n1)
			abort();
		for (unsigned k = 0; k < n1; k++) {
			size_t a, b;
			const struct mail_addr *x = &l.items[k], *y = &l.items[k + n1];
			if (x->kind != y->kind)
				abort();
			const char *sa = mail_addrlist_str(&l, x->mailbox, &a);
			const char *sb = mail_addrlist_str(&l, y->mailbox, &b);
			if ((sa == NULL) != (sb == NULL) || a != b ||
			    (sa && memcmp(sa, sb, a) != 0))
				abort();
		}
	}
	mail_addrlist_free(&l);
	mail_addrlist_init(&l);
	if (mail_addrlist_parse(v, size, &small, &l) == 1)
		check_list(&l, 0, &small);
	mail_addrlist_free(&l);

	struct buf b;
	buf_init(&b, 0);
	if (mail_envelope_imap(v, size, size & 1, &b) == 1)
		check_envelope(&b);
	buf_free(&b);
	return 0;
}
