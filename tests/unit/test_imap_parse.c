/* Unit tests for the IMAP command parser (src/imap/imap_parse.c): the RFC 9051
 * grammar as token dumps (valid and invalid inputs, each with the exact tokens or
 * error), literal resumption in every split, limits at the edge, sequence sets
 * and modified UTF-7. */
#include "unit.h"

#include "imap/imap_parse.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- a driver playing the IMAP session over a byte stream ---- */

struct out {
	char s[8192];
	size_t n;
};

static void out_add(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o->n + 1 < sizeof(o->s); i++)
		o->s[o->n++] = s[i];
	o->s[o->n] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_fmt(struct out *o, const char *fmt, unsigned long long v)
{
	char b[64];
	snprintf(b, sizeof(b), fmt, v);
	out_str(o, b);
}

struct sink_rec {
	struct out o;
	int fail_begin, fail_data; /* fail the n-th call (1-based), 0 never */
	int begins, datas;
};

static int rec_begin(void *ctx, unsigned index, uint64_t size, bool literal8)
{
	struct sink_rec *r = ctx;
	r->begins++;
	out_fmt(&r->o, "[begin %llu ", index);
	out_fmt(&r->o, "%llu", size);
	out_str(&r->o, literal8 ? " 8]" : "]");
	return r->fail_begin == r->begins ? -1 : 0;
}

static int rec_data(void *ctx, const char *data, size_t len)
{
	struct sink_rec *r = ctx;
	r->datas++;
	out_add(&r->o, data, len);
	return r->fail_data == r->datas ? -1 : 0;
}

static void rec_end(void *ctx, bool ok)
{
	struct sink_rec *r = ctx;
	out_str(&r->o, ok ? "[end]" : "[abort]");
}

static const char *const text_names[] = {"",     "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                         "TEXT", "MIME"};

static void dump_tokens(struct out *o, const struct imap_token *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			out_str(o, " ");
		switch (t[i].type) {
		case IMAP_TOKEN_ATOM:
			out_add(o, t[i].data, t[i].len);
			break;
		case IMAP_TOKEN_QUOTED:
			out_str(o, "\"");
			out_add(o, t[i].data, t[i].len);
			out_str(o, "\"");
			break;
		case IMAP_TOKEN_LITERAL:
			out_str(o, (t[i].flags & IMAP_LITERAL_8) ? "~{" : "{");
			out_add(o, t[i].data, t[i].len);
			out_str(o, "}");
			break;
		case IMAP_TOKEN_LITERAL_SINK:
			out_fmt(o, (t[i].flags & IMAP_LITERAL_8) ? "<sink8 %llu>" : "<sink %llu>",
			        t[i].len);
			break;
		case IMAP_TOKEN_LIST:
			out_str(o, "(");
			dump_tokens(o, t + i + 1, t[i].span);
			out_str(o, ")");
			i += t[i].span;
			break;
		case IMAP_TOKEN_SECTION: {
			const struct imap_section *s = t[i].section;
			out_add(o, t[i].data, t[i].len);
			out_str(o, "[");
			for (unsigned k = 0; k < s->nparts; k++)
				out_fmt(o, k == 0 ? "%llu" : ".%llu", s->parts[k]);
			if (s->nparts > 0 && s->text != IMAP_SECTION_NONE)
				out_str(o, ".");
			out_str(o, text_names[s->text]);
			if (t[i].span > 0) {
				out_str(o, " (");
				dump_tokens(o, t + i + 1, t[i].span);
				out_str(o, ")");
			}
			out_str(o, "]");
			if (s->partial) {
				out_fmt(o, "<%llu", s->partial_offset);
				out_fmt(o, ".%llu>", s->partial_count);
			}
			i += t[i].span;
			break;
		}
		}
	}
}

struct drive_opts {
	const struct imap_parse_limits *lim;
	bool authenticated;
	bool sink;
	size_t piece; /* literal octets per feed (0: all at once) */
	int fail_begin, fail_data;
};

/* Feeds input (lines ending in CRLF, literal octets inline) as the session would
 * and writes what happens into o: "+" for each continuation the session would
 * send, then the command dump or "ERR ...", one per command, separated by " | ".
 * Returns the number of commands and errors. */
static int drive(const char *input, size_t len, const struct drive_opts *opt, struct out *o,
                 struct sink_rec *rec)
{
	struct imap_literal_sink sink = {rec_begin, rec_data, rec_end, rec};
	struct imap_parser *p = imap_parser_new(opt->lim, opt->sink ? &sink : NULL);
	int results = 0;
	if (p == NULL)
		abort();
	imap_parser_set_authenticated(p, opt->authenticated);
	size_t pos = 0;
	while (pos < len) {
		const char *eol = memchr(input + pos, '\n', len - pos);
		size_t end = eol ? (size_t)(eol - input) : len;
		size_t l = end;
		if (l > pos && input[l - 1] == '\r')
			l--;
		int r = imap_parser_feed_line(p, input + pos, l - pos);
		pos = eol ? end + 1 : len;
		while (r == IMAP_PARSE_NEED_LITERAL) {
			const struct imap_literal_info *lit = imap_parser_literal(p);
			if (lit->sync)
				out_str(o, "+ ");
			if (lit->discard)
				out_fmt(o, "(drop %llu) ", lit->size);
			uint64_t left = lit->size;
			r = IMAP_PARSE_NEED_LITERAL;
			if (left == 0)
				r = imap_parser_feed_literal(p, NULL, 0, &(size_t){0});
			while (left > 0) {
				size_t n = opt->piece == 0 || opt->piece > left ? (size_t)left
				                                                : opt->piece;
				if (n > len - pos)
					n = len - pos;
				if (n == 0)
					goto done; /* input ends inside the literal */
				size_t used;
				r = imap_parser_feed_literal(p, input + pos, n, &used);
				CHECK(used == n);
				pos += used;
				left -= used;
			}
			CHECK(r == IMAP_PARSE_NEED_LINE);
			r = IMAP_PARSE_NEED_LINE;
		}
		if (r == IMAP_PARSE_NEED_LINE)
			continue;
		if (results++ > 0)
			out_str(o, " | ");
		if (r == IMAP_PARSE_COMMAND) {
			const struct imap_command *c = imap_parser_command(p);
			out_str(o, c->tag);
			out_str(o, " ");
			out_str(o, c->name);
			if (c->uid_name != NULL) {
				out_str(o, " ");
				out_str(o, c->uid_name);
			}
			if (c->nargs > 0) {
				out_str(o, " ");
				dump_tokens(o, c->args, c->nargs);
			}
		} else {
			const struct imap_parse_error *e = imap_parser_error(p);
			out_str(o, "ERR ");
			out_str(o, e->tag != NULL ? e->tag : "*");
			out_str(o, " ");
			out_str(o, e->status);
			if (e->code != NULL) {
				out_str(o, " [");
				out_str(o, e->code);
				out_str(o, "]");
			}
			out_str(o, " ");
			out_str(o, e->text);
		}
		imap_parser_reset(p);
	}
done:
	imap_parser_free(&p);
	CHECK(p == NULL);
	return results;
}

