/* Unit tests for IMAP SEARCH (src/imap/imap_search.c): programs parsed from real
 * command lines by the command parser, compile errors with their exact texts,
 * evaluation of every non-text key against hand-made messages, and the exact
 * SEARCH / ESEARCH replies. */
#include "unit.h"

#include "imap/imap_parse.h"
#include "imap/imap_search.h"

#include "store/store.h"

#include <event2/buffer.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- driving the parser ---- */

static struct imap_parser *parser;

/* Parses one command (line, and for each "{n}" literal the octets that follow in
 * input up to the next CRLF-terminated line) and compiles its SEARCH program.
 * Returns the compile result; on a parse error returns -2. */
static int compile_cmd(const char *input, struct imap_search **s_r, const char **code_r,
                       const char **error_r)
{
	size_t len = strlen(input), pos = 0;
	int r = IMAP_PARSE_NEED_LINE;
	imap_parser_reset(parser);
	while (pos < len) {
		const char *eol = strstr(input + pos, "\r\n");
		size_t end = eol ? (size_t)(eol - input) : len;
		r = imap_parser_feed_line(parser, input + pos, end - pos);
		pos = eol ? end + 2 : len;
		while (r == IMAP_PARSE_NEED_LITERAL) {
			size_t n = (size_t)imap_parser_literal(parser)->size, used = 0;
			if (n > len - pos)
				return -2;
			r = imap_parser_feed_literal(parser, input + pos, n, &used);
			pos += used;
		}
		if (r != IMAP_PARSE_NEED_LINE)
			break;
	}
	if (r == IMAP_PARSE_NEED_LINE) /* the input ended with a literal */
		r = imap_parser_feed_line(parser, "", 0);
	if (r != IMAP_PARSE_COMMAND) {
		fprintf(stderr, "parse failed: %s\n", input);
		return -2;
	}
	const struct imap_command *c = imap_parser_command(parser);
	return imap_search_compile(c->args, 0, c->nargs, s_r, code_r, error_r);
}

/* "a SEARCH <prog>" compiled; NULL (and a failed check) when it does not. */
static struct imap_search *compile_ok(const char *prog)
{
	char line[20000];
	snprintf(line, sizeof(line), "a SEARCH %s", prog);
	struct imap_search *s = NULL;
	const char *code = NULL, *err = NULL;
	int rc = compile_cmd(line, &s, &code, &err);
	if (rc != 1)
		fprintf(stderr, "compile failed: %s: %s\n", prog, err ? err : "?");
	CHECK(rc == 1);
	return s;
}

/* ---- compile errors ---- */

static const struct {
	const char *prog; /* after "a SEARCH" ("" : none) */
	const char *code; /* NULL: BAD */
	const char *error;
} error_cases[] = {
    {"", NULL, "Missing search key"},
    {" FOO", NULL, "Unknown search key"},
    {" SEEN FOO", NULL, "Unknown search key"},
    {" \"SEEN\"", NULL, "Unknown search key"},
    {" 0", NULL, "Unknown search key"},
    {" SUBJECT", NULL, "Missing search key argument"},
    {" HEADER Subject", NULL, "Missing search key argument"},
    {" BEFORE", NULL, "Missing search key argument"},
    {" OR SEEN", NULL, "Missing search key argument"},
    {" NOT", NULL, "Missing search key argument"},
    {" UID", NULL, "Missing search key argument"},
    {" KEYWORD", NULL, "Missing search key argument"},
    {" LARGER", NULL, "Missing search key argument"},
    {" (NOT) SEEN", NULL, "Missing search key argument"},
    {" (OR SEEN) SEEN", NULL, "Missing search key argument"},
    {" BEFORE 31-Feb-2024", NULL, "Invalid date"},
    {" BEFORE 29-Feb-2023", NULL, "Invalid date"},
    {" BEFORE 0-Jan-2024", NULL, "Invalid date"},
    {" BEFORE 1-Foo-2024", NULL, "Invalid date"},
    {" BEFORE 1-Jan-24", NULL, "Invalid date"},
    {" BEFORE 123-Jan-2024", NULL, "Invalid date"},
    {" BEFORE \"1-Jan-2024 \"", NULL, "Invalid date"},
    {" SINCE 2024-01-01", NULL, "Invalid date"},
    {" SENTON (1-Jan-2024)", NULL, "Invalid date"},
    {" ON {10}\r\n1-Jan-2024", NULL, "Invalid date"},
    {" UID x", NULL, "Invalid sequence set"},
    {" UID 0", NULL, "Invalid sequence set"},
    {" UID 1:0", NULL, "Invalid sequence set"},
    {" UID (1)", NULL, "Invalid sequence set"},
    {" UID \"1\"", NULL, "Invalid sequence set"},
    {" LARGER -1", NULL, "Invalid number"},
    {" LARGER 1x", NULL, "Invalid number"},
    {" SMALLER 9223372036854775808", NULL, "Invalid number"},
    {" MODSEQ x", NULL, "Invalid number"},
    {" MODSEQ \"/flags/\\\\Seen\" foo 5", NULL, "Invalid MODSEQ entry"},
    {" MODSEQ \"/x\" all 5", NULL, "Invalid MODSEQ entry"},
    {" MODSEQ \"/flags/\" all 5", NULL, "Invalid MODSEQ entry"},
    {" MODSEQ \"/flags/a b\" all 5", NULL, "Invalid MODSEQ entry"},
    {" MODSEQ \"/flags/\\\\Seen\" all", NULL, "Missing search key argument"},
    {" KEYWORD \\Seen", NULL, "Invalid keyword"},
    {" KEYWORD \"x\"", NULL, "Invalid keyword"},
    {" SUBJECT (x)", NULL, "Invalid search string"},
    {" SUBJECT {3}\r\n\xff\xfe\x80", NULL, "Invalid UTF-8 in search string"},
    {" BODY {2}\r\n\xc3(", NULL, "Invalid UTF-8 in search string"},
    {" ()", NULL, "Empty search key list"},
    {" SEEN (())", NULL, "Empty search key list"},
    {" RETURN", NULL, "Invalid RETURN option"},
    {" RETURN ALL", NULL, "Invalid RETURN option"},
    {" RETURN (FOO) ALL", NULL, "Invalid RETURN option"},
    {" RETURN (MIN (MAX)) ALL", NULL, "Invalid RETURN option"},
    {" RETURN (MIN)", NULL, "Missing search key"},
    {" CHARSET", NULL, "Missing search key argument"},
    {" CHARSET (x) ALL", NULL, "Missing search key argument"},
    {" CHARSET UTF-8", NULL, "Missing search key"},
    {" CHARSET ISO-8859-1 ALL", "BADCHARSET (US-ASCII UTF-8)", "Unsupported charset"},
    {" CHARSET \"KOI8-R\" SUBJECT x", "BADCHARSET (US-ASCII UTF-8)", "Unsupported charset"},
    {" CHARSET UTF-8 RETURN (ALL) SEEN", NULL, "Unknown search key"},
    {" SEEN CHARSET UTF-8", NULL, "Unknown search key"},
};

