/* MIME parser: a corpus of tricky messages (tests/unit/data/mime/) with the
 * exact BODYSTRUCTURE and BODY expected, each fed in one piece, one octet at a
 * time and in pieces of 7; the cached form round trip; offsets; limits.
 * Expected strings follow RFC 9051 7.5.2; where docs/mime.md notes no
 * difference they are what Dovecot 2.3 returns for the same file (its
 * ENVELOPE replaced by the all-NIL one this module writes). */
#include "mail/mime.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#ifndef MIME_DATA
#define MIME_DATA "tests/unit/data/mime/"
#endif

static char *load(const char *name, size_t *len_r)
{
	char path[256];
	snprintf(path, sizeof(path), MIME_DATA "%s", name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		*len_r = 0;
		return NULL;
	}
	static char data[65536];
	*len_r = fread(data, 1, sizeof(data), f);
	fclose(f);
	return data;
}

static int parse_split(const char *msg, size_t len, size_t piece, const struct mime_limits *lim,
                       struct mime_tree *t)
{
	struct mime_parser *p = mime_parser_new(lim);
	if (p == NULL)
		return -1;
	for (size_t i = 0; i < len; i += piece) {
		size_t n = len - i < piece ? len - i : piece;
		if (mime_parser_feed(p, msg + i, n) < 0) {
			mime_parser_free(&p);
			return -1;
		}
	}
	int rc = mime_parser_finish(p, t);
	mime_parser_free(&p);
	return rc;
}

static void check_body(const struct mime_tree *t, unsigned flags, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(mime_tree_imap_body(t, 0, flags, NULL, NULL, &b) == 1);
	CHECK_STR(b.data, want);
	buf_free(&b);
}

/* every part inside its parent's body, after its previous sibling */
static void check_nesting(const struct mime_tree *t, size_t len)
{
	CHECK(t->nparts >= 1);
	for (uint32_t i = 0; i < t->nparts; i++) {
		const struct mime_part *p = &t->parts[i];
		uint64_t end = p->header_start + p->header_len + p->body_len;
		CHECK(end <= len);
		if (i == 0) {
			CHECK(p->header_start == 0 && end == len);
			continue;
		}
		const struct mime_part *q = &t->parts[p->parent];
		CHECK(p->parent < i);
		CHECK(p->header_start >= q->header_start + q->header_len);
		CHECK(end <= q->header_start + q->header_len + q->body_len);
	}
}