static const char *run(const char *input, const struct drive_opts *opt)
{
	static struct out o;
	struct sink_rec rec;
	memset(&o, 0, sizeof(o));
	memset(&rec, 0, sizeof(rec));
	rec.fail_begin = opt->fail_begin;
	rec.fail_data = opt->fail_data;
	drive(input, strlen(input), opt, &o, &rec);
	return o.s;
}

/* ---- the grammar, table-driven ---- */

static const struct {
	const char *in;
	const char *want;
} grammar_cases[] = {
    /* commands without arguments; names are case-insensitive */
    {"a1 CAPABILITY\r\n", "a1 CAPABILITY"},
    {"a1 noop\r\n", "a1 NOOP"},
    {"A.b-3 logout\r\n", "A.b-3 LOGOUT"},
    {"]x NOOP\r\n", "]x NOOP"}, /* "]" is an ASTRING-CHAR, so a tag char */
    /* atoms, quoted strings, NIL */
    {"a LOGIN alice secret\r\n", "a LOGIN alice secret"},
    {"a LOGIN \"alice\" \"p\\\"a\\\\ss w\"\r\n", "a LOGIN \"alice\" \"p\"a\\ss w\""},
    {"a LOGIN \"\" \"\"\r\n", "a LOGIN \"\" \"\""},
    {"a LOGIN us]er pa]ss\r\n", "a LOGIN us]er pa]ss"},
    {"a SELECT NIL\r\n", "a SELECT NIL"},
    {"a SELECT \"Entw\xc3\xbcrfe\"\r\n", "a SELECT \"Entw\xc3\xbcrfe\""},
    {"a LIST \"\" *\r\n", "a LIST \"\" *"},
    {"a LIST \"\" %/foo*\r\n", "a LIST \"\" %/foo*"},
    {"a LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Sent\") RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n",
     "a LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Sent\") RETURN (CHILDREN STATUS (MESSAGES SIZE))"},
    {"a STATUS INBOX (MESSAGES UIDNEXT)\r\n", "a STATUS INBOX (MESSAGES UIDNEXT)"},
    {"a ID NIL\r\n", "a ID NIL"},
    {"a ID (\"name\" \"x\" \"version\" NIL)\r\n", "a ID (\"name\" \"x\" \"version\" NIL)"},
    {"a ENABLE CONDSTORE UTF8=ACCEPT\r\n", "a ENABLE CONDSTORE UTF8=ACCEPT"},
    {"a STORE 1:* +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n",
     "a STORE 1:* +FLAGS.SILENT (\\Seen \\Deleted $Junk)"},
    {"a STORE $ FLAGS ()\r\n", "a STORE $ FLAGS ()"},
    {"a STORE 1 (UNCHANGEDSINCE 12345678901234) +FLAGS (x)\r\n",
     "a STORE 1 (UNCHANGEDSINCE 12345678901234) +FLAGS (x)"},
    {"a SEARCH (OR (FROM x) (NOT (TO y))) UID 1,3:5\r\n",
     "a SEARCH (OR (FROM x) (NOT (TO y))) UID 1,3:5"},
    {"a SEARCH ((()))\r\n", "a SEARCH ((()))"},
    {"a UID FETCH 1:* (FLAGS)\r\n", "a UID FETCH 1:* (FLAGS)"},
    {"a uid expunge 3\r\n", "a UID EXPUNGE 3"},
    {"a SEARCH HEADER Subject body[x\r\n", "a SEARCH HEADER Subject body[x"},
    /* FETCH sections and partials */
    {"a FETCH 1 BODY[]\r\n", "a FETCH 1 BODY[]"},
    {"a FETCH 1 body.peek[header]\r\n", "a FETCH 1 BODY.PEEK[HEADER]"},
    {"a FETCH 1 (BODY[1.2.MIME] BODY[TEXT]<0.100>)\r\n",
     "a FETCH 1 (BODY[1.2.MIME] BODY[TEXT]<0.100>)"},
    {"a FETCH 1 BODY.PEEK[HEADER.FIELDS (From \"To\" X-Y)]<5.7>\r\n",
     "a FETCH 1 BODY.PEEK[HEADER.FIELDS (From \"To\" X-Y)]<5.7>"},
    {"a FETCH 1 (UID BODY[3.HEADER.FIELDS.NOT (Received)] FLAGS)\r\n",
     "a FETCH 1 (UID BODY[3.HEADER.FIELDS.NOT (Received)] FLAGS)"},
    {"a UID FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[2] BINARY[])\r\n",
     "a UID FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[2] BINARY[])"},
    {"a FETCH 1:2 (FLAGS) (CHANGEDSINCE 5 VANISHED)\r\n",
     "a FETCH 1:2 (FLAGS) (CHANGEDSINCE 5 VANISHED)"},
    {"a FETCH 1 BODY[4.2]\r\n", "a FETCH 1 BODY[4.2]"},
    /* literals */
    {"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "+ + a LOGIN {alice} {secret}"},
    {"a LOGIN {5+}\r\nalice {0+}\r\n\r\n", "a LOGIN {alice} {}"},
    {"a SELECT {3}\r\na b\r\n", "+ a SELECT {a b}"},
    {"a FETCH 1 BODY[HEADER.FIELDS ({4}\r\nFrom)]\r\n", "+ a FETCH 1 BODY[HEADER.FIELDS ({From})]"},
    {"a SEARCH (TEXT {3+}\r\nfoo)\r\n", "a SEARCH (TEXT {foo})"},
    {"a APPEND INBOX UTF8 (~{3}\r\nabc)\r\n", "+ a APPEND INBOX UTF8 (~{abc})"},
    {"a APPEND INBOX (\\Seen) ~{0+}\r\n\r\n", "a APPEND INBOX (\\Seen) ~{}"},
    {"a APPEND INBOX X (~{3}\r\n", "ERR a BAD literal8 is only allowed for APPEND message data"},
    {"a APPEND INBOX ((~{3}\r\n", "ERR a BAD literal8 is only allowed for APPEND message data"},
    {"a APPEND ~{3}\r\n", "ERR a BAD literal8 is only allowed for APPEND message data"},
    /* several commands in a row, each independent */
    {"a NOOP\r\nb NOOP\r\n", "a NOOP | b NOOP"},
    /* errors: untagged */
    {"\r\n", "ERR * BAD Empty command line"},
    {"+a NOOP\r\n", "ERR * BAD Invalid tag"},
    {" a NOOP\r\n", "ERR * BAD Invalid tag"},
    {"a*b NOOP\r\n", "ERR * BAD Invalid tag"},
    {"a\"b NOOP\r\n", "ERR * BAD Invalid tag"},
    /* errors: tagged */
    {"a\r\n", "ERR a BAD Missing command name"},
    {"a \r\n", "ERR a BAD Missing command name"},
    {"a  NOOP\r\n", "ERR a BAD Invalid command name"},
    {"a NO\"OP\r\n", "ERR a BAD Invalid command name"},
    {"a UID\r\n", "ERR a BAD Missing UID command name"},
    {"a NOOP \r\n", "ERR a BAD Extra space"},
    {"a LOGIN a  b\r\n", "ERR a BAD Extra space"},
    {"a LIST ( a)\r\n", "ERR a BAD Extra space"},
    {"a LIST (a )\r\n", "ERR a BAD Extra space"},
    {"a LIST (a\r\n", "ERR a BAD Missing )"},
    {"a LIST a)\r\n", "ERR a BAD Unexpected )"},
    {"a LIST (a)b\r\n", "ERR a BAD Missing space"},
    {"a LIST \"a\"b\r\n", "ERR a BAD Missing space"},
    {"a LOGIN \"abc\r\n", "ERR a BAD Unterminated quoted string"},
    {"a LOGIN \"a\\b\"\r\n", "ERR a BAD Invalid escape in quoted string"},
    {"a LOGIN \"a\rb\"\r\n", "ERR a BAD Invalid character in quoted string"},
    {"a LOGIN \"\xc3\x28\"\r\n", "ERR a BAD Invalid UTF-8 in quoted string"},
    {"a LOGIN \"\xed\xa0\x80\"\r\n", "ERR a BAD Invalid UTF-8 in quoted string"},
    {"a LOGIN \xc3\xbc x\r\n", "ERR a BAD Invalid character"},
    {"a LOGIN a\tb\r\n", "ERR a BAD Invalid character"},
    {"a STORE 1 FLAGS (\\Se\\en)\r\n", "ERR a BAD Invalid characters in atom"},
    {"a LOGIN a{3}\r\n", "ERR a BAD Missing space"},
    {"a LOGIN {3\r\n", "ERR a BAD Invalid literal"},
    {"a LOGIN {}\r\n", "ERR a BAD Invalid literal size"},
    {"a LOGIN {3-}\r\n", "ERR a BAD Invalid literal"}, /* LITERAL- is "{n+}" too */
    {"a LOGIN {+3}\r\n", "ERR a BAD Invalid literal size"},
    {"a LOGIN ~{3\r\n", "ERR a BAD Invalid literal"},
    {"a LOGIN ~x\r\n", "a LOGIN ~x"},
    {"a LOGIN {x}\r\n", "ERR a BAD Invalid literal size"},
    {"a LOGIN {3} x\r\n", "ERR a BAD Literal must end the line"},
    {"a LOGIN {99999999999999999999}\r\n", "ERR a BAD Invalid literal size"},
    {"a LOGIN ~{3}\r\n", "ERR a BAD literal8 is only allowed for APPEND message data"},
    {"a LOGIN {3}\r\nabc{1}\r\n", "+ ERR a BAD Missing space"},
    {"a FETCH 1 BODY[MIME]\r\n", "ERR a BAD Invalid section"},
    {"a FETCH 1 BODY[0]\r\n", "ERR a BAD Invalid section part number"},
    {"a FETCH 1 BODY[1.]\r\n", "ERR a BAD Invalid section"},
    {"a FETCH 1 BODY[HEADER.FIELDS]\r\n", "ERR a BAD Missing header field list"},
    {"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "ERR a BAD Empty header field list"},
    {"a FETCH 1 BODY[HEADER.FIELDS (A B)\r\n", "ERR a BAD Invalid section"},
    {"a FETCH 1 BODY[HEADER.FIELDS (A\r\n", "ERR a BAD Unterminated section"},
    {"a FETCH 1 BODY[HEADER.FIELDS ((A))]\r\n", "ERR a BAD Invalid header field name"},
    {"a FETCH 1 BODY[TEXT]<0.0>\r\n", "ERR a BAD Invalid partial"},
    {"a FETCH 1 BODY[TEXT]<5>\r\n", "ERR a BAD Invalid partial"},
    {"a FETCH 1 BINARY[TEXT]\r\n", "ERR a BAD Invalid section"},
    {"a FETCH 1 BINARY.SIZE[1]<0.5>\r\n", "ERR a BAD BINARY.SIZE takes no partial"},
    {"a FETCH 1 BODY[TEXT]x\r\n", "ERR a BAD Missing space"},
    /* an error, then the next command parses */
    {"a LIST (\r\nb NOOP\r\n", "ERR a BAD Missing ) | b NOOP"},
};

static void test_grammar(void)
{
	struct imap_parse_limits lim;
	imap_parse_limits_default(&lim);
	for (size_t i = 0; i < sizeof(grammar_cases) / sizeof(grammar_cases[0]); i++) {
		/* literal octets all at once, one at a time, and three at a time */
		for (size_t piece = 0; piece <= 3; piece += (piece == 0 ? 1 : 2)) {
			struct drive_opts opt = {
			    .lim = &lim, .authenticated = true, .piece = piece};
			const char *got = run(grammar_cases[i].in, &opt);
			if (strcmp(got, grammar_cases[i].want) != 0)
				fprintf(stderr, "grammar case %zu piece %zu: %s\n", i, piece,
				        grammar_cases[i].in);
			CHECK_STR(got, grammar_cases[i].want);
		}
	}
}

/* Token classes and values as a FETCH/SEARCH/STORE implementation reads them. */
static void test_classes(void)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const char *line = "a X 0 1 4294967296 9223372036854775807 9223372036854775808 1:*,$ $ "
	                   "\\Seen nil foo] %x* 1:0";
	CHECK(imap_parser_feed_line(p, line, strlen(line)) == IMAP_PARSE_COMMAND);
	const struct imap_command *c = imap_parser_command(p);
	CHECK(c->nargs == 12);
	const struct imap_token *t = c->args;
	CHECK(t[0].flags == (IMAP_ATOM_ATOM | IMAP_ATOM_ASTRING | IMAP_ATOM_LIST_MAILBOX |
	                     IMAP_ATOM_NUMBER | IMAP_ATOM_NUMBER32));
	CHECK(t[0].num == 0);
	CHECK((t[1].flags & (IMAP_ATOM_NZ | IMAP_ATOM_SEQSET | IMAP_ATOM_NUMBER32)) ==
	      (IMAP_ATOM_NZ | IMAP_ATOM_SEQSET | IMAP_ATOM_NUMBER32));
	CHECK(t[1].num == 1);
	CHECK((t[2].flags & IMAP_ATOM_NUMBER) && !(t[2].flags & IMAP_ATOM_NUMBER32));
	CHECK(!(t[2].flags & IMAP_ATOM_SEQSET)); /* over 4294967295 */
	CHECK(t[2].num == 4294967296ull);
	CHECK((t[3].flags & IMAP_ATOM_NUMBER) && t[3].num == 9223372036854775807ull);
	CHECK(!(t[4].flags & IMAP_ATOM_NUMBER)); /* over number64 */
	CHECK(t[4].flags & IMAP_ATOM_ATOM);
	CHECK(!(t[5].flags & IMAP_ATOM_SEQSET)); /* "$" only alone */
	CHECK(t[5].flags == IMAP_ATOM_LIST_MAILBOX);
	CHECK(t[6].flags & IMAP_ATOM_SEQSET);
	CHECK(t[7].flags == IMAP_ATOM_FLAG);
	CHECK(t[8].flags & IMAP_ATOM_NIL);
	CHECK(t[9].flags == (IMAP_ATOM_ASTRING | IMAP_ATOM_LIST_MAILBOX));
	CHECK(t[10].flags == IMAP_ATOM_LIST_MAILBOX);
	CHECK(!(t[11].flags & IMAP_ATOM_SEQSET)); /* 0 */
	CHECK(t[11].depth == 0 && t[11].len == 3);
	CHECK(IMAP_TOKEN_IS_ASTRING(&t[9]) && !IMAP_TOKEN_IS_ASTRING(&t[10]));
	CHECK(IMAP_TOKEN_IS_NSTRING(&t[8]) && !IMAP_TOKEN_IS_NSTRING(&t[9]));
	imap_parser_reset(p);
	/* walking siblings: "(a (b c)) d" is 2 arguments at depth 0 */
	line = "a FETCH 1 (a (b c) BODY[HEADER.FIELDS (X {0}";
	CHECK(imap_parser_feed_line(p, line, strlen(line)) == IMAP_PARSE_NEED_LITERAL);
	size_t used;
	CHECK(imap_parser_feed_literal(p, NULL, 0, &used) == IMAP_PARSE_NEED_LINE);
	CHECK(imap_parser_feed_line(p, ")]) \"d\"", 7) == IMAP_PARSE_COMMAND);
	c = imap_parser_command(p);
	t = c->args;
	CHECK(c->nargs == 10);
	CHECK(t[1].type == IMAP_TOKEN_LIST && t[1].span == 7);
	CHECK(imap_token_skip(t, 0) == 1 && imap_token_skip(t, 1) == 9 &&
	      imap_token_skip(t, 3) == 6);
	CHECK(t[6].type == IMAP_TOKEN_SECTION && t[6].span == 2 && t[6].depth == 1);
	CHECK(t[8].type == IMAP_TOKEN_LITERAL && t[8].len == 0 && t[8].depth == 2);
	CHECK(IMAP_TOKEN_IS_ASTRING(&t[8]) && IMAP_TOKEN_IS_STRING(&t[9]));
	CHECK(t[6].section->text == IMAP_SECTION_HEADER_FIELDS && t[6].section->nparts == 0);
	imap_parser_free(&p);
}

/* ---- literal resumption ---- */

static const char *const resume_inputs[] = {
    "a LOGIN {5}\r\nalice {6}\r\nsecret\r\n",
    "a APPEND INBOX (\\Seen) \"01-Jan-2024 00:00:00 +0000\" {12}\r\nHello\r\nWorld\r\n",
    "a APPEND INBOX {3+}\r\nabc {2}\r\nde\r\n",
    "a APPEND INBOX ~{4}\r\na\0bc\r\n",
    "a APPEND {5}\r\nINBOX {3}\r\nxyz\r\nb NOOP\r\n",
    "a FETCH 1 BODY[HEADER.FIELDS ({4+}\r\nFrom {2}\r\nTo)]<0.5>\r\n",
    "a LOGIN {3+}\r\na\0c x\r\nb NOOP\r\n",
};

static void test_resume(void)
{
	struct imap_parse_limits lim;
	imap_parse_limits_default(&lim);
	for (size_t i = 0; i < sizeof(resume_inputs) / sizeof(resume_inputs[0]); i++) {
		const char *in = resume_inputs[i];
		size_t len = strlen(in);
		if (i == 3 || i == 6)
			len = strlen(in) + 1 + strlen(in + strlen(in) + 1);
		struct out one = {0}, each = {0};
		struct sink_rec r1 = {0}, r2 = {0};
		struct drive_opts o1 = {.lim = &lim, .authenticated = true, .sink = true};
		struct drive_opts o2 = o1;
		o2.piece = 1;
		drive(in, len, &o1, &one, &r1);
		drive(in, len, &o2, &each, &r2);
		CHECK_STR(one.s, each.s);
		CHECK(r1.o.n == r2.o.n && memcmp(r1.o.s, r2.o.s, r1.o.n) == 0);
		if (i == 1) {
			CHECK_STR(one.s, "+ a APPEND INBOX (\\Seen) \"01-Jan-2024 00:00:00 +0000\" "
			                 "<sink 12>");
			CHECK_STR(r1.o.s, "[begin 0 12]Hello\r\nWorld[end]");
		}
		if (i == 2) {
			/* MULTIAPPEND: two message literals */
			CHECK_STR(one.s, "+ a APPEND INBOX <sink 3> <sink 2>");
			CHECK_STR(r1.o.s, "[begin 0 3]abc[end][begin 1 2]de[end]");
		}
		if (i == 3) {
			CHECK_STR(one.s, "+ a APPEND INBOX <sink8 4>");
			CHECK(r1.o.n == sizeof("[begin 0 4 8]a\0bc[end]") - 1 &&
			      memcmp(r1.o.s, "[begin 0 4 8]a\0bc[end]", r1.o.n) == 0);
		}
		if (i == 4)
			CHECK_STR(one.s, "+ + a APPEND {INBOX} <sink 3> | b NOOP");
		if (i == 5)
			CHECK_STR(one.s, "+ a FETCH 1 BODY[HEADER.FIELDS ({From} {To})]<0.5>");
		if (i == 6)
			CHECK_STR(one.s, "ERR a BAD NUL in a literal (use literal8) | b NOOP");
	}

	/* without a sink the message is kept like any literal */
	struct drive_opts o = {.lim = &lim, .authenticated = true};
	CHECK_STR(run("a APPEND INBOX {3}\r\nabc\r\n", &o), "+ a APPEND INBOX {abc}");
	/* before authentication nothing goes to the sink */
	struct drive_opts pre = {.lim = &lim, .sink = true};
	CHECK_STR(run("a APPEND INBOX {3}\r\nabc\r\n", &pre), "+ a APPEND INBOX {abc}");

	/* the sink refuses at begin, or in the middle: the rest is dropped and
	 * the next command is parsed */
	struct drive_opts fb = {.lim = &lim, .authenticated = true, .sink = true, .fail_begin = 1};
	CHECK_STR(run("a APPEND INBOX {3}\r\nb NOOP\r\n", &fb),
	          "ERR a NO Message refused | b NOOP");
	CHECK_STR(run("a APPEND INBOX {3+}\r\nabc\r\nb NOOP\r\n", &fb),
	          "(drop 3) ERR a NO Message refused | b NOOP");
	struct drive_opts fd = {
	    .lim = &lim, .authenticated = true, .sink = true, .fail_data = 1, .piece = 2};
	struct out ob = {0};
	struct sink_rec rec = {.fail_data = 1};
	const char *in = "a APPEND INBOX {5}\r\nabcde {3+}\r\nxyz\r\nb NOOP\r\n";
	drive(in, strlen(in), &fd, &ob, &rec);
	CHECK_STR(ob.s, "+ (drop 3) ERR a NO Message refused | b NOOP");
	CHECK_STR(rec.o.s, "[begin 0 5]ab[abort]");

	/* a syntax error in a line announcing a non-synchronizing literal: its
	 * octets and the rest of the command are dropped before the error */
	CHECK_STR(run("a LOGIN x\"y {3+}\r\nabc {2+}\r\nde y\r\nb NOOP\r\n", &o),
	          "(drop 3) (drop 2) ERR a BAD Missing space | b NOOP");
	/* ...and a synchronizing one is never asked for */
	CHECK_STR(run("a LOGIN x\"y {3}\r\nb NOOP\r\n", &o), "ERR a BAD Missing space | b NOOP");
	/* the session resets mid-literal (e.g. it refuses to send "+") */
	struct imap_parser *p = imap_parser_new(&lim, NULL);
	CHECK(imap_parser_feed_line(p, "a LOGIN {3}", 11) == IMAP_PARSE_NEED_LITERAL);
	imap_parser_reset(p);
	CHECK(imap_parser_feed_line(p, "b NOOP", 6) == IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "b");
	/* a driver that forgets imap_parser_reset gets an error, not a mix of
	 * two commands; feeding octets outside a literal takes none */
	CHECK(imap_parser_feed_line(p, "c NOOP", 6) == IMAP_PARSE_ERROR);
	CHECK(imap_parser_error(p)->bye);
	size_t used = 1;
	CHECK(imap_parser_feed_literal(p, "x", 1, &used) == IMAP_PARSE_NEED_LINE && used == 0);
	imap_parser_reset(p);
	CHECK(imap_parser_feed_line(p, "c NOOP", 6) == IMAP_PARSE_COMMAND);
	imap_parser_free(&p);
	imap_parser_free(&p); /* NULL is fine */
}

/* ---- limits at the edge ---- */

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
	size_t h = strlen(head), t = strlen(tail);
	char *s = malloc(h + n + t + 1);
	if (s == NULL)
		abort();
	memcpy(s, head, h);
	memset(s + h, c, n);
	memcpy(s + h + n, tail, t + 1);
	return s;
}