static void test_errors(void)
{
	for (size_t k = 0; k < sizeof(error_cases) / sizeof(error_cases[0]); k++) {
		char line[512];
		snprintf(line, sizeof(line), "a SEARCH%s", error_cases[k].prog);
		struct imap_search *s = NULL;
		const char *code = "x", *err = NULL;
		int rc = compile_cmd(line, &s, &code, &err);
		if (rc != -1 || err == NULL || strcmp(err, error_cases[k].error) != 0)
			fprintf(stderr, "error case %zu: %s\n", k, line);
		CHECK(rc == -1);
		CHECK(s == NULL);
		CHECK_STR(err, error_cases[k].error);
		if (error_cases[k].code == NULL)
			CHECK(code == NULL);
		else
			CHECK_STR(code, error_cases[k].code);
	}
}

/* Valid programs of every shape compile (case-insensitive keys, quoted and
 * literal strings, charsets). */
static void test_valid(void)
{
	static const char *const progs[] = {
	    "ALL",
	    "all",
	    "aLl SeEn unseen",
	    "CHARSET UTF-8 SUBJECT x",
	    "CHARSET us-ascii ALL",
	    "CHARSET \"UTF-8\" ALL",
	    "RETURN () ALL",
	    "RETURN (MIN MAX COUNT ALL SAVE) ALL",
	    "RETURN (count) CHARSET UTF-8 ALL",
	    "BEFORE 1-Jan-2024 ON \"01-jan-2024\" SINCE 29-Feb-2024",
	    "SENTBEFORE 1-Jan-2024 SENTON 31-Dec-1999 SENTSINCE 1-JAN-1970",
	    "SUBJECT \"\" FROM x TO y CC z BCC w HEADER X-Spam \"yes\" BODY b TEXT t",
	    "SUBJECT {3}\r\nabc",
	    "SUBJECT \"\xc3\xa4\xc3\xb6\"",
	    "HEADER {7}\r\nSubject {1}\r\nx",
	    "KEYWORD $Forwarded UNKEYWORD Junk",
	    "LARGER 0 SMALLER 9223372036854775807",
	    "UID 1:*,5,7:9 1,2:* * $ UID $",
	    "MODSEQ 0",
	    "MODSEQ \"/flags/\\\\Draft\" all 620162338",
	    "MODSEQ \"/flags/$Junk\" priv 1 MODSEQ \"/FLAGS/x\" shared 2",
	    "OR (SEEN FLAGGED) NOT (OR 1 2)",
	    "NEW OLD RECENT ANSWERED UNANSWERED DELETED UNDELETED DRAFT UNDRAFT FLAGGED UNFLAGGED",
	};
	for (size_t k = 0; k < sizeof(progs) / sizeof(progs[0]); k++) {
		struct imap_search *s = compile_ok(progs[k]);
		imap_search_free(&s);
		CHECK(s == NULL);
	}
	struct imap_search *none = NULL;
	imap_search_free(&none); /* NULL is fine */
}