static const struct {
	const char *file;
	const char *bodystructure;
	const char *body;
} corpus[] = {
    {"nested.eml",
     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 122 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL)"
     "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) "
     "\"alternative\" (\"boundary\" \"b2\") NIL NIL NIL) 10 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0)"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 122 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 1)"
     "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"alternative\") 10) "
     "\"mixed\")"},
    {"missing_final.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)"
     "(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 12 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)",
     NULL},
    /* the first boundary parameter counts; the duplicate is dropped */
    {"dup_boundary.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"first\") NIL NIL NIL)",
     NULL},
    /* a multipart without a usable boundary: the RFC 2045 5.2 default */
    {"empty_boundary.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 3 NIL NIL NIL NIL)", NULL},
    {"no_boundary.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)", NULL},
    {"outer_ends_inner.eml",
     "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL) "
     "\"alternative\" (\"boundary\" \"in\") NIL NIL NIL)"
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"out\") NIL NIL NIL)",
     NULL},
    /* 8-bit header octets: literals for a client without UTF8=ACCEPT */
    {"header_8bit.eml",
     "(\"text\" \"plain\" (\"charset\" \"iso-8859-1\" \"name\" {8}\r\ncaf\xe9.txt) NIL "
     "{9}\r\nd\xc3\xa9j\xc3\xa0 vu \"7bit\" 6 1 NIL NIL NIL NIL)",
     NULL},
    /* RFC 2231 continuations and charsets decoded */
    {"rfc2231.eml",
     "(\"application\" \"x-stuff\" (\"title\" \"This is even more ***fun*** isn't it!\") NIL "
     "NIL \"7bit\" 5 NIL (\"attachment\" (\"filename\" {9}\r\ncaf\xc3\xa9.txt \"size\" \"12\")) "
     "(\"en\" \"de\") NIL)",
     NULL},
    {"no_body.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"},
    {"bare_lf.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL)"
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
     NULL},
    {"no_header_part.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 0 NIL NIL NIL NIL)"
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
     NULL},
    {"digest.eml",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) 2 NIL "
     "NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL "
     "NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)",
     NULL},
    {"simple.eml",
     "(\"text\" \"plain\" (\"charset\" \"UTF-8\") \"<id@x>\" NIL \"quoted-printable\" 16 2 "
     "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"inline\" NIL) NIL \"http://example.test/a\")",
     "(\"text\" \"plain\" (\"charset\" \"UTF-8\") \"<id@x>\" NIL \"quoted-printable\" 16 2)"},
    /* CR alone does not end a line: all header, no body */
    {"cr_only.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)", NULL},
    /* RFC 2046 5.2.1: an encoded message/rfc822 is not parsed */
    {"encoded_message.eml",
     "((\"message\" \"rfc822\" NIL NIL NIL \"base64\" 24 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL "
     "NIL NIL NIL) \"mixed\" (\"boundary\" \"m\") NIL NIL NIL)",
     NULL},
    {"bad_type.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-unknown\" 6 1 NIL NIL NIL NIL)",
     NULL},
    /* RFC 2045 4: no MIME-Version and no Content-Type: not MIME, the other
     * Content-* fields of the message are ignored (as Dovecot does) */
    {"no_mime_version.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)", NULL},
    {"mime_version.eml",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<a@b>\" NIL \"base64\" 4 1 NIL NIL "
     "(\"en\") NIL)",
     NULL},
    {"embedded_not_mime.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<a@b>\" NIL \"7bit\" 2 0 NIL NIL NIL NIL)"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 23 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0 NIL NIL NIL NIL) 2 NIL "
     "NIL NIL NIL) \"mixed\" (\"boundary\" \"z\") NIL NIL NIL)",
     NULL},
    /* the line end after the inner close delimiter is the outer delimiter's
     * (RFC 2046 5.1.1); Dovecot 2.3 counts it in the message: 63 6 */
    {"forwarded.eml",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 61 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"y\") NIL NIL NIL) 5 NIL NIL NIL NIL) \"mixed\" (\"boundary\" "
     "\"z\") "
     "NIL NIL NIL)",
     NULL},
    {"padding.eml",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"a b\") NIL NIL NIL)",
     NULL},
};

static void test_corpus(void)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		size_t len;
		const char *msg = load(corpus[i].file, &len);
		CHECK(msg != NULL);
		if (msg == NULL)
			continue;
		struct mime_tree whole, one, seven, dec;
		CHECK(mime_parse(msg, len, NULL, &whole) == 1);
		check_body(&whole, MIME_IMAP_EXTENDED, corpus[i].bodystructure);
		if (corpus[i].body != NULL)
			check_body(&whole, 0, corpus[i].body);
		check_nesting(&whole, len);
		CHECK(parse_split(msg, len, 1, NULL, &one) == 1);
		CHECK(mime_tree_equal(&whole, &one));
		CHECK(parse_split(msg, len, 7, NULL, &seven) == 1);
		CHECK(mime_tree_equal(&whole, &seven));
		struct buf enc;
		buf_init(&enc, 0);
		CHECK(mime_tree_encode(&whole, &enc) == 1);
		CHECK(mime_tree_decode(enc.data, enc.len, &dec) == 1);
		CHECK(mime_tree_equal(&whole, &dec));
		check_body(&dec, MIME_IMAP_EXTENDED, corpus[i].bodystructure);
		/* any truncation of the cached form is refused */
		for (size_t cut = 0; cut < enc.len; cut++) {
			struct mime_tree bad;
			CHECK(mime_tree_decode(enc.data, cut, &bad) == -1);
		}
		if (!mime_tree_equal(&whole, &one))
			fprintf(stderr, "  in %s\n", corpus[i].file);
		buf_free(&enc);
		mime_tree_free(&whole);
		mime_tree_free(&one);
		mime_tree_free(&seven);
		mime_tree_free(&dec);
	}
}

