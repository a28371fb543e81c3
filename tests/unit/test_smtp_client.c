/* Unit tests for the SMTP client's parsers (src/smtp/smtp_client_parse.c):
 * replies fed whole and one octet at a time, EHLO capabilities, the wire
 * encoder in every split. */
#include "unit.h"

#include "smtp/smtp_client_parse.h"

#include <stdlib.h>

/* Feeds s whole (split 0) or in pieces of split octets; returns the result and
 * the octets consumed in *used_r. */
static enum smtp_reply_result feed(struct smtp_reply_parser *p, const char *s, size_t split,
                                   size_t *used_r)
{
	size_t len = strlen(s), off = 0;
	enum smtp_reply_result rc = SMTP_REPLY_NEED_MORE;

	while (off < len) {
		size_t n = split == 0 || split > len - off ? len - off : split, used;
		rc = smtp_reply_feed(p, s + off, n, &used);
		off += used;
		if (rc != SMTP_REPLY_NEED_MORE)
			break;
		if (used != n) {
			rc = SMTP_REPLY_ERROR;
			break;
		}
	}
	*used_r = off;
	return rc;
}

static void test_replies(void)
{
	static const size_t splits[] = {0, 1, 2, 7};
	for (size_t si = 0; si < sizeof(splits) / sizeof(splits[0]); si++) {
		struct smtp_reply_parser p;
		size_t used;
		smtp_reply_parser_init(&p);

		CHECK(feed(&p, "220 mx.example.test ESMTP ready\r\n", splits[si], &used) ==
		      SMTP_REPLY_DONE);
		CHECK(p.reply.code == 220 && p.reply.nlines == 1 && p.reply.enhanced[0] == '\0');
		CHECK_STR(smtp_reply_line(&p.reply, 0), "mx.example.test ESMTP ready");

		/* multi-line, enhanced codes on every line, then a pipelined reply */
		smtp_reply_parser_reset(&p);
		const char *two = "550-5.1.1 first line\r\n550 5.1.1 second\r\n250 2.1.0 ok\r\n";
		CHECK(feed(&p, two, splits[si], &used) == SMTP_REPLY_DONE);
		CHECK(used == strlen("550-5.1.1 first line\r\n550 5.1.1 second\r\n"));
		CHECK(p.reply.code == 550 && p.reply.nlines == 2);
		CHECK_STR(p.reply.enhanced, "5.1.1");
		CHECK_STR(smtp_reply_line(&p.reply, 0), "first line");
		CHECK_STR(smtp_reply_line(&p.reply, 1), "second");
		struct buf b;
		buf_init(&b, 0);
		CHECK(smtp_reply_format(&p.reply, &b, 200) == 1);
		CHECK_STR(b.data, "550 5.1.1 first line second");
		buf_free(&b);
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, two + used, splits[si], &used) == SMTP_REPLY_DONE);
		CHECK(p.reply.code == 250);
		CHECK_STR(p.reply.enhanced, "2.1.0");

		/* a bare code; a bare LF line end; a class that does not match is text */
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, "354\n", splits[si], &used) == SMTP_REPLY_DONE);
		CHECK(p.reply.code == 354 && p.reply.nlines == 1);
		CHECK_STR(smtp_reply_line(&p.reply, 0), "");
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, "450 5.7.1 odd\r\n", splits[si], &used) == SMTP_REPLY_DONE);
		CHECK(p.reply.enhanced[0] == '\0');
		CHECK_STR(smtp_reply_line(&p.reply, 0), "5.7.1 odd");
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, "250 2.0.0\r\n", splits[si], &used) == SMTP_REPLY_DONE);
		CHECK_STR(p.reply.enhanced, "2.0.0");
		CHECK_STR(smtp_reply_line(&p.reply, 0), "");
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, "250 2.0.1234 x\r\n", splits[si], &used) == SMTP_REPLY_DONE);
		CHECK(p.reply.enhanced[0] == '\0');

		/* need more: no line end yet */
		smtp_reply_parser_reset(&p);
		CHECK(feed(&p, "250-a\r\n250 b", splits[si], &used) == SMTP_REPLY_NEED_MORE);

		/* errors */
		static const char *const bad[] = {
		    "25\r\n",           "650 x\r\n",        "260 x\r\n",         "250x\r\n",
		    "250-a\r\n251 b\r\n", "abc def\r\n",    "1\r\n",             "250\ta\r\n",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			smtp_reply_parser_reset(&p);
			CHECK(feed(&p, bad[i], splits[si], &used) == SMTP_REPLY_ERROR);
			CHECK(p.error != NULL);
		}
		smtp_reply_parser_reset(&p);
		size_t one;
		CHECK(smtp_reply_feed(&p, "250 a\0b\r\n", 9, &one) == SMTP_REPLY_ERROR);
		CHECK_STR(p.error, "NUL in a reply line");
		smtp_reply_parser_free(&p);
	}
}

