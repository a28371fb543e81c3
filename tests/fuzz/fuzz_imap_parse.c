/* libFuzzer target: IMAP command streams through the command parser, driven as
 * the session drives it (lines, then literal octets), checking its invariants:
 * feeding literal octets one at a time gives the same transcript as feeding them
 * in one piece; no token exceeds its limit; lists and sections nest consistently;
 * every error names a status and a text. The first input byte picks the limits
 * and the state. The sequence-set and modified UTF-7 helpers get every atom, and
 * a decoded mailbox name must encode back to its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"

struct transcript {
	uint64_t hash;
	unsigned long events;
};

static void mix(struct transcript *t, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		t->hash = (t->hash ^ p[i]) * 1099511628211ull;
	t->events++;
}

static void mix_u64(struct transcript *t, uint64_t v)
{
	mix(t, &v, sizeof(v));
}

static int sink_begin(void *ctx, unsigned index, uint64_t size, bool literal8)
{
	mix_u64(ctx, 0x100 + index);
	mix_u64(ctx, size);
	return index == 3 ? -1 : 0; /* a refusal now and then */
}

static int sink_data(void *ctx, const char *data, size_t len)
{
	/* data pieces differ with the split: record the octets only */
	struct transcript *t = ctx;
	const unsigned char *p = (const unsigned char *)data;
	for (size_t i = 0; i < len; i++)
		t->hash = (t->hash ^ p[i]) * 1099511628211ull;
	return 0;
}

static void sink_end(void *ctx, bool ok)
{
	mix_u64(ctx, ok ? 0x200 : 0x201);
}

static void check_helpers(const char *s, size_t len)
{
	struct imap_seqset set;
	const char *err;
	if (imap_seqset_parse(s, len, 64, &set, &err) == 1) {
		uint64_t cur = 0, n, prev = 0, count = 0;
		while (imap_seqset_next(&set, 50, &cur, &n) == 1) {
			if (n <= prev || n > 50 || !imap_seqset_contains(&set, n, 50))
				abort();
			prev = n;
			if (++count > 50)
				abort();
		}
		/* the resolved form holds the same numbers */
		struct imap_seqset res;
		if (imap_seqset_resolve(&set, 50, &res) == 1) {
			for (uint64_t k = 0; k <= 51; k++)
				if (imap_seqset_contains(&res, k, 50) !=
				    imap_seqset_contains(&set, k, 50))
					abort();
			uint64_t c2 = 0, m, count2 = 0;
			while (imap_seqset_next(&res, 50, &c2, &m) == 1)
				count2++;
			if (count2 != count)
				abort();
			imap_seqset_free(&res);
		}
		imap_seqset_free(&set);
	}
	char out[512], back[1300];
	if (len + 1 > sizeof(out))
		return;
	/* the documented bounds: len + 1 to decode, len * 5 / 2 + 1 to encode */
	long n = imap_mutf7_decode(s, len, out, len + 1, &err);
	if (n >= 0) {
		long m = imap_mutf7_encode(out, (size_t)n, back, (size_t)n * 5 / 2 + 1, &err);
		if (m != (long)len || memcmp(back, s, len) != 0)
			abort();
	}
}

static void check_tokens(const struct imap_command *c, const struct imap_parse_limits *lim,
                         bool authenticated)
{
	size_t keep = authenticated ? lim->literal_keep_max : lim->literal_keep_max_preauth;
	size_t line = authenticated ? lim->line_max : lim->line_max_preauth;
	unsigned depth = authenticated ? lim->depth_max : lim->depth_max_preauth;
	unsigned args = authenticated ? lim->args_max : lim->args_max_preauth;
	if (c->tag == NULL || c->name == NULL || c->nargs > args)
		abort();
	if (strlen(c->tag) == 0 || strlen(c->tag) > IMAP_TAG_MAX)
		abort();
	for (unsigned i = 0; i < c->nargs; i++) {
		const struct imap_token *t = &c->args[i];
		if (t->depth > depth)
			abort();
		switch (t->type) {
		case IMAP_TOKEN_ATOM:
			if (t->flags == 0 || t->len == 0 || t->len > line ||
			    t->data[t->len] != '\0')
				abort();
			check_helpers(t->data, t->len);
			break;
		case IMAP_TOKEN_QUOTED:
			if (t->len > line || t->data[t->len] != '\0')
				abort();
			check_helpers(t->data, t->len);
			break;
		case IMAP_TOKEN_LITERAL:
			if (t->len > keep || t->data[t->len] != '\0')
				abort();
			if (!(t->flags & IMAP_LITERAL_8) && memchr(t->data, '\0', t->len) != NULL)
				abort();
			break;
		case IMAP_TOKEN_LITERAL_SINK:
			if (t->data != NULL || t->len > lim->literal_max || !authenticated)
				abort();
			break;
		case IMAP_TOKEN_SECTION:
			if (t->section == NULL || t->section->nparts > IMAP_SECTION_PARTS_MAX)
				abort();
			if (t->section->partial && t->section->partial_count == 0)
				abort();
			/* fall through */
		case IMAP_TOKEN_LIST:
			if (t->span > c->nargs - i - 1)
				abort();
			for (unsigned k = i + 1; k <= i + t->span; k++)
				if (c->args[k].depth <= t->depth)
					abort();
			if (i + t->span + 1 < c->nargs && c->args[i + t->span + 1].depth > t->depth)
				abort();
			break;
		}
	}
}

