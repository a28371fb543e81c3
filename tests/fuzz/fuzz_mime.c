/* libFuzzer target: the MIME parser. The tree of the message fed in one
 * piece must equal the tree fed one octet at a time and in pieces chosen by
 * the input; every part must lie within the message and inside its parent's
 * body after its previous sibling; the cached form must decode to the same
 * tree; BODY and BODYSTRUCTURE must be written; section numbers must name
 * parts of the tree. Run with small limits too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mime.h"

static void fuzz_tree(const char *msg, size_t len, const struct mime_limits *lim,
                      const size_t *split, size_t nsplit, struct mime_tree *t)
{
	struct mime_parser *p = mime_parser_new(lim);
	if (p == NULL)
		abort();
	size_t i = 0, k = 0;
	while (i < len) {
		size_t n = nsplit ? split[k++ % nsplit] : len;
		if (n > len - i)
			n = len - i;
		if (mime_parser_feed(p, msg + i, n) < 0)
			abort();
		i += n;
	}
	if (mime_parser_finish(p, t) != 1)
		abort();
	mime_parser_free(&p);
}

static void fuzz_check(const struct mime_tree *t, size_t len)
{
	if (t->nparts < 1)
		abort();
	for (uint32_t i = 0; i < t->nparts; i++) {
		const struct mime_part *p = &t->parts[i];
		uint64_t body = p->header_start + p->header_len, end = body + p->body_len;
		if (end > len || p->body_lines > p->body_len)
			abort();
		if (i == 0) {
			if (p->header_start != 0 || end != len)
				abort();
			continue;
		}
		if (p->parent >= i)
			abort();
		const struct mime_part *q = &t->parts[p->parent];
		uint64_t qbody = q->header_start + q->header_len;
		if (p->header_start < qbody || end > qbody + q->body_len)
			abort();
		if (p->next != MIME_NONE) {
			const struct mime_part *s = &t->parts[p->next];
			if (s->header_start < end)
				abort();
		}
	}
}

static void fuzz_one(const char *msg, size_t len, const struct mime_limits *lim,
                     const size_t *split, size_t nsplit)
{
	static const size_t one[] = {1};
	struct mime_tree whole, a, b, d;
	fuzz_tree(msg, len, lim, NULL, 0, &whole);
	fuzz_check(&whole, len);
	fuzz_tree(msg, len, lim, one, 1, &a);
	fuzz_tree(msg, len, lim, split, nsplit, &b);
	if (!mime_tree_equal(&whole, &a) || !mime_tree_equal(&whole, &b))
		abort();
	struct buf enc, s1, s2;
	buf_init(&enc, 0);
	buf_init(&s1, 0);
	buf_init(&s2, 0);
	if (mime_tree_encode(&whole, &enc) != 1 || mime_tree_decode(enc.data, enc.len, &d) != 1 ||
	    !mime_tree_equal(&whole, &d))
		abort();
	if (mime_tree_imap_body(&whole, 0, MIME_IMAP_EXTENDED, NULL, NULL, &s1) != 1 ||
	    mime_tree_imap_body(&d, 0, MIME_IMAP_EXTENDED, NULL, NULL, &s2) != 1 ||
	    s1.len != s2.len || memcmp(s1.data, s2.data, s1.len) != 0)
		abort();
	buf_reset(&s1);
	if (mime_tree_imap_body(&whole, 0, MIME_IMAP_UTF8, NULL, NULL, &s1) != 1)
		abort();
	static const char *const sections[] = {"1", "2", "1.1", "2.1", "1.2.1", "3.1.2"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		uint32_t part;
		if (mime_tree_section(&whole, sections[i], strlen(sections[i]), &part) == 1 &&
		    part >= whole.nparts)
			abort();
	}
	/* a damaged cached form is refused or decodes to a tree that can be written */
	if (enc.len > 5) {
		enc.data[enc.len / 2] ^= (char)0x5a;
		struct mime_tree x;
		if (mime_tree_decode(enc.data, enc.len, &x) == 1) {
			buf_reset(&s2);
			(void)mime_tree_imap_body(&x, 0, MIME_IMAP_EXTENDED, NULL, NULL, &s2);
			mime_tree_free(&x);
		}
	}
	buf_free(&enc);
	buf_free(&s1);
	buf_free(&s2);
	mime_tree_free(&whole);
	mime_tree_free(&a);
	mime_tree_free(&b);
	mime_tree_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_limits lim;
	mime_limits_default(&lim);
	if (size < 4) {
		fuzz_one((const char *)data, size, &lim, NULL, 0);
		return 0;
	}
	size_t split[3] = {(size_t)data[1] % 16 + 1, (size_t)data[2] % 16 + 1,
	                   (size_t)data[3] % 64 + 1};
	const char *m = (const char *)data + 4;
	size_t mlen = size - 4;
	fuzz_one(m, mlen, &lim, split, 3);
	/* small limits, picked by the first octet */
	lim.max_depth = data[0] % 4 + 1;
	lim.max_parts = data[0] % 7 + 1;
	lim.max_header = (size_t)(data[0] % 64) + 1;
	lim.max_params = data[0] % 3;
	lim.max_param_len = data[0] % 9;
	lim.max_boundary = data[0] % 5;
	fuzz_one(m, mlen, &lim, split, 3);
	return 0;
}