/* Depth and key limits at their edges. */
static void test_limits(void)
{
	char prog[20000];
	size_t n = 0;
	/* IMAP_SEARCH_DEPTH_MAX - 1 NOTs around a key: fine; one more: too deep */
	for (int k = 0; k < IMAP_SEARCH_DEPTH_MAX - 1; k++)
		n += (size_t)snprintf(prog + n, sizeof(prog) - n, "NOT ");
	snprintf(prog + n, sizeof(prog) - n, "SEEN");
	struct imap_search *s = compile_ok(prog);
	imap_search_free(&s);

	char line[20100];
	const char *code, *err;
	snprintf(line, sizeof(line), "a SEARCH NOT %s", prog);
	CHECK(compile_cmd(line, &s, &code, &err) == -1);
	CHECK_STR(err, "Search program too deeply nested");
	CHECK(code == NULL);
	/* OR nests too */
	n = 0;
	for (int k = 0; k < IMAP_SEARCH_DEPTH_MAX; k++)
		n += (size_t)snprintf(prog + n, sizeof(prog) - n, "OR SEEN ");
	snprintf(prog + n, sizeof(prog) - n, "SEEN");
	snprintf(line, sizeof(line), "a SEARCH %s", prog);
	CHECK(compile_cmd(line, &s, &code, &err) == -1);
	CHECK_STR(err, "Search program too deeply nested");

	/* IMAP_SEARCH_KEYS_MAX keys: fine; one more: too many */
	n = 0;
	for (int k = 0; k < IMAP_SEARCH_KEYS_MAX; k++)
		n += (size_t)snprintf(prog + n, sizeof(prog) - n, k ? " SEEN" : "SEEN");
	s = compile_ok(prog);
	imap_search_free(&s);
	snprintf(line, sizeof(line), "a SEARCH SEEN %s", prog);
	CHECK(compile_cmd(line, &s, &code, &err) == -1);
	CHECK_STR(err, "Too many search keys");

	/* text keys */
	n = 0;
	for (int k = 0; k <= IMAP_SEARCH_TEXT_KEYS_MAX; k++)
		n += (size_t)snprintf(prog + n, sizeof(prog) - n, k ? " BODY x" : "BODY x");
	snprintf(line, sizeof(line), "a SEARCH %s", prog);
	CHECK(compile_cmd(line, &s, &code, &err) == -1);
	CHECK_STR(err, "Too many text search keys");
	prog[n - 7] = '\0'; /* one fewer */
	s = compile_ok(prog);
	imap_search_free(&s);

	/* one string's length */
	char big[IMAP_SEARCH_STRING_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(line, sizeof(line), "a SEARCH SUBJECT %s", big);
	CHECK(compile_cmd(line, &s, &code, &err) == -1);
	CHECK_STR(err, "Search string too long");
	big[sizeof(big) - 2] = '\0';
	snprintf(line, sizeof(line), "SUBJECT %s", big);
	s = compile_ok(line);
	imap_search_free(&s);
}

static void test_dates(void)
{
	int64_t d;
	CHECK(imap_search_date_parse("1-Jan-1970", 10, &d) == 1 && d == 0);
	CHECK(imap_search_date_parse("01-feb-2024", 11, &d) == 1 && d == 1706745600);
	CHECK(imap_search_date_parse("29-FEB-2024", 11, &d) == 1 && d == 1706745600 + 28 * 86400);
	CHECK(imap_search_date_parse("1-Mar-2024", 10, &d) == 1 && d == 1709251200);
	CHECK(imap_search_date_parse("31-Dec-1969", 11, &d) == 1 && d == -86400);
	CHECK(imap_search_date_parse("29-Feb-2000", 11, &d) == 1);
	CHECK(imap_search_date_parse("29-Feb-1900", 11, &d) == -1);
	CHECK(imap_search_date_parse("1-Jan-2024x", 11, &d) == -1);
	CHECK(imap_search_date_parse("1-Jan-2024", 9, &d) == -1);
	CHECK(imap_search_date_parse("-Jan-2024", 9, &d) == -1);
	CHECK(imap_search_date_parse("", 0, &d) == -1);
}

/* ---- evaluation and replies ---- */

#define FEB1 1706745600 /* 2024-02-01 00:00:00 UTC */

static const struct imap_search_item items[] = {
    {1, 3, 5, 100, FEB1 - 1, "\\Seen", "b1"},
    {2, 5, 9, 2000, FEB1, "\\Answered \\Seen $Forwarded", "b2"},
    {3, 7, 7, 50, FEB1 + 86399, "", "b3"},
    {4, 8, 12, 100, FEB1 + 86400, "\\Deleted \\Flagged \\Recent", "b4"},
    {5, 10, 1, 0, 0, "\\Draft \\Recent \\Seen", "b5"},
    {6, 12, 20, 4096, FEB1 + 29 * 86400 + 43200, "Junk", "b6"},
};
#define NITEMS (sizeof(items) / sizeof(items[0]))

static const uint32_t saved_uids[] = {5, 8, 11};

/* Runs "[UID] SEARCH prog" against the first nitems items and returns the reply
 * (static). saved: use saved_uids for "$". */
static const char *run_n(const char *prog, bool uid, size_t nitems, bool saved, bool rev2)
{
	static char reply[4096];
	struct imap_search *s = compile_ok(prog);
	reply[0] = '\0';
	if (s == NULL)
		return "(compile failed)";
	if (rev2)
		imap_search_force_esearch(s);
	struct imap_search_ctx ctx = {
	    .exists = (uint32_t)nitems,
	    .max_uid = nitems ? items[nitems - 1].uid : 0,
	    .saved = saved ? saved_uids : NULL,
	    .nsaved = saved ? 3 : 0,
	};
	uint32_t nums[NITEMS];
	uint64_t modseqs[NITEMS];
	size_t n = 0;
	for (size_t k = 0; k < nitems; k++) {
		char *err = NULL;
		int rc = imap_search_match(s, &ctx, NULL, &items[k], &err);
		CHECK(rc == 0 || rc == 1);
		free(err);
		if (rc == 1) {
			nums[n] = uid ? items[k].uid : items[k].seq;
			modseqs[n++] = items[k].modseq;
		}
	}
	struct evbuffer *out = evbuffer_new();
	CHECK(imap_search_reply(s, "a", uid, nums, imap_search_wants_modseq(s) ? modseqs : NULL, n,
	                        out) == 1);
	size_t len = evbuffer_get_length(out);
	if (len < sizeof(reply)) {
		evbuffer_remove(out, reply, len);
		reply[len] = '\0';
	}
	evbuffer_free(out);
	imap_search_free(&s);
	return reply;
}

static const struct {
	const char *prog;
	const char *want; /* without CRLF; "" for no reply at all */
} eval_cases[] = {
    {"ALL", "* SEARCH 1 2 3 4 5 6"},
    {"SEEN", "* SEARCH 1 2 5"},
    {"seen", "* SEARCH 1 2 5"},
    {"UNSEEN", "* SEARCH 3 4 6"},
    {"ANSWERED", "* SEARCH 2"},
    {"UNANSWERED", "* SEARCH 1 3 4 5 6"},
    {"DELETED", "* SEARCH 4"},
    {"UNDELETED", "* SEARCH 1 2 3 5 6"},
    {"DRAFT", "* SEARCH 5"},
    {"UNDRAFT", "* SEARCH 1 2 3 4 6"},
    {"FLAGGED", "* SEARCH 4"},
    {"UNFLAGGED", "* SEARCH 1 2 3 5 6"},
    {"RECENT", "* SEARCH 4 5"},
    {"NEW", "* SEARCH 4"},
    {"OLD", "* SEARCH 1 2 3 6"},
    {"KEYWORD $forwarded", "* SEARCH 2"},
    {"KEYWORD JUNK", "* SEARCH 6"},
    {"UNKEYWORD Junk", "* SEARCH 1 2 3 4 5"},
    {"KEYWORD Jun", "* SEARCH"},
    /* INTERNALDATE by its UTC date, at the day boundaries */
    {"BEFORE 1-Feb-2024", "* SEARCH 1 5"},
    {"ON 1-Feb-2024", "* SEARCH 2 3"},
    {"ON 31-Jan-2024", "* SEARCH 1"},
    {"ON 2-Feb-2024", "* SEARCH 4"},
    {"SINCE 1-Feb-2024", "* SEARCH 2 3 4 6"},
    {"SINCE \"2-Feb-2024\"", "* SEARCH 4 6"},
    {"ON 1-jan-1970", "* SEARCH 5"},
    {"ON 1-Mar-2024", "* SEARCH 6"},
    {"SINCE 2-Mar-2024", "* SEARCH"},
    {"BEFORE 1-Jan-1970", "* SEARCH"},
    /* sizes: strictly larger / smaller */
    {"LARGER 100", "* SEARCH 2 6"},
    {"SMALLER 100", "* SEARCH 3 5"},
    {"LARGER 0", "* SEARCH 1 2 3 4 6"},
    {"SMALLER 0", "* SEARCH"},
    {"SMALLER 1", "* SEARCH 5"},
    /* sequence sets */
    {"1:3", "* SEARCH 1 2 3"},
    {"3:1", "* SEARCH 1 2 3"},
    {"2,4:*", "* SEARCH 2 4 5 6"},
    {"*", "* SEARCH 6"},
    {"*:5", "* SEARCH 5 6"},
    {"7", "* SEARCH"},
    {"4:9", "* SEARCH 4 5 6"},
    {"9:*", "* SEARCH 6"},
    {"1,1,2:1", "* SEARCH 1 2"},
    /* UID sets */
    {"UID 5:8", "* SEARCH 2 3 4"},
    {"UID *", "* SEARCH 6"},
    {"UID 11:*", "* SEARCH 6"},
    {"UID 13:*", "* SEARCH 6"}, /* "13:*" is 12:13 when 12 is the largest */
    {"UID 1:4", "* SEARCH 1"},
    {"UID 100", "* SEARCH"},
    {"UID 4,6,9,11", "* SEARCH"},
    /* "$" as set and after UID (saved: UIDs 5, 8, 11) */
    {"$", "* SEARCH 2 4"},
    {"UID $", "* SEARCH 2 4"},
    {"NOT $", "* SEARCH 1 3 5 6"},
    /* OR / NOT / lists */
    {"OR SEEN FLAGGED", "* SEARCH 1 2 4 5"},
    {"NOT SEEN", "* SEARCH 3 4 6"},
    {"NOT NOT SEEN", "* SEARCH 1 2 5"},
    {"NOT (SEEN DRAFT)", "* SEARCH 1 2 3 4 6"},
    {"OR (SEEN LARGER 1000) NOT OR 1 2", "* SEARCH 2 3 4 5 6"},
    {"(((SEEN)))", "* SEARCH 1 2 5"},
    {"SEEN 1:2 UID 5", "* SEARCH 2"},
    {"OR OR DRAFT DELETED ANSWERED", "* SEARCH 2 4 5"},
    {"Or seen (Flagged)", "* SEARCH 1 2 4 5"},
    {"NOT ALL", "* SEARCH"},
    /* MODSEQ: at least the value; the reply's MODSEQ is the highest returned */
    {"MODSEQ 9", "* SEARCH 2 4 6 (MODSEQ 20)"},
    {"MODSEQ 0", "* SEARCH 1 2 3 4 5 6 (MODSEQ 20)"},
    {"MODSEQ \"/flags/\\\\draft\" all 7 1:4", "* SEARCH 2 3 4 (MODSEQ 12)"},
    {"MODSEQ 100", "* SEARCH"},
    /* ESEARCH (RFC 4731) */
    {"RETURN (MIN MAX COUNT ALL) SEEN", "* ESEARCH (TAG \"a\") MIN 1 MAX 5 COUNT 3 ALL 1:2,5"},
    {"RETURN () 1:3,5", "* ESEARCH (TAG \"a\") ALL 1:3,5"},
    {"RETURN (ALL) 1,3,5", "* ESEARCH (TAG \"a\") ALL 1,3,5"},
    {"RETURN (ALL) ALL", "* ESEARCH (TAG \"a\") ALL 1:6"},
    {"RETURN (COUNT) SMALLER 0", "* ESEARCH (TAG \"a\") COUNT 0"},
    {"RETURN (MIN MAX ALL) SMALLER 0", "* ESEARCH (TAG \"a\")"},
    {"RETURN (MIN) UNSEEN", "* ESEARCH (TAG \"a\") MIN 3"},
    {"RETURN (MAX) UNSEEN", "* ESEARCH (TAG \"a\") MAX 6"},
    {"RETURN (MIN MAX) DRAFT", "* ESEARCH (TAG \"a\") MIN 5 MAX 5"},
    {"RETURN (COUNT) ALL", "* ESEARCH (TAG \"a\") COUNT 6"},
    {"RETURN (SAVE) SEEN", ""},
    {"RETURN (SAVE COUNT) SEEN", "* ESEARCH (TAG \"a\") COUNT 3"},
    {"RETURN (MAX) MODSEQ 9", "* ESEARCH (TAG \"a\") MAX 6 MODSEQ 20"},
    {"RETURN (MIN) MODSEQ 9", "* ESEARCH (TAG \"a\") MIN 2 MODSEQ 9"},
    {"RETURN (MIN MAX) MODSEQ 8", "* ESEARCH (TAG \"a\") MIN 2 MAX 6 MODSEQ 20"},
    {"RETURN (COUNT) MODSEQ 8 NOT 6", "* ESEARCH (TAG \"a\") COUNT 2 MODSEQ 12"},
    {"RETURN (ALL) MODSEQ 8", "* ESEARCH (TAG \"a\") ALL 2,4,6 MODSEQ 20"},
    {"RETURN (ALL COUNT) MODSEQ 100", "* ESEARCH (TAG \"a\") COUNT 0"},
};

static void test_eval(void)
{
	for (size_t k = 0; k < sizeof(eval_cases) / sizeof(eval_cases[0]); k++) {
		char want[512];
		snprintf(want, sizeof(want), "%s%s", eval_cases[k].want,
		         eval_cases[k].want[0] ? "\r\n" : "");
		const char *got = run_n(eval_cases[k].prog, false, NITEMS, true, false);
		if (strcmp(got, want) != 0)
			fprintf(stderr, "eval case %zu: %s\n", k, eval_cases[k].prog);
		CHECK_STR(got, want);
	}
}

static void test_eval_other(void)
{
	/* UID SEARCH answers with UIDs */
	CHECK_STR(run_n("SEEN", true, NITEMS, false, false), "* SEARCH 3 5 10\r\n");
	CHECK_STR(run_n("RETURN (ALL MIN) UID 5:12", true, NITEMS, false, false),
	          "* ESEARCH (TAG \"a\") UID MIN 5 ALL 5,7:8,10,12\r\n");
	CHECK_STR(run_n("RETURN (COUNT) DRAFT", true, NITEMS, false, false),
	          "* ESEARCH (TAG \"a\") UID COUNT 1\r\n");
	CHECK_STR(run_n("RETURN (ALL) NOT ALL", true, NITEMS, false, false),
	          "* ESEARCH (TAG \"a\") UID\r\n");
	/* no saved result: "$" is empty */
	CHECK_STR(run_n("$", false, NITEMS, false, false), "* SEARCH\r\n");
	CHECK_STR(run_n("NOT UID $", false, NITEMS, false, false), "* SEARCH 1 2 3 4 5 6\r\n");
	/* "*" on an empty mailbox matches nothing; on one message it is that one */
	CHECK_STR(run_n("*", false, 0, false, false), "* SEARCH\r\n");
	CHECK_STR(run_n("UID *", false, 0, false, false), "* SEARCH\r\n");
	CHECK_STR(run_n("UID 1:*", false, 0, false, false), "* SEARCH\r\n");
	CHECK_STR(run_n("RETURN (MIN MAX COUNT ALL) ALL", false, 0, false, false),
	          "* ESEARCH (TAG \"a\") COUNT 0\r\n");
	CHECK_STR(run_n("*", false, 1, false, false), "* SEARCH 1\r\n");
	CHECK_STR(run_n("UID *", false, 1, false, false), "* SEARCH 1\r\n");
	CHECK_STR(run_n("UID 100:*", false, 1, false, false), "* SEARCH 1\r\n");
	CHECK_STR(run_n("2:*", false, 1, false, false), "* SEARCH 1\r\n");
	CHECK_STR(run_n("UID 4:*", false, 3, false, false), "* SEARCH 2 3\r\n");
	/* IMAP4rev2: a SEARCH without RETURN answers ESEARCH ALL */
	CHECK_STR(run_n("SEEN", false, NITEMS, false, true), "* ESEARCH (TAG \"a\") ALL 1:2,5\r\n");
	CHECK_STR(run_n("SMALLER 0", true, NITEMS, false, true), "* ESEARCH (TAG \"a\") UID\r\n");
	CHECK_STR(run_n("RETURN (COUNT) SEEN", false, NITEMS, false, true),
	          "* ESEARCH (TAG \"a\") COUNT 3\r\n");
	CHECK_STR(run_n("MODSEQ 9", false, NITEMS, false, true),
	          "* ESEARCH (TAG \"a\") ALL 2,4,6 MODSEQ 20\r\n");

	/* what RETURN (SAVE ...) saves (RFC 5182 2.4) */
	static const struct {
		const char *prog;
		bool saves, replies;
		size_t n;
		uint32_t first, second;
	} save_cases[] = {
	    {"RETURN (SAVE) ALL", true, false, 4, 3, 5},
	    {"RETURN (SAVE MIN) ALL", true, true, 1, 3, 0},
	    {"RETURN (MAX SAVE) ALL", true, true, 1, 10, 0},
	    {"RETURN (MIN SAVE MAX) ALL", true, true, 2, 3, 10},
	    {"RETURN (MIN SAVE COUNT) ALL", true, true, 4, 3, 5},
	    {"RETURN (ALL) ALL", false, true, 4, 3, 5},
	    {"ALL", false, true, 4, 3, 5},
	};
	const uint32_t uids[] = {3, 5, 8, 10};
	for (size_t k = 0; k < sizeof(save_cases) / sizeof(save_cases[0]); k++) {
		struct imap_search *s = compile_ok(save_cases[k].prog);
		if (s == NULL)
			continue;
		uint32_t out[4] = {0};
		CHECK(imap_search_saves(s) == save_cases[k].saves);
		CHECK(imap_search_replies(s) == save_cases[k].replies);
		CHECK(imap_search_save_select(s, uids, 4, out) == save_cases[k].n);
		CHECK(out[0] == save_cases[k].first);
		CHECK(out[1] == save_cases[k].second);
		CHECK(imap_search_save_select(s, uids, 0, out) == 0);
		/* one match with MIN and MAX is saved once */
		CHECK(imap_search_save_select(s, uids, 1, out) == 1);
		imap_search_free(&s);
	}

	/* what each program needs */
	static const struct {
		const char *prog;
		bool msg, modseq;
	} needs[] = {
	    {"ALL SEEN 1:* UID 3 LARGER 4 BEFORE 1-Jan-2000", false, false},
	    {"MODSEQ 3", false, true},
	    {"NOT (OR SEEN (MODSEQ 3))", false, true},
	    {"SUBJECT x", true, false},
	    {"OR SEEN BODY x", true, false},
	    {"SENTON 1-Jan-2000", true, false},
	};
	for (size_t k = 0; k < sizeof(needs) / sizeof(needs[0]); k++) {
		struct imap_search *s = compile_ok(needs[k].prog);
		if (s == NULL)
			continue;
		CHECK(imap_search_needs_msg(s) == needs[k].msg);
		CHECK(imap_search_wants_modseq(s) == needs[k].modseq);
		imap_search_free(&s);
	}
}

/* A program parsed after "UID SEARCH" and with a tag of every allowed kind. */
static void test_uid_command(void)
{
	struct imap_search *s = NULL;
	const char *code, *err;
	CHECK(compile_cmd("A.1 UID SEARCH RETURN (ALL) CHARSET UTF-8 UID 1:*", &s, &code, &err) ==
	      1);
	struct evbuffer *out = evbuffer_new();
	const uint32_t nums[] = {1, 2, 3, 7};
	CHECK(imap_search_reply(s, "A.1", true, nums, NULL, 4, out) == 1);
	char buf[128] = {0};
	evbuffer_remove(out, buf, sizeof(buf) - 1);
	CHECK_STR(buf, "* ESEARCH (TAG \"A.1\") UID ALL 1:3,7\r\n");
	evbuffer_free(out);
	imap_search_free(&s);
}

/* ---- text keys and SENT*, on delivered messages ---- */

static char data_dir[] = "/tmp/hermod-test-imap-search.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

#define BIG_AT 65534 /* "xyzzy" crosses the first 64 KiB chunk of message 3's body */

static struct {
	const char *data;
	size_t len;
	uint32_t uid;
	char blob_id[80];
} tmsgs[] = {
    /* encoded words (Q in latin1, B in UTF-8), latin1 quoted-printable body with a
     * soft line break, a Date: in its own zone (5 Feb local, 6 Feb UTC) */
    {"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
     "From: =?UTF-8?B?SsO8cmdlbg==?= <juergen@example.test>\r\n"
     "To: bob@example.test\r\n"
     "Cc: Carol <carol@x.test>\r\n"
     "Date: Mon, 05 Feb 2024 23:30:00 -0500\r\n"
     "MIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=iso-8859-1\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n"
     "\r\n"
     "Sch=F6ne Gr=FC=DFe,\r\n"
     "auf Wieder=\r\n"
     "sehen\r\n",
     0, 0, ""},
    /* multipart: base64 UTF-8 text, a base64 attachment, QP html; no Date: */
    {"Subject: Report Q1\r\n"
     "From: alice@example.test\r\n"
     "X-Spam: yes\r\n"
     "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
     "\r\n"
     "preamble with hiddenword\r\n"
     "--b1\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: base64\r\n"
     "\r\n"
     "RGVyIELDpHIgdGFuenQgaW0gTWFpDQo=\r\n"
     "--b1\r\n"
     "Content-Type: application/octet-stream\r\n"
     "Content-Transfer-Encoding: base64\r\n"
     "\r\n"
     "YmluYXJ5IHNlY3JldHdvcmQgaGVyZQ0K\r\n"
     "--b1\r\n"
     "Content-Type: text/html; charset=us-ascii\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n"
     "\r\n"
     "<p>Hallo=20Welt</p>\r\n"
     "--b1--\r\n",
     0, 0, ""},
    /* not MIME, large (built in setup) */
    {NULL, 0, 0, ""},
    /* a forwarded message/rfc822 */
    {"Subject: Fwd: inner\r\n"
     "From: dave@example.test\r\n"
     "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=\"o\"\r\n"
     "\r\n"
     "--o\r\n"
     "Content-Type: text/plain\r\n"
     "\r\n"
     "see attached\r\n"
     "--o\r\n"
     "Content-Type: message/rfc822\r\n"
     "\r\n"
     "Subject: =?UTF-8?Q?Inner_=C3=A9t=C3=A9?=\r\n"
     "From: erin@example.test\r\n"
     "\r\n"
     "inner body text\r\n"
     "--o--\r\n",
     0, 0, ""},
};
#define NTMSGS (sizeof(tmsgs) / sizeof(tmsgs[0]))
#define MAR1 1709251200

static void tlist_cb(void *ctx, const struct store_message_info *m)
{
	for (size_t i = 0; i < NTMSGS; i++)
		if (tmsgs[i].uid == m->uid)
			snprintf(tmsgs[i].blob_id, sizeof(tmsgs[i].blob_id), "%s", m->blob_id);
}

static char *big_msg;

static struct store *text_setup(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = false};
	struct store *st = NULL;
	char *error = NULL;
	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		exit(1);
	}
	if (store_domain_add(st, "example.test", NULL) != 1 ||
	    store_account_add(st, "u@example.test", "x", NULL) != 1)
		exit(1);
	/* message 3: a header with a Date: (6 Feb local, 5 Feb UTC), then 200 KiB of
	 * body with "xyzzy" across the first chunk boundary and "needle" at the end */
	const char *hdr = "Subject: big\r\nDate: Tue, 6 Feb 2024 00:30:00 +0100\r\n\r\n";
	size_t hl = strlen(hdr), bl = 200 * 1024;
	big_msg = malloc(hl + bl + 1);
	memcpy(big_msg, hdr, hl);
	for (size_t k = 0; k < bl; k++)
		big_msg[hl + k] = k % 77 == 76 ? '\n' : 'a' + (char)(k % 3);
	memcpy(big_msg + hl + BIG_AT, "xYzzy", 5);
	memcpy(big_msg + hl + bl - 8, "NEEDLE\r\n", 8);
	tmsgs[2].data = big_msg;
	tmsgs[2].len = hl + bl;
	const char *accts[] = {"u@example.test"};
	for (size_t i = 0; i < NTMSGS; i++) {
		if (tmsgs[i].len == 0)
			tmsgs[i].len = strlen(tmsgs[i].data);
		struct store_delivery d = {.accounts = accts,
		                           .naccounts = 1,
		                           .data = tmsgs[i].data,
		                           .len = tmsgs[i].len,
		                           .internal_date = MAR1 + (int64_t)i * 86400};
		if (store_deliver(st, &d, &tmsgs[i].uid, &error) != 1) {
			fprintf(stderr, "deliver: %s\n", error ? error : "?");
			exit(1);
		}
	}
	if (store_message_list(st, "u@example.test", "INBOX", tlist_cb, NULL, NULL) != 1)
		exit(1);
	for (size_t i = 0; i < NTMSGS; i++)
		if (tmsgs[i].blob_id[0] == '\0')
			exit(1);
	return st;
}