static void test_offsets(void)
{
	size_t len;
	const char *msg = load("nested.eml", &len);
	struct mime_tree t;
	CHECK(mime_parse(msg, len, NULL, &t) == 1);
	CHECK(t.nparts == 6);
	/* part 1: "Content-Type: text/plain; charset=utf-8\r\n\r\n" then "hello" */
	CHECK(t.parts[1].parent == 0 && t.parts[1].header_start == 59 &&
	      t.parts[1].header_len == 43 && t.parts[1].body_len == 5);
	CHECK(memcmp(msg + 59 + 43, "hello\r\n--b1", 11) == 0);
	/* part 2 (message/rfc822) and its message (part 3), whose parts are 4, 5 */
	CHECK(t.parts[2].flags & MIME_PART_MESSAGE);
	CHECK(t.parts[2].child == 3 && t.parts[3].parent == 2 && t.parts[3].header_start == 147);
	CHECK(t.parts[3].header_start + t.parts[3].header_len + t.parts[3].body_len ==
	      t.parts[2].header_start + t.parts[2].header_len + t.parts[2].body_len);
	CHECK(t.parts[3].child == 4 && t.parts[4].next == 5 && t.parts[5].next == MIME_NONE);
	CHECK(memcmp(msg + t.parts[4].header_start + t.parts[4].header_len, "plain\r\nline2",
	             t.parts[4].body_len) == 0);
	CHECK(t.parts[4].header_len == 2 && t.parts[4].depth == 3);
	size_t vl;
	const char *v =
	    mime_tree_param(&t, t.parts[3].ct_param, t.parts[3].ct_nparam, "boundary", &vl);
	CHECK(v != NULL && vl == 2 && memcmp(v, "b2", 2) == 0);
	mime_tree_free(&t);
}

static void test_section(void)
{
	size_t len;
	const char *msg = load("nested.eml", &len);
	struct mime_tree t;
	CHECK(mime_parse(msg, len, NULL, &t) == 1);
	/* parts: 0 multipart/mixed, 1 text/plain, 2 message/rfc822, 3 its
	 * message (multipart/alternative), 4 and 5 the alternatives */
	static const struct {
		const char *spec;
		int rc;
		uint32_t part;
	} cases[] = {
	    {"1", 1, 1},  {"2", 1, 2},   {"2.1", 1, 4},   {"2.2", 1, 5},
	    {"3", 0, 0},  {"1.1", 0, 0}, {"2.3", 0, 0},   {"2.1.1", 0, 0},
	    {"0", -1, 0}, {"01", -1, 0}, {"1.", -1, 0},   {".1", -1, 0},
	    {"", -1, 0},  {"1a", -1, 0}, {"2..1", -1, 0}, {"99999999999", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t part = MIME_NONE;
		int rc = mime_tree_section(&t, cases[i].spec, strlen(cases[i].spec), &part);
		CHECK(rc == cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "  section %s: %d\n", cases[i].spec, rc);
		if (rc == 1)
			CHECK(part == cases[i].part);
	}
	mime_tree_free(&t);
	/* a message that is not multipart has one part, 1; inside an embedded
	 * message that is not multipart, 2.1 is that message */
	const char one[] = "Subject: x\r\n\r\nbody\r\n";
	uint32_t part = MIME_NONE;
	CHECK(mime_parse(one, sizeof(one) - 1, NULL, &t) == 1);
	CHECK(mime_tree_section(&t, "1", 1, &part) == 1 && part == 0);
	CHECK(mime_tree_section(&t, "2", 1, &part) == 0);
	CHECK(mime_tree_section(&t, "1.1", 3, &part) == 0);
	mime_tree_free(&t);
	msg = load("digest.eml", &len);
	CHECK(mime_parse(msg, len, NULL, &t) == 1);
	CHECK(mime_tree_section(&t, "1.1", 3, &part) == 1 && part == 2);
	CHECK(t.parts[2].parent == 1 && (t.parts[1].flags & MIME_PART_MESSAGE));
	CHECK(mime_tree_section(&t, "1.2", 3, &part) == 0);
	CHECK(mime_tree_section(&t, "2", 1, &part) == 1 && part == 3);
	mime_tree_free(&t);
}

static void test_utf8(void)
{
	size_t len;
	const char *msg = load("rfc2231.eml", &len);
	struct mime_tree t;
	CHECK(mime_parse(msg, len, NULL, &t) == 1);
	check_body(
	    &t, MIME_IMAP_EXTENDED | MIME_IMAP_UTF8,
	    "(\"application\" \"x-stuff\" (\"title\" \"This is even more ***fun*** isn't "
	    "it!\") NIL NIL \"7bit\" 5 NIL (\"attachment\" (\"filename\" \"caf\xc3\xa9.txt\" "
	    "\"size\" \"12\")) (\"en\" \"de\") NIL)");
	mime_tree_free(&t);
	/* quoting */
	struct buf b;
	buf_init(&b, 0);
	CHECK(mime_imap_append_string(&b, "a\"b\\c", 5, false) == 1);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\"");
	buf_reset(&b);
	CHECK(mime_imap_append_string(&b, "a\r\nb\0c", 6, true) == 1);
	CHECK(b.len == 10 && memcmp(b.data, "{5}\r\na\r\nbc", 10) == 0);
	buf_reset(&b);
	CHECK(mime_imap_append_string(&b, "\xff", 1, true) == 1);
	CHECK_STR(b.data, "{1}\r\n\xff");
	buf_free(&b);
}