static void test_limits(void)
{
	struct imap_parse_limits lim;
	imap_parse_limits_default(&lim);
	CHECK(lim.line_max == 16382 && lim.literal_max == 64u * 1024 * 1024);
	CHECK(lim.literal_keep_max_preauth == 4096 && lim.line_max_preauth == 8192);
	lim.line_max = 100;
	lim.literal_keep_max = 10;
	lim.literal_max = 20;
	lim.command_max = 200;
	lim.depth_max = 3;
	lim.args_max = 5;
	struct drive_opts o = {.lim = &lim, .authenticated = true, .sink = true};

	/* line length: "a X " + n = 100 and 101 */
	char *s = repeat("a X ", 'x', 96, "\r\n");
	CHECK(strncmp(run(s, &o), "a X xxx", 7) == 0);
	free(s);
	s = repeat("a X ", 'x', 97, "\r\n");
	CHECK_STR(run(s, &o), "ERR a BAD [TOOBIG] Command line too long");
	free(s);
	/* a continuation line too */
	s = repeat("a X {1}\r\nx ", 'x', 100, "\r\n");
	CHECK_STR(run(s, &o), "+ ERR a BAD [TOOBIG] Command line too long");
	free(s);

	/* kept literal: 10 ok, 11 too big (sync: no "+"; nonsync: dropped) */
	CHECK_STR(run("a LOGIN {10}\r\n0123456789\r\n", &o), "+ a LOGIN {0123456789}");
	CHECK_STR(run("a LOGIN {11}\r\nb NOOP\r\n", &o),
	          "ERR a BAD [TOOBIG] Literal too large | b NOOP");
	CHECK_STR(run("a LOGIN {11+}\r\n0123456789A\r\nb NOOP\r\n", &o),
	          "(drop 11) ERR a BAD [TOOBIG] Literal too large | b NOOP");

	/* APPENDLIMIT: 20 ok, 21 NO [TOOBIG]; non-synchronizing over it: BYE */
	s = repeat("a APPEND INBOX {20}\r\n", 'm', 20, "\r\n");
	CHECK_STR(run(s, &o), "+ a APPEND INBOX <sink 20>");
	free(s);
	CHECK_STR(run("a APPEND INBOX {21}\r\nb NOOP\r\n", &o),
	          "ERR a NO [TOOBIG] Message too large | b NOOP");
	CHECK_STR(run("a APPEND INBOX {21+}\r\n", &o), "ERR a BYE [TOOBIG] Message too large");

	/* depth 3 ok, 4 too deep; a section counts */
	CHECK_STR(run("a X (((x)))\r\n", &o), "a X (((x)))");
	CHECK_STR(run("a X ((((x))))\r\n", &o), "ERR a BAD [LIMIT] Too deeply nested");
	CHECK_STR(run("a FETCH 1 ((BODY[HEADER.FIELDS (A)]))\r\n", &o),
	          "a FETCH 1 ((BODY[HEADER.FIELDS (A)]))");
	CHECK_STR(run("a FETCH 1 (((BODY[HEADER.FIELDS (A)])))\r\n", &o),
	          "ERR a BAD [LIMIT] Too deeply nested");

	/* 5 tokens ok, 6 too many (a list counts as one) */
	CHECK_STR(run("a X 1 2 3 (4)\r\n", &o), "a X 1 2 3 (4)");
	CHECK_STR(run("a X 1 2 3 4 (5)\r\n", &o), "ERR a BAD [LIMIT] Too many arguments");

	/* command size: lines (with CRLF) and kept literals; 200 ok, 201 not */
	lim.args_max = 100;
	lim.literal_keep_max = 1000;
	/* "a X {n}" line: 9 octets + CRLF = 11; literal n; then "" + CRLF = 2 */
	char buf[512];
	snprintf(buf, sizeof(buf), "a X {%d}\r\n", 200 - 11 - 2);
	s = repeat(buf, 'z', 200 - 11 - 2, "\r\n");
	CHECK(strncmp(run(s, &o), "+ a X {zzz", 10) == 0);
	free(s);
	snprintf(buf, sizeof(buf), "a X {%d}\r\n", 200 - 11 - 1);
	s = repeat(buf, 'z', 200 - 11 - 1, "\r\nb NOOP\r\n");
	CHECK_STR(run(s, &o), "+ ERR a BAD [LIMIT] Command too large | b NOOP");
	free(s);
	CHECK_STR(run("a X {190}\r\n", &o), "ERR a BAD [LIMIT] Command too large");

	/* LITERAL-: non-synchronizing up to 4096 only */
	struct imap_parse_limits lm;
	imap_parse_limits_default(&lm);
	lm.nonsync_max = IMAP_LITERAL_MINUS_MAX;
	struct drive_opts om = {.lim = &lm, .authenticated = true, .sink = true};
	s = repeat("a APPEND INBOX {4096+}\r\n", 'q', 4096, "\r\n");
	CHECK_STR(run(s, &om), "a APPEND INBOX <sink 4096>");
	free(s);
	s = repeat("a APPEND INBOX {4097+}\r\n", 'q', 4097, "\r\nb NOOP\r\n");
	CHECK_STR(run(s, &om),
	          "(drop 4097) ERR a BAD [TOOBIG] Non-synchronizing literal too large | b NOOP");
	free(s);

	/* before authentication: 4096-octet literals, 8192-octet lines */
	struct imap_parse_limits d;
	imap_parse_limits_default(&d);
	struct drive_opts pre = {.lim = &d};
	s = repeat("a LOGIN u {4096}\r\n", 'p', 4096, "\r\n");
	CHECK(strncmp(run(s, &pre), "+ a LOGIN u {ppp", 16) == 0);
	free(s);
	CHECK_STR(run("a LOGIN u {4097}\r\n", &pre), "ERR a BAD [TOOBIG] Literal too large");
	/* a non-synchronizing one over the bound cannot be dropped safely */
	CHECK_STR(run("a LOGIN u {4097+}\r\n", &pre), "ERR a BYE [TOOBIG] Literal too large");
	s = repeat("a LOGIN u ", 'p', 8192 - 10, "\r\n");
	CHECK(strncmp(run(s, &pre), "a LOGIN u ppp", 13) == 0);
	free(s);
	s = repeat("a LOGIN u ", 'p', 8192 - 9, "\r\n");
	CHECK_STR(run(s, &pre), "ERR a BAD [TOOBIG] Command line too long");
	free(s);

	/* tag length: 64 ok, 65 not */
	s = repeat("", 't', 64, " NOOP\r\n");
	CHECK(strncmp(run(s, &pre), "tttt", 4) == 0 && strstr(run(s, &pre), " NOOP") != NULL);
	free(s);
	s = repeat("", 't', 65, " NOOP\r\n");
	CHECK_STR(run(s, &pre), "ERR * BAD Invalid tag");
	free(s);
	/* before login: depth 4 ok, 5 not; ID with 30 pairs (61 tokens) fits */
	CHECK_STR(run("a ID ((((x))))\r\n", &pre), "a ID ((((x))))");
	CHECK_STR(run("a ID (((((x)))))\r\n", &pre), "ERR a BAD [LIMIT] Too deeply nested");
	char id[2048] = "a ID (";
	for (int i = 0; i < 30; i++)
		snprintf(id + strlen(id), sizeof(id) - strlen(id), "%s\"k%d\" \"v\"", i ? " " : "",
		         i);
	snprintf(id + strlen(id), sizeof(id) - strlen(id), ")\r\n");
	char want[2048];
	memcpy(want, id, strlen(id) - 2);
	want[strlen(id) - 2] = '\0';
	CHECK_STR(run(id, &pre), want);
	/* the authenticated limits apply from the next command on */
	struct imap_parser *pa = imap_parser_new(&d, NULL);
	CHECK(imap_parser_feed_line(pa, "a LOGIN u {5000}", 16) == IMAP_PARSE_ERROR);
	imap_parser_reset(pa);
	imap_parser_set_authenticated(pa, true);
	CHECK(imap_parser_feed_line(pa, "a LOGIN u {5000}", 16) == IMAP_PARSE_NEED_LITERAL);
	imap_parser_set_authenticated(pa, false); /* mid-command: not yet */
	CHECK(imap_parser_literal(pa)->size == 5000);
	imap_parser_reset(pa);
	CHECK(imap_parser_feed_line(pa, "a LOGIN u {5000}", 16) == IMAP_PARSE_ERROR);
	imap_parser_free(&pa);
	/* a failed command that keeps announcing non-synchronizing literals is
	 * dropped until command_max, then BYE */
	pa = imap_parser_new(&d, NULL);
	int r = imap_parser_feed_line(pa, "a LOGIN x\"y {1+}", 16);
	unsigned rounds = 0;
	while (r == IMAP_PARSE_NEED_LITERAL && rounds++ < 100000) {
		size_t used;
		CHECK(imap_parser_literal(pa)->discard);
		CHECK(imap_parser_feed_literal(pa, "z", 1, &used) == IMAP_PARSE_NEED_LINE);
		r = imap_parser_feed_line(pa, " {1+}", 5);
	}
	/* 16384 octets: the first line (18 with CRLF) and 2338 more of 7 */
	CHECK(r == IMAP_PARSE_ERROR && rounds == 2339);
	CHECK(imap_parser_error(pa)->bye);
	CHECK_STR(imap_parser_error(pa)->text, "Missing space");
	imap_parser_free(&pa);

	/* the line layer dropped a line: BYE */
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	CHECK(imap_parser_line_dropped(p) == IMAP_PARSE_ERROR);
	const struct imap_parse_error *e = imap_parser_error(p);
	CHECK(e->bye && e->kind == IMAP_PARSE_ERR_ABUSE && e->tag == NULL);
	CHECK_STR(e->code, "TOOBIG");
	CHECK_STR(e->status, "BYE");
	imap_parser_free(&p);
}