/* Drives the parser over the stream; literal octets go in pieces of `piece`
 * (0: as much as there is). */
static void drive(const uint8_t *data, size_t len, const struct imap_parse_limits *lim,
                  bool authenticated, bool use_sink, size_t piece, struct transcript *tr)
{
	struct imap_literal_sink sink = {sink_begin, sink_data, sink_end, tr};
	struct imap_parser *p = imap_parser_new(lim, use_sink ? &sink : NULL);
	if (p == NULL)
		abort();
	imap_parser_set_authenticated(p, authenticated);
	const char *in = (const char *)data;
	size_t pos = 0;
	while (pos < len) {
		const char *eol = memchr(in + pos, '\n', len - pos);
		size_t end = eol ? (size_t)(eol - in) : len;
		size_t l = end > pos && in[end - 1] == '\r' ? end - 1 : end;
		int r = imap_parser_feed_line(p, in + pos, l - pos);
		pos = eol ? end + 1 : len;
		while (r == IMAP_PARSE_NEED_LITERAL) {
			const struct imap_literal_info *lit = imap_parser_literal(p);
			mix_u64(tr, lit->size * 16 + lit->sync * 8 + lit->literal8 * 4 +
			                lit->to_sink * 2 + lit->discard);
			uint64_t left = lit->size;
			if (left > len - pos)
				goto out; /* the input ends inside the literal */
			size_t used;
			if (left == 0)
				r = imap_parser_feed_literal(p, NULL, 0, &used);
			while (left > 0) {
				size_t n = piece == 0 || piece > left ? (size_t)left : piece;
				r = imap_parser_feed_literal(p, in + pos, n, &used);
				if (used != n)
					abort();
				pos += n;
				left -= n;
				if ((left > 0) != (r == IMAP_PARSE_NEED_LITERAL))
					abort();
			}
			if (r != IMAP_PARSE_NEED_LINE)
				abort();
			r = IMAP_PARSE_NEED_LINE;
		}
		if (r == IMAP_PARSE_NEED_LINE)
			continue;
		if (r == IMAP_PARSE_COMMAND) {
			const struct imap_command *c = imap_parser_command(p);
			check_tokens(c, lim, authenticated);
			mix(tr, c->tag, strlen(c->tag));
			mix(tr, c->name, strlen(c->name));
			for (unsigned i = 0; i < c->nargs; i++) {
				mix_u64(tr, c->args[i].type * 1000 + c->args[i].span);
				if (c->args[i].data != NULL)
					mix(tr, c->args[i].data, c->args[i].len);
			}
		} else if (r == IMAP_PARSE_ERROR) {
			const struct imap_parse_error *e = imap_parser_error(p);
			if (e->status == NULL || e->text == NULL || e->kind == IMAP_PARSE_ERR_NONE)
				abort();
			if (e->bye != (strcmp(e->status, "BYE") == 0))
				abort();
			mix_u64(tr, 0x300 + e->kind);
			if (e->tag != NULL)
				mix(tr, e->tag, strlen(e->tag));
			if (e->bye)
				goto out; /* the session closes the connection */
		} else {
			abort();
		}
		imap_parser_reset(p);
	}
out:
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	uint8_t mode = data[0];
	struct imap_parse_limits lim;
	imap_parse_limits_default(&lim);
	if (mode & 1) {
		/* small limits, so that the fuzzer reaches every edge */
		lim.line_max = lim.line_max_preauth = 64;
		lim.literal_max = 40;
		lim.literal_keep_max = lim.literal_keep_max_preauth = 16;
		lim.command_max = lim.command_max_preauth = 256;
		lim.depth_max = lim.depth_max_preauth = 3;
		lim.args_max = lim.args_max_preauth = 12;
	}
	if (mode & 2)
		lim.nonsync_max = (mode & 1) ? 8 : IMAP_LITERAL_MINUS_MAX;
	bool authenticated = (mode & 4) != 0;
	bool use_sink = (mode & 8) != 0;
	struct transcript one = {0}, each = {0}, some = {0};
	drive(data + 1, size - 1, &lim, authenticated, use_sink, 0, &one);
	drive(data + 1, size - 1, &lim, authenticated, use_sink, 1, &each);
	drive(data + 1, size - 1, &lim, authenticated, use_sink, 1 + (mode >> 4), &some);
	if (one.hash != each.hash || one.events != each.events || one.hash != some.hash ||
	    one.events != some.events)
		abort();
	return 0;
}