static void test_limits(void)
{
	struct smtp_reply_parser p;
	size_t used;
	char *line = malloc(SMTP_REPLY_LINE_MAX + 16);

	smtp_reply_parser_init(&p);
	/* exactly the longest line, with CRLF */
	memcpy(line, "250 ", 4);
	memset(line + 4, 'x', SMTP_REPLY_LINE_MAX - 4);
	memcpy(line + SMTP_REPLY_LINE_MAX, "\r\n", 3);
	CHECK(feed(&p, line, 0, &used) == SMTP_REPLY_DONE);
	CHECK(strlen(smtp_reply_line(&p.reply, 0)) == SMTP_REPLY_LINE_MAX - 4);
	/* one more octet: refused, also before any line end arrives */
	smtp_reply_parser_reset(&p);
	memset(line + 4, 'x', SMTP_REPLY_LINE_MAX - 2);
	line[SMTP_REPLY_LINE_MAX + 2] = '\0';
	CHECK(feed(&p, line, 0, &used) == SMTP_REPLY_ERROR);
	CHECK_STR(p.error, "reply line too long");
	smtp_reply_parser_reset(&p);
	memset(line + 4, 'x', SMTP_REPLY_LINE_MAX + 8);
	line[SMTP_REPLY_LINE_MAX + 12] = '\0';
	CHECK(feed(&p, line, 1000, &used) == SMTP_REPLY_ERROR);
	/* too many lines */
	smtp_reply_parser_reset(&p);
	enum smtp_reply_result rc = SMTP_REPLY_NEED_MORE;
	for (int i = 0; i <= SMTP_REPLY_LINES_MAX && rc == SMTP_REPLY_NEED_MORE; i++)
		rc = smtp_reply_feed(&p, "250-x\r\n", 7, &used);
	CHECK(rc == SMTP_REPLY_ERROR);
	CHECK_STR(p.error, "too many reply lines");
	/* a cut diagnostic */
	smtp_reply_parser_reset(&p);
	CHECK(feed(&p, "554 5.7.1 \x01\xff spam detected here\r\n", 0, &used) == SMTP_REPLY_DONE);
	struct buf b;
	buf_init(&b, 0);
	CHECK(smtp_reply_format(&p.reply, &b, 20) == 1);
	CHECK_STR(b.data, "554 5.7.1 ?? spam...");
	buf_free(&b);
	smtp_reply_parser_free(&p);
	free(line);
}

static void test_ehlo(void)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo_caps c;
	size_t used;

	smtp_reply_parser_init(&p);
	CHECK(feed(&p,
	           "250-mx.example.test greets you\r\n250-PIPELINING\r\n250-size 35882577\r\n"
	           "250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
	           "250-AUTH plain Login\r\n250-AUTH=PLAIN\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	           "250-CHUNKING\r\n250-LIMITS RCPTMAX=50 MAILMAX=10 FOO=1 RCPTDOMAINMAX=x\r\n"
	           "250 REQUIRETLS\r\n",
	           0, &used) == SMTP_REPLY_DONE);
	smtp_ehlo_caps_parse(&p.reply, &c);
	CHECK(c.pipelining && c.eightbitmime && c.starttls && c.enhancedstatuscodes && c.dsn &&
	      c.smtputf8 && c.chunking && c.requiretls && !c.binarymime);
	CHECK(c.size && c.size_max == 35882577);
	CHECK(c.rcptmax == 50 && c.mailmax == 10 && c.rcptdomainmax == 0);
	CHECK_STR(c.auth, "PLAIN LOGIN");
	/* the greeting line is no keyword; SIZE without a number; bad SIZE */
	smtp_reply_parser_reset(&p);
	CHECK(feed(&p, "250-PIPELINING\r\n250 SIZE\r\n", 0, &used) == SMTP_REPLY_DONE);
	smtp_ehlo_caps_parse(&p.reply, &c);
	CHECK(!c.pipelining && c.size && c.size_max == 0);
	smtp_reply_parser_reset(&p);
	CHECK(feed(&p, "250-x\r\n250 SIZE 99999999999999999999999\r\n", 0, &used) ==
	      SMTP_REPLY_DONE);
	smtp_ehlo_caps_parse(&p.reply, &c);
	CHECK(!c.size);
	/* not a 250: nothing */
	smtp_reply_parser_reset(&p);
	CHECK(feed(&p, "502-x\r\n502 PIPELINING\r\n", 0, &used) == SMTP_REPLY_DONE);
	smtp_ehlo_caps_parse(&p.reply, &c);
	CHECK(!c.pipelining);
	smtp_reply_parser_free(&p);
}