/* "* SEARCH ..." of prog over the delivered messages (static). */
static const char *trun(struct store *st, const char *prog)
{
	static char reply[512];
	struct imap_search *s = compile_ok(prog);
	if (s == NULL)
		return "(compile failed)";
	struct imap_search_ctx ctx = {.exists = NTMSGS, .max_uid = tmsgs[NTMSGS - 1].uid};
	size_t n = 0;
	reply[0] = '\0';
	n += (size_t)snprintf(reply, sizeof(reply), "* SEARCH");
	for (size_t k = 0; k < NTMSGS; k++) {
		struct imap_search_item it = {.seq = (uint32_t)k + 1,
		                              .uid = tmsgs[k].uid,
		                              .modseq = 1,
		                              .size = tmsgs[k].len,
		                              .internal_date = MAR1 + (int64_t)k * 86400,
		                              .flags = k == 1 ? "\\Seen" : "",
		                              .blob_id = tmsgs[k].blob_id};
		char *err = NULL;
		int rc = imap_search_match(s, &ctx, st, &it, &err);
		if (rc < 0)
			fprintf(stderr, "match %s: %s\n", prog, err ? err : "?");
		CHECK(rc == 0 || rc == 1);
		free(err);
		if (rc == 1)
			n += (size_t)snprintf(reply + n, sizeof(reply) - n, " %zu", k + 1);
	}
	imap_search_free(&s);
	return reply;
}