/* Values of the Content-* fields: comments, folding, RFC 2231 details. */
static void test_fields(void)
{
	const char msg[] =
	    "Content-Type: text/plain (c) ; (x) charset = \"a\\\"b\" ;; junk ; name=two words\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Disposition: ATTACHMENT; filename*0=\"a\"; filename*1=b; filename=plain\r\n"
	    "Content-Description: folded\r\n   value \r\n"
	    "Content-ID:\r\n"
	    "\r\n";
	struct mime_tree t;
	CHECK(mime_parse(msg, sizeof(msg) - 1, NULL, &t) == 1);
	check_body(
	    &t, MIME_IMAP_EXTENDED,
	    "(\"text\" \"plain\" (\"charset\" \"a\\\"b\" \"name\" \"two words\") NIL "
	    "\"folded   value\" \"7bit\" 0 0 NIL (\"attachment\" (\"filename\" \"ab\")) NIL NIL)");
	mime_tree_free(&t);
	/* a ISO-8859-1 RFC 2231 value in the "us-ascii" charset stays as octets */
	const char msg2[] = "Content-Type: text/plain; name*=us-ascii''%E9%zz\r\n\r\n";
	CHECK(mime_parse(msg2, sizeof(msg2) - 1, NULL, &t) == 1);
	check_body(&t, 0,
	           "(\"text\" \"plain\" (\"name\" {4}\r\n\xe9%zz \"charset\" \"us-ascii\") NIL NIL "
	           "\"7bit\" 0 0)");
	mime_tree_free(&t);
}