/* Encodes in pieces of split octets (0: whole). */
static char *wire(const char *in, size_t len, bool dotstuff, size_t split, uint64_t *broken)
{
	struct smtp_wire w;
	struct buf out;
	buf_init(&out, 0);
	smtp_wire_init(&w, dotstuff);
	for (size_t off = 0; off < len;) {
		size_t n = split == 0 || split > len - off ? len - off : split;
		CHECK(smtp_wire_encode(&w, in + off, n, &out) == 1);
		off += n;
	}
	CHECK(smtp_wire_finish(&w, &out) == 1);
	if (broken != NULL)
		*broken = w.lines_broken;
	char *d = buf_steal(&out, NULL);
	return d != NULL ? d : strdup(""); /* nothing appended */
}

static void test_wire(void)
{
	static const struct {
		const char *in, *data, *bdat;
	} cases[] = {
	    {"a\r\nb\r\n", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
	    {"", ".\r\n", ""},
	    {"no end", "no end\r\n.\r\n", "no end\r\n"},
	    /* dot-stuffing, a lone dot line too */
	    {".\r\n..x\r\n", "..\r\n...x\r\n.\r\n", ".\r\n..x\r\n"},
	    {"a\r\n.", "a\r\n..\r\n.\r\n", "a\r\n.\r\n"},
	    /* bare LF and bare CR become CRLF (nothing else is a line end) */
	    {"a\nb\rc\r\r\nd", "a\r\nb\r\nc\r\n\r\nd\r\n.\r\n", "a\r\nb\r\nc\r\n\r\nd\r\n"},
	    {"a\n.\n", "a\r\n..\r\n.\r\n", "a\r\n.\r\n"},
	    {"x\r", "x\r\n.\r\n", "x\r\n"},
	    {"\r\n\r\n", "\r\n\r\n.\r\n", "\r\n\r\n"},
	};
	static const size_t splits[] = {0, 1, 2, 3};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
			char *d = wire(cases[i].in, strlen(cases[i].in), true, splits[s], NULL);
			char *b = wire(cases[i].in, strlen(cases[i].in), false, splits[s], NULL);
			CHECK_STR(d, cases[i].data);
			CHECK_STR(b, cases[i].bdat);
			free(d);
			free(b);
		}
	}
	/* a 2500-octet line: broken after 998, then after 997 + the SP */
	char *longl = malloc(2503);
	memset(longl, 'y', 2500);
	memcpy(longl + 2500, "\r\n", 3);
	for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
		uint64_t broken = 0;
		char *d = wire(longl, 2502, true, splits[s] ? splits[s] * 331 : 0, &broken);
		CHECK(broken == 2);
		size_t l1 = strcspn(d, "\r");
		CHECK(l1 == 998);
		CHECK(strncmp(d + 998, "\r\n ", 3) == 0);
		CHECK(strcspn(d + 1000, "\r") == 998 && d[1001] == 'y');
		CHECK(strlen(d) == 2500 + 2 * 3 + 2 + 3);
		free(d);
	}
	/* exactly 998: not broken */
	uint64_t broken = 9;
	char *d = wire(longl + 1502, 1000, true, 0, &broken);
	CHECK(broken == 0 && strlen(d) == 1003);
	free(d);
	free(longl);
	/* a full buffer is an error */
	struct smtp_wire w;
	struct buf out;
	buf_init(&out, 4);
	smtp_wire_init(&w, true);
	CHECK(smtp_wire_encode(&w, "abcdef", 6, &out) == -1);
	buf_free(&out);
}

int main(void)
{
	test_replies();
	test_limits();
	test_ehlo();
	test_wire();
	return unit_finish("smtp_client");
}