static const struct {
	const char *prog;
	const char *want;
} text_cases[] = {
    /* header keys on decoded field values, case-insensitive */
    {"SUBJECT \"gr\xc3\xbc\xc3\x9f"
     "e\"",
     "* SEARCH 1"},
    {"SUBJECT \"AUS K\xc3\x96LN\"", "* SEARCH 1"},
    {"SUBJECT Gr=FC", "* SEARCH"}, /* the encoded form is not searched */
    {"SUBJECT \"\"", "* SEARCH 1 2 3 4"},
    {"SUBJECT inner", "* SEARCH 4"},
    {"SUBJECT \"\xc3\xa9t\xc3\xa9\"", "* SEARCH"}, /* only in the embedded message */
    {"FROM \"j\xc3\xbcrgen\"", "* SEARCH 1"},
    {"FROM \"J\xc3\x9cRGEN\"", "* SEARCH 1"},
    {"FROM \"juergen@example\"", "* SEARCH 1"},
    {"FROM example.test", "* SEARCH 1 2 4"},
    {"TO bob", "* SEARCH 1"},
    {"CC carol", "* SEARCH 1"},
    {"CC \"Carol <carol@\"", "* SEARCH 1"},
    {"BCC x", "* SEARCH"},
    {"HEADER X-Spam yes", "* SEARCH 2"},
    {"HEADER x-spam \"\"", "* SEARCH 2"},
    {"HEADER X-Other \"\"", "* SEARCH"},
    {"HEADER Content-Transfer-Encoding QUOTED", "* SEARCH 1"},
    /* BODY: decoded text parts only */
    {"BODY wiedersehen", "* SEARCH 1"}, /* across a QP soft line break */
    {"BODY \"sch\xc3\xb6ne gr\xc3\xbc\xc3\x9f"
     "e\"",
     "* SEARCH 1"},
    {"BODY \"B\xc3\x84R TANZT\"", "* SEARCH 2"},
    {"BODY secretword", "* SEARCH"}, /* an application/octet-stream part */
    {"BODY hiddenword", "* SEARCH"}, /* the preamble */
    {"BODY \"Hallo Welt\"", "* SEARCH 2"},
    {"BODY RGVy", "* SEARCH"}, /* base64 is decoded */
    {"BODY needle", "* SEARCH 3"},
    {"BODY xyzzy", "* SEARCH 3"}, /* across the first 64 KiB chunk */
    {"BODY \"aaa\"", "* SEARCH"},
    {"BODY \"\xc3\xa9t\xc3\xa9\"", "* SEARCH 4"}, /* the embedded header is body text */
    {"BODY \"inner body\"", "* SEARCH 4"},
    {"BODY \"aus K\xc3\xb6ln\"", "* SEARCH"}, /* the subject is not body */
    {"BODY \"\"", "* SEARCH 1 2 3 4"},
    {"NOT BODY secretword", "* SEARCH 1 2 3 4"},
    /* TEXT: header fields as "Name: value", and body */
    {"TEXT \"aus K\xc3\xb6ln\"", "* SEARCH 1"},
    {"TEXT \"subject: report\"", "* SEARCH 2"},
    {"TEXT fwd", "* SEARCH 4"},
    {"TEXT \"b\xc3\xa4r\"", "* SEARCH 2"},
    {"TEXT xyzzy", "* SEARCH 3"},
    {"TEXT nowhere", "* SEARCH"},
    /* SENT*: the Date: header's day in its own zone; none: INTERNALDATE's */
    {"SENTON 5-Feb-2024", "* SEARCH 1"},
    {"SENTON 6-Feb-2024", "* SEARCH 3"},
    {"SENTBEFORE 6-Feb-2024", "* SEARCH 1"},
    {"SENTSINCE 6-Feb-2024", "* SEARCH 2 3 4"},
    {"SENTON 2-Mar-2024", "* SEARCH 2"},
    {"SENTON 4-Mar-2024", "* SEARCH 4"},
    /* combined with other keys */
    {"SUBJECT \"k\xc3\xb6ln\" BODY wiedersehen", "* SEARCH 1"},
    {"OR SUBJECT big BODY \"hallo welt\"", "* SEARCH 2 3"},
    {"SEEN BODY welt", "* SEARCH 2"},
    {"UNSEEN BODY welt", "* SEARCH"},
    {"NOT (TEXT fwd) SMALLER 100000", "* SEARCH 1 2"},
};

