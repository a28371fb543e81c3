/* Unit tests for the POP3 parsers (src/pop3/pop3_parse.c): command lines, numbers,
 * the dot-stuffing writer fed in random splits, and the TOP cut. */
#include "unit.h"

#include "pop3/pop3_parse.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- command lines ---- */

static const struct {
	const char *line;
	int ret;
	enum pop3_verb verb;
	const char *args;
	unsigned argc;
	const char *arg0, *arg1;
} cmd_cases[] = {
    {"USER alice@example.test", 1, POP3_VERB_USER, "alice@example.test", 1, "alice@example.test",
     NULL},
    {"user alice", 1, POP3_VERB_USER, "alice", 1, "alice", NULL},
    {"PASS pass word  x", 1, POP3_VERB_PASS, "pass word  x", 3, "pass", "word"},
    {"PASS  lead", 1, POP3_VERB_PASS, " lead", 1, "lead", NULL},
    {"Capa", 1, POP3_VERB_CAPA, "", 0, NULL, NULL},
    {"STLS", 1, POP3_VERB_STLS, "", 0, NULL, NULL},
    {"QUIT", 1, POP3_VERB_QUIT, "", 0, NULL, NULL},
    {"STAT", 1, POP3_VERB_STAT, "", 0, NULL, NULL},
    {"LIST", 1, POP3_VERB_LIST, "", 0, NULL, NULL},
    {"LIST 1", 1, POP3_VERB_LIST, "1", 1, "1", NULL},
    {"LIST ", 1, POP3_VERB_LIST, "", 0, NULL, NULL},
    {"RETR 12", 1, POP3_VERB_RETR, "12", 1, "12", NULL},
    {"DELE 3", 1, POP3_VERB_DELE, "3", 1, "3", NULL},
    {"NOOP", 1, POP3_VERB_NOOP, "", 0, NULL, NULL},
    {"RSET", 1, POP3_VERB_RSET, "", 0, NULL, NULL},
    {"TOP 1 10", 1, POP3_VERB_TOP, "1 10", 2, "1", "10"},
    {"top 1 10 x", 1, POP3_VERB_TOP, "1 10 x", 3, "1", "10"},
    {"UIDL", 1, POP3_VERB_UIDL, "", 0, NULL, NULL},
    {"AUTH PLAIN AGFsaWNlAHNlY3JldA==", 1, POP3_VERB_AUTH, "PLAIN AGFsaWNlAHNlY3JldA==", 2, "PLAIN",
     "AGFsaWNlAHNlY3JldA=="},
    {"AUTH SCRAM-SHA-256 =", 1, POP3_VERB_AUTH, "SCRAM-SHA-256 =", 2, "SCRAM-SHA-256", "="},
    {"APOP alice 0123", 1, POP3_VERB_UNKNOWN, "alice 0123", 2, "alice", "0123"},
    {"", 1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
    {" LIST", 1, POP3_VERB_UNKNOWN, "LIST", 1, "LIST", NULL},
    {"LISTX", 1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
    {"LI", 1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
    {"PASS tab\there", 1, POP3_VERB_PASS, "tab\there", 1, "tab\there", NULL},
    {"PASS a\rb", -1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
    {"USER \x01", -1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
    {"NOOP\x7f", -1, POP3_VERB_UNKNOWN, "", 0, NULL, NULL},
};

static void test_command_parse(void)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		struct pop3_command cmd;
		const char *line = cmd_cases[i].line;
		int r = pop3_command_parse(line, strlen(line), &cmd);
		CHECK(r == cmd_cases[i].ret);
		if (r != cmd_cases[i].ret) {
			fprintf(stderr, "  case %zu: %s\n", i, line);
			continue;
		}
		if (r < 0)
			continue;
		CHECK(cmd.verb == cmd_cases[i].verb);
		CHECK(cmd.args_len == strlen(cmd_cases[i].args) &&
		      memcmp(cmd.args, cmd_cases[i].args, cmd.args_len) == 0);
		CHECK(cmd.argc == cmd_cases[i].argc);
		if (cmd_cases[i].arg0 != NULL)
			CHECK(cmd.argc >= 1 && cmd.argl[0] == strlen(cmd_cases[i].arg0) &&
			      memcmp(cmd.argv[0], cmd_cases[i].arg0, cmd.argl[0]) == 0);
		if (cmd_cases[i].arg1 != NULL)
			CHECK(cmd.argc >= 2 && cmd.argl[1] == strlen(cmd_cases[i].arg1) &&
			      memcmp(cmd.argv[1], cmd_cases[i].arg1, cmd.argl[1]) == 0);
	}
	/* a NUL inside the line is a syntax error, not a truncation */
	struct pop3_command cmd;
	CHECK(pop3_command_parse("USER a\0b", 8, &cmd) == -1);
}

static void test_numbers(void)
{
	static const struct {
		const char *s;
		int ret;
		uint32_t v;
	} cases[] = {
	    {"0", 1, 0},           {"1", 1, 1},
	    {"007", 1, 7},         {"4294967295", 1, UINT32_MAX},
	    {"4294967296", -1, 0}, {"99999999999", -1, 0},
	    {"", -1, 0},           {"-1", -1, 0},
	    {"+1", -1, 0},         {"1a", -1, 0},
	    {" 1", -1, 0},         {"0000000001", 1, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t v = 12345;
		int r = pop3_parse_number(cases[i].s, strlen(cases[i].s), &v);
		CHECK(r == cases[i].ret);
		if (r == 1)
			CHECK(v == cases[i].v);
	}
}

/* ---- dot-stuffing ---- */

struct collect {
	char *data;
	size_t len, cap;
	const char *in_lo, *in_hi; /* the span fed, to check from_input */
	int bad_from_input;
};

static void collect_emit(void *ctx, const char *data, size_t len, bool from_input)
{
	struct collect *c = ctx;
	bool inside = data >= c->in_lo && data + len <= c->in_hi;
	if (from_input != inside)
		c->bad_from_input++;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2 + 16;
		c->data = realloc(c->data, c->cap);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
}

/* The reference: a line-by-line rewrite. */
static char *reference_stuff(const char *in, size_t len, size_t *outlen)
{
	char *out = malloc(len * 2 + 8);
	size_t o = 0;
	bool bol = true;
	for (size_t i = 0; i < len; i++) {
		if (bol && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		bol = in[i] == '\n';
	}
	if (len > 0 && !(len >= 2 && in[len - 2] == '\r' && in[len - 1] == '\n')) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	o += 3;
	*outlen = o;
	return out;
}

static void stuff_check(const char *in, size_t len, unsigned seed)
{
	size_t rlen;
	char *ref = reference_stuff(in, len, &rlen);
	/* several random splits, including one byte at a time */
	for (int round = 0; round < 6; round++) {
		struct collect c = {0};
		struct pop3_dotstuff d;
		pop3_dotstuff_init(&d);
		size_t pos = 0;
		srand(seed + (unsigned)round);
		while (pos < len) {
			size_t n = round == 0 ? 1 : (size_t)(rand() % 7) + (round > 3 ? 0 : 1);
			if (n > len - pos)
				n = len - pos;
			/* feed from a separate copy, so from_input can be checked per chunk */
			char *chunk = malloc(n + 1);
			memcpy(chunk, in + pos, n);
			c.in_lo = chunk;
			c.in_hi = chunk + n;
			pop3_dotstuff_feed(&d, chunk, n, collect_emit, &c);
			free(chunk);
			pos += n;
		}
		c.in_lo = c.in_hi = NULL;
		pop3_dotstuff_finish(&d, collect_emit, &c);
		CHECK(c.len == rlen && memcmp(c.data, ref, rlen) == 0);
		CHECK(c.bad_from_input == 0);
		CHECK(d.total == len);
		free(c.data);
	}
	free(ref);
}

static void test_dotstuff(void)
{
	static const char *const cases[] = {
	    "",
	    "a\r\n",
	    ".\r\n",
	    "..\r\n",
	    "Subject: x\r\n\r\n.hidden\r\n..two\r\nend.\r\n.\r\n",
	    "no final crlf",
	    "ends in cr\r",
	    "bare\nlf\n.x\n",
	    ".",
	    "\r\n.\r\n.\r\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		stuff_check(cases[i], strlen(cases[i]), (unsigned)i);
	/* random messages made of '.', '\r', '\n', 'a' */
	static const char alphabet[] = ".\r\na";
	for (unsigned k = 0; k < 300; k++) {
		char buf[200];
		srand(1000 + k);
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = alphabet[rand() % 4];
		stuff_check(buf, len, k);
	}
}

/* ---- TOP ---- */

static void test_top(void)
{
	static const struct {
		const char *msg;
		uint32_t lines;
		const char *want;
	} cases[] = {
	    {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 0, "A: 1\r\nB: 2\r\n\r\n"},
	    {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 2, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"},
	    {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 3, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"},
	    {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 99,
	     "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"},
	    {"A: 1\r\n\r\nl1\r\nno crlf", 5, "A: 1\r\n\r\nl1\r\nno crlf"},
	    {"A: 1\r\nheader only\r\n", 0, "A: 1\r\nheader only\r\n"},
	    {"\r\nbody\r\n", 0, "\r\n"},
	    {"\r\nbody\r\n", 1, "\r\nbody\r\n"},
	    {"A: 1\n\nb1\nb2\n", 1, "A: 1\n\nb1\n"},
	    {"", 3, ""},
	    {"A: 1\r\n\r\n\r\n\r\nx\r\n", 1, "A: 1\r\n\r\n\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = pop3_top_length(cases[i].msg, strlen(cases[i].msg), cases[i].lines);
		CHECK(n == strlen(cases[i].want) && memcmp(cases[i].msg, cases[i].want, n) == 0);
		if (n != strlen(cases[i].want))
			fprintf(stderr, "  top case %zu: got %zu\n", i, n);
	}
}

/* ---- the chunked reply body (TOP cut + dot-stuffing): every split ---- */

/* Feeds msg to a reply body in the chunks split[] marks (offsets, ascending) and
 * checks the result against the reference of the TOP prefix (or the whole). */
static void reply_body_check(const char *msg, size_t len, bool top, uint32_t lines,
                             const size_t *split, size_t nsplit)
{
	size_t want_len = top ? pop3_top_length(msg, len, lines) : len;
	size_t rlen;
	char *ref = reference_stuff(msg, want_len, &rlen);
	struct collect c = {0};
	struct pop3_reply_body r;
	pop3_reply_body_init(&r, top, lines);
	size_t pos = 0, used = 0;
	for (size_t k = 0; k <= nsplit; k++) {
		size_t end = k < nsplit ? split[k] : len;
		char *chunk = malloc(end - pos + 1);
		memcpy(chunk, msg + pos, end - pos);
		c.in_lo = chunk;
		c.in_hi = chunk + (end - pos);
		size_t n = pop3_reply_body_feed(&r, chunk, end - pos, collect_emit, &c);
		CHECK(n <= end - pos);
		CHECK(n == end - pos || r.done); /* fewer only once TOP has its cut */
		used += n;
		free(chunk);
		pos = end;
	}
	c.in_lo = c.in_hi = NULL;
	pop3_reply_body_finish(&r, collect_emit, &c);
	CHECK(used == want_len);
	CHECK(c.len == rlen && memcmp(c.data, ref, rlen) == 0);
	if (!(c.len == rlen && memcmp(c.data, ref, rlen) == 0))
		fprintf(stderr, "  reply body: len %zu top %d lines %u splits %zu\n", len, top,
		        lines, nsplit);
	CHECK(c.bad_from_input == 0);
	free(c.data);
	free(ref);
}

static void test_reply_body_splits(void)
{
	static const char *const cases[] = {
	    "A: 1\r\nB: 2\r\n\r\n.l1\r\nl2\r\n..l3\r\n.\r\n",
	    "A: 1\r\n\r\nl1\r\nlast line without crlf",
	    ".A: x\r\n\r\n\r\n.\r\n.",
	    "A: 1\n\n.b1\nb2\n",
	    "header only, no crlf",
	    "A: 1\r\n\r\nends in cr\r",
	    "\r\n\r\n.\r\n\r\n",
	};
	static const uint32_t top_lines[] = {0, 1, 2, 3, 100};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = cases[i];
		size_t len = strlen(m);
		for (int t = -1; t < (int)(sizeof(top_lines) / sizeof(top_lines[0])); t++) {
			bool top = t >= 0;
			uint32_t lines = top ? top_lines[t] : 0;
			reply_body_check(m, len, top, lines, NULL, 0);
			/* every single split and every pair of splits (empty chunks too) */
			for (size_t a = 0; a <= len; a++) {
				reply_body_check(m, len, top, lines, &a, 1);
				for (size_t b = a; b <= len; b++) {
					size_t sp[2] = {a, b};
					reply_body_check(m, len, top, lines, sp, 2);
				}
			}
			/* one byte at a time */
			size_t *all = malloc((len + 1) * sizeof(*all));
			for (size_t a = 0; a < len; a++)
				all[a] = a + 1;
			reply_body_check(m, len, top, lines, all, len ? len - 1 : 0);
			free(all);
		}
	}
}

static void test_parse_count(void)
{
	uint32_t v = 7;
	CHECK(pop3_parse_count("0", 1, &v) == 1 && v == 0);
	CHECK(pop3_parse_count("42", 2, &v) == 1 && v == 42);
	CHECK(pop3_parse_count("4294967295", 10, &v) == 1 && v == UINT32_MAX);
	CHECK(pop3_parse_count("4294967296", 10, &v) == 1 && v == UINT32_MAX);
	CHECK(pop3_parse_count("99999999999999999999999", 23, &v) == 1 && v == UINT32_MAX);
	CHECK(pop3_parse_count("", 0, &v) == -1);
	CHECK(pop3_parse_count("-1", 2, &v) == -1);
	CHECK(pop3_parse_count("1x", 2, &v) == -1);
}

int main(void)
{
	test_parse_count();
	test_command_parse();
	test_numbers();
	test_dotstuff();
	test_top();
	test_reply_body_splits();
	return unit_finish("pop3");
}