/* ---- sequence sets ---- */

static void test_seqset(void)
{
	static const struct {
		const char *s;
		int ret;
		uint64_t max;
		const char *members; /* the numbers iterated, comma-separated */
	} cases[] = {
	    {"1", 1, 5, "1"},
	    {"1:3", 1, 5, "1,2,3"},
	    {"3:1", 1, 5, "1,2,3"},
	    {"*", 1, 5, "5"},
	    {"*:4", 1, 5, "4,5"},
	    {"2,4:*,1", 1, 5, "1,2,4,5"},
	    {"1:3,2:4", 1, 5, "1,2,3,4"},
	    {"4:9", 1, 5, "4,5"},
	    {"*", 1, 0, ""},
	    {"4294967295", 1, 5, ""},
	    {"$", 1, 5, ""},
	    {"0", -1, 0, NULL},
	    {"1:0", -1, 0, NULL},
	    {"", -1, 0, NULL},
	    {"1,", -1, 0, NULL},
	    {",1", -1, 0, NULL},
	    {"1::2", -1, 0, NULL},
	    {"4294967296", -1, 0, NULL},
	    {"$,1", -1, 0, NULL},
	    {"01", -1, 0, NULL},
	    {"1:*:2", -1, 0, NULL},
	    {"a", -1, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_seqset set;
		const char *err = NULL;
		int r = imap_seqset_parse(cases[i].s, strlen(cases[i].s), 100, &set, &err);
		CHECK(r == cases[i].ret);
		if (r < 0) {
			CHECK_STR(err, "Invalid sequence set");
			continue;
		}
		struct out o = {0};
		uint64_t cur = 0, n;
		while (imap_seqset_next(&set, cases[i].max, &cur, &n) == 1) {
			out_fmt(&o, o.n == 0 ? "%llu" : ",%llu", n);
			CHECK(imap_seqset_contains(&set, n, cases[i].max));
		}
		CHECK_STR(o.s, cases[i].members);
		/* the resolved form iterates the same numbers */
		struct imap_seqset res;
		CHECK(imap_seqset_resolve(&set, cases[i].max, &res) == 1);
		struct out o2 = {0};
		cur = 0;
		while (imap_seqset_next(&res, cases[i].max, &cur, &n) == 1) {
			out_fmt(&o2, o2.n == 0 ? "%llu" : ",%llu", n);
			CHECK(imap_seqset_contains(&res, n, cases[i].max));
		}
		CHECK_STR(o2.s, cases[i].members);
		for (uint64_t k = 0; k <= cases[i].max + 1; k++)
			CHECK(imap_seqset_contains(&res, k, cases[i].max) ==
			      imap_seqset_contains(&set, k, cases[i].max));
		imap_seqset_free(&res);
		for (uint64_t k = 0; k <= cases[i].max + 1; k++) {
			bool in = false;
			char b[24];
			snprintf(b, sizeof(b), "%llu", (unsigned long long)k);
			for (const char *q = o.s; *q;) {
				size_t l = strcspn(q, ",");
				if (l == strlen(b) && strncmp(q, b, l) == 0)
					in = true;
				q += l + (q[l] == ',');
			}
			CHECK(imap_seqset_contains(&set, k, cases[i].max) == in);
		}
		imap_seqset_free(&set);
	}
	/* the range limit: 3 ok, 4 not */
	struct imap_seqset set;
	const char *err;
	CHECK(imap_seqset_parse("1,2,3", 5, 3, &set, &err) == 1 && set.n == 3);
	imap_seqset_free(&set);
	CHECK(imap_seqset_parse("1,2,3,4", 7, 3, &set, &err) == -1);
	CHECK_STR(err, "Too many ranges in sequence set");
	CHECK(imap_seqset_parse("$", 1, 3, &set, &err) == 1 && set.last_result && set.n == 0);
	imap_seqset_free(&set);
	/* in range: message numbers over the count are an error for the session */
	CHECK(imap_seqset_parse("1:*,7", 5, 3, &set, &err) == 1);
	CHECK(!imap_seqset_in_range(&set, 6));
	CHECK(imap_seqset_in_range(&set, 7));
	/* iteration at the top of the range */
	uint64_t cur = 0, n, count = 0;
	imap_seqset_free(&set);
	CHECK(imap_seqset_parse("4294967294:*", 12, 3, &set, &err) == 1);
	while (imap_seqset_next(&set, 4294967295u, &cur, &n) == 1)
		count++;
	CHECK(count == 2 && n == 4294967295u);
	imap_seqset_free(&set);
	/* resolving merges overlapping and adjacent ranges, drops what is above max */
	struct imap_seqset res;
	CHECK(imap_seqset_parse("9:7,1,2:3,20:30,5", 17, 10, &set, &err) == 1);
	CHECK(imap_seqset_resolve(&set, 18, &res) == 1 && res.resolved && res.n == 3);
	CHECK(res.ranges[0].lo == 1 && res.ranges[0].hi == 3);
	CHECK(res.ranges[1].lo == 5 && res.ranges[1].hi == 5);
	CHECK(res.ranges[2].lo == 7 && res.ranges[2].hi == 9);
	imap_seqset_free(&res);
	CHECK(imap_seqset_resolve(&set, 25, &res) == 1 && res.n == 4);
	CHECK(res.ranges[3].lo == 20 && res.ranges[3].hi == 25);
	imap_seqset_free(&res);
	imap_seqset_free(&set);
}

/* ---- modified UTF-7 ---- */

static void test_mutf7(void)
{
	static const struct {
		const char *utf8, *mutf7;
	} pairs[] = {
	    {"INBOX", "INBOX"},
	    {"", ""},
	    {"A&B", "A&-B"},
	    {"&", "&-"},
	    {"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
	    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-"},
	    {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	     "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, /* RFC 3501 5.1.3 */
	    {"\xf0\x9f\x98\x80", "&2D3eAA-"},
	    {"a\xc3\xa4&\xc3\xb6", "a&AOQ-&-&APY-"},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char buf[256];
		const char *err = NULL;
		long n =
		    imap_mutf7_encode(pairs[i].utf8, strlen(pairs[i].utf8), buf, sizeof(buf), &err);
		CHECK(n == (long)strlen(pairs[i].mutf7));
		CHECK_STR(buf, pairs[i].mutf7);
		n = imap_mutf7_decode(pairs[i].mutf7, strlen(pairs[i].mutf7), buf, sizeof(buf),
		                      &err);
		CHECK(n == (long)strlen(pairs[i].utf8));
		CHECK_STR(buf, pairs[i].utf8);
	}
	static const struct {
		const char *in, *err;
	} bad[] = {
	    {"&", "Unterminated encoded run"},
	    {"&AOQ", "Unterminated encoded run"},
	    {"&-&", "Unterminated encoded run"},
	    {"a\x01", "Invalid character in mailbox name"},
	    {"\xc3\xa4", "Invalid character in mailbox name"},
	    {"&AOQ-&APY-", "Adjacent encoded runs"},
	    {"&AGE-", "Printable ASCII must not be encoded"},
	    {"&AOR-", "Invalid modified BASE64"},  /* stray bits */
	    {"&AO-", "Invalid modified BASE64"},   /* less than a unit */
	    {"&AOQA-", "Invalid modified BASE64"}, /* a spare sextet */
	    {"&AOQ=-", "Invalid modified BASE64"},
	    {"&AO/kAOQ-", "Invalid modified BASE64"}, /* "/" is not modified BASE64 */
	    {"&2D0-", "Invalid UTF-16 surrogate"},    /* lone high */
	    {"&3gA-", "Invalid UTF-16 surrogate"},    /* lone low */
	    {"&2D0AYQ-", "Invalid UTF-16 surrogate"},
	    {"&AAE-", "Invalid character in mailbox name"}, /* encoded control */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[64];
		const char *err = NULL;
		CHECK(imap_mutf7_decode(bad[i].in, strlen(bad[i].in), buf, sizeof(buf), &err) ==
		      -1);
		if (err == NULL || strcmp(err, bad[i].err) != 0)
			fprintf(stderr, "mutf7 bad case %zu\n", i);
		CHECK_STR(err, bad[i].err);
	}
	char buf[8];
	const char *err = NULL;
	CHECK(imap_mutf7_encode("a\xff", 2, buf, sizeof(buf), &err) == -1);
	CHECK_STR(err, "Invalid UTF-8");
	CHECK(imap_mutf7_encode("a\n", 2, buf, sizeof(buf), &err) == -1);
	CHECK_STR(err, "Invalid character in mailbox name");
	CHECK(imap_mutf7_encode("\xc2\x80", 2, buf, sizeof(buf), &err) == -1); /* C1 control */
	CHECK(imap_mutf7_encode("abcdefgh", 8, buf, sizeof(buf), &err) == -1);
	CHECK_STR(err, "Output too small");
	CHECK(imap_mutf7_encode("abcdefg", 7, buf, sizeof(buf), &err) == 7);
	CHECK(imap_mutf7_decode("abcdefgh", 8, buf, sizeof(buf), &err) == -1);
	/* every code point that may appear round-trips, between ASCII and in pairs */
	unsigned bad_rt = 0;
	for (uint32_t cp = 0xa0; cp < 0x110000; cp += (cp < 0x10000 ? 1 : 97)) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char u8[16], m7[64], back7[16];
		size_t l = 0;
		u8[l++] = 'a';
		for (int rep = 0; rep < 2; rep++) {
			if (cp < 0x800) {
				u8[l++] = (char)(0xc0 | (cp >> 6));
			} else if (cp < 0x10000) {
				u8[l++] = (char)(0xe0 | (cp >> 12));
				u8[l++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			} else {
				u8[l++] = (char)(0xf0 | (cp >> 18));
				u8[l++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				u8[l++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			}
			u8[l++] = (char)(0x80 | (cp & 0x3f));
		}
		u8[l++] = 'b';
		long ml7 = imap_mutf7_encode(u8, l, m7, sizeof(m7), &err);
		long bl =
		    ml7 < 0 ? -1 : imap_mutf7_decode(m7, (size_t)ml7, back7, sizeof(back7), &err);
		if (bl != (long)l || memcmp(back7, u8, l) != 0)
			bad_rt++;
	}
	CHECK(bad_rt == 0);
	/* the documented output bounds hold at the worst case */
	char w[6];
	CHECK(imap_mutf7_encode("\xc3\xa4", 2, w, 2 * 5 / 2 + 1, &err) == 5);
	CHECK_STR(w, "&AOQ-");
	CHECK(imap_mutf7_encode("&&", 2, w, 2 * 5 / 2 + 1, &err) == 4);
	CHECK(imap_mutf7_decode("&ZeU-", 5, w, 5 + 1, &err) == 3);
	/* a long run of non-ASCII round-trips as one run */
	char u[600], m[1200], back[600];
	size_t ul = 0;
	for (int i = 0; i < 200; i++) {
		u[ul++] = (char)0xc3;
		u[ul++] = (char)(0xa0 + i % 16);
	}
	long ml = imap_mutf7_encode(u, ul, m, sizeof(m), &err);
	CHECK(ml > 0 && m[0] == '&' && memchr(m + 1, '&', (size_t)ml - 1) == NULL);
	CHECK(imap_mutf7_decode(m, (size_t)ml, back, sizeof(back), &err) == (long)ul);
	CHECK(memcmp(back, u, ul) == 0);
}

int main(void)
{
	test_grammar();
	test_classes();
	test_resume();
	test_limits();
	test_seqset();
	test_mutf7();
	return unit_finish("imap_parse");
}