static void test_limits(void)
{
	/* three parts, max_parts 2: the second delimiter is body of the first */
	const char msg[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\n"
	    "two\r\n--b--\r\n";
	struct mime_limits lim;
	mime_limits_default(&lim);
	lim.max_parts = 2;
	struct mime_tree t, t1;
	CHECK(mime_parse(msg, sizeof(msg) - 1, &lim, &t) == 1);
	CHECK(t.nparts == 2);
	CHECK(t.parts[1].body_len == sizeof(msg) - 1 - t.parts[1].header_start - 2);
	CHECK(parse_split(msg, sizeof(msg) - 1, 1, &lim, &t1) == 1);
	CHECK(mime_tree_equal(&t, &t1));
	mime_tree_free(&t);
	mime_tree_free(&t1);
	/* depth 1: the multipart has no parts */
	lim.max_parts = 100;
	lim.max_depth = 1;
	CHECK(mime_parse(msg, sizeof(msg) - 1, &lim, &t) == 1);
	CHECK(t.nparts == 1);
	check_body(
	    &t, 0,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")");
	mime_tree_free(&t);
	/* header limit: fields past it are not parsed, the section still ends at
	 * its empty line */
	const char big[] = "X-Pad: 0123456789\r\nContent-Type: text/html\r\n\r\nbody\r\n";
	mime_limits_default(&lim);
	lim.max_header = 20;
	CHECK(mime_parse(big, sizeof(big) - 1, &lim, &t) == 1);
	CHECK(t.parts[0].flags & MIME_PART_HEADER_TRUNC);
	CHECK(t.parts[0].header_len == 46 && t.parts[0].body_len == 6);
	check_body(&t, 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
	mime_tree_free(&t);
	/* a field that ends within the limit is parsed; one continued past it
	 * is not */
	const char big2[] = "Content-Type: text/html\r\nX-Pad: 0123456789\r\n\r\nbody\r\n";
	lim.max_header = 30;
	for (size_t piece = 1; piece <= sizeof(big2); piece++) {
		CHECK(parse_split(big2, sizeof(big2) - 1, piece, &lim, &t) == 1);
		check_body(&t, 0,
		           "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
		mime_tree_free(&t);
	}
	const char big3[] = "Content-Type: text/html;\r\n charset=utf-8\r\n\r\nbody\r\n";
	CHECK(mime_parse(big3, sizeof(big3) - 1, &lim, &t) == 1);
	check_body(&t, 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
	mime_tree_free(&t);
	/* deep nesting within the default limit, then past it */
	struct buf m;
	buf_init(&m, 0);
	for (int i = 0; i < 150; i++)
		buf_printf(&m, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i,
		           i);
	buf_append_str(&m, "\r\nleaf\r\n");
	CHECK(mime_parse(m.data, m.len, NULL, &t) == 1);
	CHECK(t.nparts == 100);
	check_nesting(&t, m.len);
	mime_tree_free(&t);
	buf_free(&m);
}

/* Memory does not grow with the body: 64 MiB through a multipart, a big
 * header, and the bound on charset conversions. */
static void test_memory(void)
{
	static char chunk[65536];
	struct mime_parser *p = mime_parser_new(NULL);
	const char head[] = "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\n"
	                    "Content-Type: application/octet-stream\r\n\r\n";
	CHECK(mime_parser_feed(p, head, sizeof(head) - 1) == 0);
	size_t base = mime_parser_mem(p), peak = base;
	for (size_t i = 0; i < sizeof(chunk); i += 78) {
		size_t n = sizeof(chunk) - i < 78 ? sizeof(chunk) - i : 78;
		memset(chunk + i, 'Q', n);
		if (n == 78)
			memcpy(chunk + i + 76, "\r\n", 2);
	}
	for (int k = 0; k < 1024; k++) {
		CHECK(mime_parser_feed(p, chunk, sizeof(chunk)) == 0);
		size_t m = mime_parser_mem(p);
		if (m > peak)
			peak = m;
	}
	CHECK(peak == base);
	CHECK(mime_parser_feed(p, "\r\n--=_b--\r\n", 11) == 0);
	struct mime_tree t;
	CHECK(mime_parser_finish(p, &t) == 1);
	mime_parser_free(&p);
	CHECK(t.nparts == 2 && t.parts[1].body_len == 1024u * sizeof(chunk));
	mime_tree_free(&t);

	/* a 1 MiB header: what is kept stays near max_header */
	static const char line[] =
	    "X-Long: 012345678901234567890123456789012345678901234567890123\r\n";
	CHECK(sizeof(line) - 1 == 64);
	p = mime_parser_new(NULL);
	for (int k = 0; k < 16384; k++)
		CHECK(mime_parser_feed(p, line, sizeof(line) - 1) == 0);
	CHECK(mime_parser_mem(p) < 3 * 64 * 1024);
	CHECK(mime_parser_finish(p, &t) == 1);
	mime_parser_free(&p);
	CHECK(t.parts[0].header_len == 16384 * 64 && (t.parts[0].flags & MIME_PART_HEADER_TRUNC));
	mime_tree_free(&t);

	/* at most 1000 charset conversions per message: 20 parts of 60 */
	struct buf m;
	buf_init(&m, 0);
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < 20; i++) {
		buf_append_str(&m, "--b\r\nContent-Type: text/plain");
		for (int j = 0; j < 60; j++)
			buf_printf(&m, ";\r\n p%d*=iso-8859-1''%%E9", j);
		buf_append_str(&m, "\r\n\r\nx\r\n");
	}
	CHECK(mime_parse(m.data, m.len, NULL, &t) == 1);
	CHECK(t.nparts == 21);
	size_t vl;
	const char *v = mime_tree_param(&t, t.parts[1].ct_param, t.parts[1].ct_nparam, "p0", &vl);
	CHECK(v != NULL && vl == 2 && memcmp(v, "\xc3\xa9", 2) == 0);
	v = mime_tree_param(&t, t.parts[20].ct_param, t.parts[20].ct_nparam, "p59", &vl);
	CHECK(v != NULL && vl == 1 && v[0] == '\xe9');
	mime_tree_free(&t);
	buf_free(&m);
}

static void test_decode_bad(void)
{
	CHECK(mime_tree_decode("", 0, &(struct mime_tree){0}) == -1);
	CHECK(mime_tree_decode("HMT\1\0\0\0", 7, &(struct mime_tree){0}) == -1);
	/* a child outside its parent */
	const char msg[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
	struct mime_tree t, d;
	CHECK(mime_parse(msg, sizeof(msg) - 1, NULL, &t) == 1);
	t.parts[1].body_len = 1000;
	struct buf enc;
	buf_init(&enc, 0);
	CHECK(mime_tree_encode(&t, &enc) == 1);
	CHECK(mime_tree_decode(enc.data, enc.len, &d) == -1);
	buf_free(&enc);
	mime_tree_free(&t);
}

int main(void)
{
	test_corpus();
	test_offsets();
	test_section();
	test_utf8();
	test_fields();
	test_limits();
	test_memory();
	test_decode_bad();
	return unit_finish("mime");
}