static void test_text(struct store *st)
{
	for (size_t k = 0; k < sizeof(text_cases) / sizeof(text_cases[0]); k++) {
		const char *got = trun(st, text_cases[k].prog);
		if (strcmp(got, text_cases[k].want) != 0)
			fprintf(stderr, "text case %zu: %s\n", k, text_cases[k].prog);
		CHECK_STR(got, text_cases[k].want);
	}

	/* reading stops once the program is decided: "abc" is in the first chunk
	 * of message 3's 200 KiB body, "needle" only at its end */
	static const struct {
		const char *prog;
		uint64_t min, max;
	} reads[] = {
	    {"3 BODY abc", 64 * 1024, 64 * 1024 + 100},
	    {"3 BODY needle", 200 * 1024, 200 * 1024 + 100},
	    {"3 SUBJECT big BODY needle", 200 * 1024, 200 * 1024 + 100},
	    {"3 SUBJECT x BODY needle", 1, 100}, /* the header decides */
	    {"3 OR SUBJECT big BODY needle", 1, 100},
	    {"3 SENTON 6-Feb-2024", 1, 100},
	    {"3 LARGER 1000000 BODY needle", 0, 0}, /* the metadata decides */
	};
	for (size_t k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
		uint64_t before = imap_search_octets_read();
		trun(st, reads[k].prog);
		uint64_t got = imap_search_octets_read() - before;
		if (got < reads[k].min || got > reads[k].max)
			fprintf(stderr, "read case %zu: %s: %llu octets\n", k, reads[k].prog,
			        (unsigned long long)got);
		CHECK(got >= reads[k].min && got <= reads[k].max);
	}

	/* metadata that decides the program: the message is not opened (the blob
	 * id names nothing, an open would fail or say "gone") */
	struct imap_search_ctx ctx = {.exists = 1, .max_uid = 1};
	struct imap_search_item it = {.seq = 1, .uid = 1, .flags = "\\Seen", .blob_id = "nope"};
	struct imap_search *s = compile_ok("OR SEEN BODY x");
	char *err = NULL;
	CHECK(imap_search_match(s, &ctx, st, &it, &err) == 1);
	CHECK(err == NULL);
	imap_search_free(&s);
	s = compile_ok("UNSEEN SUBJECT x");
	CHECK(imap_search_match(s, &ctx, st, &it, &err) == 0);
	CHECK(err == NULL);
	imap_search_free(&s);
	/* a blob that is gone: no match, no error */
	char gone[65];
	memset(gone, '0', 64);
	gone[64] = '\0';
	it.blob_id = gone;
	s = compile_ok("BODY x");
	CHECK(imap_search_match(s, &ctx, st, &it, &err) == 0);
	CHECK(err == NULL);
	free(err);
	imap_search_free(&s);
}

int main(void)
{
	parser = imap_parser_new(NULL, NULL);
	imap_parser_set_authenticated(parser, true);
	test_errors();
	test_valid();
	test_limits();
	test_dates();
	test_eval();
	test_eval_other();
	test_uid_command();
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct store *st = text_setup();
	test_text(st);
	store_close(&st);
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(big_msg);
	imap_parser_free(&parser);
	return unit_finish("imap_search");
}
