/* Unit tests for FETCH (src/imap/imap_fetch.c, imap_msg.c): a real store in a
 * temporary directory, a corpus of messages delivered to it, and the exact
 * response text of every item kind, written in one call and in many small
 * ones. */
#include "unit.h"

#include "imap/imap_fetch.h"
#include "imap/imap_msg.h"
#include "imap/imap_parse.h"
#include "store/store.h"

#include <event2/buffer.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-imap-fetch.XXXXXX";
static bool use_utf8; /* IMAP4rev2 / UTF8=ACCEPT responses */

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

/* ---- the corpus ---- */

static const char m_simple[] = "From: Alice <alice@example.test>\r\n"
                               "To: bob@example.test\r\n"
                               "Subject: hello\r\n"
                               "\r\n"
                               "Hello\r\n"
                               "world\r\n";

static const char m_alt[] = "From: a@example.test\r\n"
                            "Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
                            "\r\n"
                            "preamble\r\n"
                            "--XX\r\n"
                            "Content-Type: text/plain\r\n"
                            "\r\n"
                            "plain\r\n"
                            "--XX\r\n"
                            "Content-Type: text/html\r\n"
                            "\r\n"
                            "<b>html</b>\r\n"
                            "--XX--\r\n";

static const char m_mixed[] = "From: a@example.test\r\n"
                              "Subject: mixed\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: multipart/mixed; boundary=b1\r\n"
                              "\r\n"
                              "--b1\r\n"
                              "Content-Type: multipart/alternative; boundary=b2\r\n"
                              "\r\n"
                              "--b2\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "caf=C3=A9 soft=\r\n"
                              "break  \r\n"
                              "x=3Dy\r\n"
                              "--b2\r\n"
                              "Content-Type: text/html\r\n"
                              "\r\n"
                              "<p>x</p>\r\n"
                              "--b2--\r\n"
                              "--b1\r\n"
                              "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
                              "\r\n"
                              "AAECAwRoZWxs\r\n"
                              "bw==\r\n"
                              "--b1\r\n"
                              "Content-Type: application/x-thing\r\n"
                              "Content-Transfer-Encoding: x-uuencode\r\n"
                              "\r\n"
                              "begin 644 x\r\n"
                              "--b1--\r\n";

static const char m_nested[] = "From: outer@example.test\r\n"
                               "Subject: fwd\r\n"
                               "Content-Type: multipart/mixed; boundary=o\r\n"
                               "\r\n"
                               "--o\r\n"
                               "Content-Type: text/plain\r\n"
                               "\r\n"
                               "see below\r\n"
                               "--o\r\n"
                               "Content-Type: message/rfc822\r\n"
                               "\r\n"
                               "From: inner@example.test\r\n"
                               "Subject: inner\r\n"
                               "Content-Type: multipart/mixed; boundary=i\r\n"
                               "\r\n"
                               "--i\r\n"
                               "Content-Type: text/plain\r\n"
                               "\r\n"
                               "inner one\r\n"
                               "--i\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Transfer-Encoding: base64\r\n"
                               "\r\n"
                               "aW5uZXIgdHdv\r\n"
                               "--i--\r\n"
                               "--o--\r\n";

static const char m_noend[] = "From: a@example.test\r\n"
                              "Content-Type: multipart/mixed; boundary=zz\r\n"
                              "\r\n"
                              "--zz\r\n"
                              "\r\n"
                              "first\r\n"
                              "--zz\r\n"
                              "Content-Type: text/plain\r\n"
                              "\r\n"
                              "unterminated\r\n";

static const char m_nobody[] = "From: a@example.test\r\n"
                               "Subject: no body";

static const char m_8bit[] = "From: J\xc3\xb6rg <j@example.test>\r\n"
                             "Subject: Gr\xc3\xbc\xc3\x9f"
                             "e\r\n"
                             "\r\n"
                             "x\r\n";

static const char m_lf[] = "From: a@example.test\n"
                           "subject: bare\n"
                           " folded\n"
                           "X-Other: 1\n"
                           "\n"
                           "line\n";

static const char m_bin[] = "MIME-Version: 1.0\r\n"
                            "Content-Transfer-Encoding: binary\r\n"
                            "\r\n"
                            "ab\0cd\r\n";

struct corpus {
	const char *name;
	const char *data;
	size_t len;
	char blob_id[80];
	uint32_t uid;
};

static struct corpus msgs[] = {
    {"simple", m_simple, sizeof(m_simple) - 1, "", 0},
    {"alt", m_alt, sizeof(m_alt) - 1, "", 0},
    {"mixed", m_mixed, sizeof(m_mixed) - 1, "", 0},
    {"nested", m_nested, sizeof(m_nested) - 1, "", 0},
    {"noend", m_noend, sizeof(m_noend) - 1, "", 0},
    {"nobody", m_nobody, sizeof(m_nobody) - 1, "", 0},
    {"8bit", m_8bit, sizeof(m_8bit) - 1, "", 0},
    {"lf", m_lf, sizeof(m_lf) - 1, "", 0},
    {"bin", m_bin, sizeof(m_bin) - 1, "", 0},
};
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static void list_cb(void *ctx, const struct store_message_info *m)
{
	for (size_t i = 0; i < NMSGS; i++)
		if (msgs[i].uid == m->uid)
			snprintf(msgs[i].blob_id, sizeof(msgs[i].blob_id), "%s", m->blob_id);
}

static struct store *setup(void)
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
	const char *accts[] = {"u@example.test"};
	for (size_t i = 0; i < NMSGS; i++) {
		struct store_delivery d = {.accounts = accts,
		                           .naccounts = 1,
		                           .data = msgs[i].data,
		                           .len = msgs[i].len,
		                           .internal_date = 1764633600 + (int64_t)i * 3600,
		                           .flags = i == 0 ? "\\Seen" : NULL};
		if (store_deliver(st, &d, &msgs[i].uid, &error) != 1) {
			fprintf(stderr, "deliver: %s\n", error ? error : "?");
			exit(1);
		}
	}
	if (store_message_list(st, "u@example.test", "INBOX", list_cb, NULL, NULL) != 1)
		exit(1);
	for (size_t i = 0; i < NMSGS; i++)
		if (msgs[i].blob_id[0] == '\0')
			exit(1);
	return st;
}

/* ---- running FETCH ---- */

/* Parses "a FETCH 1 <atts>" (or "a UID FETCH 1 <atts>") and compiles it: 1 with
 * *f_r, -1 with *error_r (compile or parse error text). */
static int compile(const char *atts, bool uid, struct imap_fetch **f_r, const char **error_r)
{
	static char line[4096];
	static char err[256];
	snprintf(line, sizeof(line), "a %sFETCH 1 %s", uid ? "UID " : "", atts);
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	imap_parser_set_authenticated(p, true);
	int r = imap_parser_feed_line(p, line, strlen(line));
	if (r != IMAP_PARSE_COMMAND) {
		snprintf(err, sizeof(err), "PARSE %s",
		         r == IMAP_PARSE_ERROR ? imap_parser_error(p)->text : "literal?");
		*error_r = err;
		imap_parser_free(&p);
		return -1;
	}
	const struct imap_command *c = imap_parser_command(p);
	r = imap_fetch_compile(c->args, 1, c->nargs, uid, f_r, error_r);
	imap_parser_free(&p);
	return r;
}

static struct imap_fetch_item item_of(size_t i)
{
	struct imap_fetch_item it = {.seq = (uint32_t)i + 1,
	                             .uid = msgs[i].uid,
	                             .modseq = 100 + i,
	                             .size = msgs[i].len,
	                             .internal_date = 1764633600 + (int64_t)i * 3600,
	                             .flags = i == 0 ? "\\Seen" : "",
	                             .blob_id = msgs[i].blob_id};
	return it;
}

/* Writes the response with the given budget per call; returns it malloc'd
 * ("ERR <rc> <error>" on failure), *calls_r the number of calls. */
static char *write_all(struct store *st, const struct imap_fetch *f, size_t i, size_t budget,
                       unsigned *calls_r)
{
	struct imap_fetch_item it = item_of(i);
	struct imap_fetch_cursor *cur = NULL;
	struct evbuffer *out = evbuffer_new();
	char *error = NULL;
	int r;
	unsigned calls = 0;
	do {
		size_t before = evbuffer_get_length(out);
		r = imap_fetch_write(f, st, &it, use_utf8, &cur, out, budget, &error);
		calls++;
		/* a call stops soon after its budget: by at most one non-literal item */
		if (r == 0 && evbuffer_get_length(out) - before < budget)
			r = -99;
	} while (r == 0 && calls < 100000);
	char *s;
	if (r != 1) {
		s = malloc(300);
		snprintf(s, 300, "ERR %d %s", r, error ? error : "");
		imap_fetch_cursor_free(&cur);
	} else {
		/* NUL octets shown as "<NUL>" so that responses compare as strings */
		size_t n = evbuffer_get_length(out), k = 0;
		char *raw = malloc(n + 1);
		evbuffer_remove(out, raw, n);
		s = malloc(n * 5 + 1);
		for (size_t j = 0; j < n; j++) {
			if (raw[j] == '\0') {
				memcpy(s + k, "<NUL>", 5);
				k += 5;
			} else {
				s[k++] = raw[j];
			}
		}
		s[k] = '\0';
		free(raw);
	}
	CHECK(cur == NULL);
	free(error);
	evbuffer_free(out);
	if (calls_r != NULL)
		*calls_r = calls;
	return s;
}

/* The response to "FETCH <seq of msg> <atts>", checked to be the same with a
 * budget of 100 octets (and of 1) per call as in one call. */
static char *fetch(struct store *st, size_t i, const char *atts)
{
	struct imap_fetch *f = NULL;
	const char *err = NULL;
	if (compile(atts, false, &f, &err) != 1) {
		char *s = malloc(300);
		snprintf(s, 300, "BAD %s", err);
		return s;
	}
	char *one = write_all(st, f, i, SIZE_MAX, NULL);
	unsigned calls;
	char *small = write_all(st, f, i, 100, &calls);
	char *tiny = write_all(st, f, i, 1, NULL);
	CHECK_STR(small, one);
	CHECK_STR(tiny, one);
	free(small);
	free(tiny);
	imap_fetch_free(&f);
	return one;
}

#define CHECK_FETCH(st, i, atts, want)                                                             \
	do {                                                                                       \
		char *got_ = fetch(st, i, atts);                                                   \
		CHECK_STR(got_, want);                                                             \
		free(got_);                                                                        \
	} while (0)

enum { SIMPLE, ALT, MIXED, NESTED, NOEND, NOBODY, EIGHTBIT, LF, BIN };

static void test_simple_items(struct store *st)
{
	CHECK_FETCH(st, SIMPLE, "FLAGS", "* 1 FETCH (FLAGS (\\Seen))\r\n");
	CHECK_FETCH(st, ALT, "FLAGS", "* 2 FETCH (FLAGS ())\r\n");
	CHECK_FETCH(st, SIMPLE, "(UID RFC822.SIZE INTERNALDATE MODSEQ)",
	            "* 1 FETCH (UID 1 RFC822.SIZE 88 INTERNALDATE \" 2-Dec-2025 00:00:00 +0000\" "
	            "MODSEQ (100))\r\n");
	CHECK_FETCH(st, ALT, "INTERNALDATE",
	            "* 2 FETCH (INTERNALDATE \" 2-Dec-2025 01:00:00 +0000\")\r\n");
	CHECK_FETCH(st, SIMPLE, "FAST",
	            "* 1 FETCH (FLAGS (\\Seen) INTERNALDATE \" 2-Dec-2025 00:00:00 +0000\" "
	            "RFC822.SIZE 88)\r\n");
	/* duplicates are answered once */
	CHECK_FETCH(st, SIMPLE, "(flags FLAGS uid)", "* 1 FETCH (FLAGS (\\Seen) UID 1)\r\n");
	/* UID FETCH: UID first */
	struct imap_fetch *f = NULL;
	const char *err;
	CHECK(compile("(FLAGS UID)", true, &f, &err) == 1);
	char *s = write_all(st, f, SIMPLE, SIZE_MAX, NULL);
	CHECK_STR(s, "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n");
	free(s);
	CHECK(!imap_fetch_needs_msg(f) && !imap_fetch_sets_seen(f) && !imap_fetch_wants_modseq(f));
	imap_fetch_free(&f);
	/* FLAGS and MODSEQ added by the session, once */
	CHECK(compile("(BODY[HEADER.FIELDS (TO)] MODSEQ)", false, &f, &err) == 1);
	struct imap_fetch_item it = item_of(SIMPLE);
	it.add_flags = it.add_modseq = true;
	struct imap_fetch_cursor *cur = NULL;
	struct evbuffer *out = evbuffer_new();
	char *error = NULL;
	CHECK(imap_fetch_write(f, st, &it, false, &cur, out, SIZE_MAX, &error) == 1);
	size_t n = evbuffer_get_length(out);
	char got[200] = "";
	if (n < sizeof(got))
		evbuffer_remove(out, got, n);
	CHECK_STR(got, "* 1 FETCH (BODY[HEADER.FIELDS (TO)] {24}\r\nTo: bob@example.test\r\n\r\n "
	               "MODSEQ (100) FLAGS (\\Seen))\r\n");
	evbuffer_free(out);
	imap_fetch_free(&f);
	CHECK(f == NULL);
}

static void test_sections(struct store *st)
{
	CHECK_FETCH(st, SIMPLE, "BODY[]",
	            "* 1 FETCH (BODY[] {88}\r\n"
	            "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
	            "\r\nHello\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "RFC822",
	            "* 1 FETCH (RFC822 {88}\r\n"
	            "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
	            "\r\nHello\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "(BODY.PEEK[HEADER] BODY[TEXT])",
	            "* 1 FETCH (BODY[HEADER] {74}\r\n"
	            "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
	            "\r\n BODY[TEXT] {14}\r\nHello\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "(RFC822.HEADER RFC822.TEXT)",
	            "* 1 FETCH (RFC822.HEADER {74}\r\n"
	            "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
	            "\r\n RFC822.TEXT {14}\r\nHello\r\nworld\r\n)\r\n");
	/* a single-part message is its own part 1 */
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[1]",
	            "* 1 FETCH (BODY[1] {14}\r\nHello\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[2]", "* 1 FETCH (BODY[2] NIL)\r\n");

	/* partials: inside, at the end, beyond it */
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[]<0.4>", "* 1 FETCH (BODY[]<0> {4}\r\nFrom)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[TEXT]<7.100>",
	            "* 1 FETCH (BODY[TEXT]<7> {7}\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[TEXT]<14.1>", "* 1 FETCH (BODY[TEXT]<14> {0}\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[TEXT]<13.1>",
	            "* 1 FETCH (BODY[TEXT]<13> {1}\r\n\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[]<1000.5>", "* 1 FETCH (BODY[]<1000> {0}\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[]<9223372036854775807.1>",
	            "* 1 FETCH (BODY[]<9223372036854775807> {0}\r\n)\r\n");

	/* HEADER.FIELDS: names case-insensitive, echoed in upper case */
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[HEADER.FIELDS (subject FROM)]",
	            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {52}\r\n"
	            "From: Alice <alice@example.test>\r\nSubject: hello\r\n\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[HEADER.FIELDS.NOT (From \"subject\")]",
	            "* 1 FETCH (BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {24}\r\n"
	            "To: bob@example.test\r\n\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[HEADER.FIELDS (X-None)]",
	            "* 1 FETCH (BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BODY.PEEK[HEADER.FIELDS (TO)]<4.10>",
	            "* 1 FETCH (BODY[HEADER.FIELDS (TO)]<4> {10}\r\nbob@exampl)\r\n");
	/* bare LF, folded fields, blanks: byte for byte */
	CHECK_FETCH(
	    st, LF, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
	    "* 8 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {23}\r\nsubject: bare\n folded\n\n)\r\n");
	CHECK_FETCH(st, LF, "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)]",
	            "* 8 FETCH (BODY[HEADER.FIELDS.NOT (SUBJECT)] {33}\r\n"
	            "From: a@example.test\nX-Other: 1\n\n)\r\n");
	CHECK_FETCH(st, LF, "BODY.PEEK[]",
	            "* 8 FETCH (BODY[] {60}\r\n"
	            "From: a@example.test\nsubject: bare\n folded\n"
	            "X-Other: 1\n\nline\n)\r\n");
	CHECK_FETCH(st, LF, "BODY.PEEK[TEXT]", "* 8 FETCH (BODY[TEXT] {5}\r\nline\n)\r\n");

	/* no body at all: the header is everything, the text is empty */
	CHECK_FETCH(st, NOBODY, "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
	            "* 6 FETCH (BODY[HEADER] {38}\r\nFrom: a@example.test\r\nSubject: no body "
	            "BODY[TEXT] {0}\r\n)\r\n");
	CHECK_FETCH(
	    st, NOBODY, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
	    "* 6 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {20}\r\nSubject: no body\r\n\r\n)\r\n");
	/* 8-bit header octets go out as they are */
	CHECK_FETCH(st, EIGHTBIT, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
	            "* 7 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {20}\r\nSubject: "
	            "Gr\xc3\xbc\xc3\x9f"
	            "e\r\n\r\n)\r\n");
}

static void test_mime_parts(struct store *st)
{
	CHECK_FETCH(st, ALT, "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[3])",
	            "* 2 FETCH (BODY[1] {5}\r\nplain BODY[2] {11}\r\n<b>html</b> BODY[3] NIL)\r\n");
	CHECK_FETCH(st, ALT, "BODY.PEEK[2.MIME]",
	            "* 2 FETCH (BODY[2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)\r\n");
	CHECK_FETCH(st, MIXED, "BODY.PEEK[1.2.MIME]",
	            "* 3 FETCH (BODY[1.2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)\r\n");
	CHECK_FETCH(st, MIXED, "BODY.PEEK[1.2]", "* 3 FETCH (BODY[1.2] {8}\r\n<p>x</p>)\r\n");
	CHECK_FETCH(st, MIXED, "BODY.PEEK[1.1]",
	            "* 3 FETCH (BODY[1.1] {31}\r\ncaf=C3=A9 soft=\r\nbreak  \r\nx=3Dy)\r\n");
	CHECK_FETCH(st, MIXED, "BODY.PEEK[2]",
	            "* 3 FETCH (BODY[2] {18}\r\nAAECAwRoZWxs\r\nbw==)\r\n");
	/* HEADER/TEXT of a part that is not a message are empty */
	CHECK_FETCH(st, MIXED, "BODY.PEEK[2.HEADER]", "* 3 FETCH (BODY[2.HEADER] {0}\r\n)\r\n");
	/* missing final boundary: the last part runs to the end */
	CHECK_FETCH(st, NOEND, "(BODY.PEEK[1] BODY.PEEK[2])",
	            "* 5 FETCH (BODY[1] {5}\r\nfirst BODY[2] {14}\r\nunterminated\r\n)\r\n");

	/* nested message/rfc822: HEADER and TEXT are the embedded message's */
	CHECK_FETCH(
	    st, NESTED, "BODY.PEEK[2.HEADER]",
	    "* 4 FETCH (BODY[2.HEADER] {87}\r\nFrom: inner@example.test\r\nSubject: inner\r\n"
	    "Content-Type: multipart/mixed; boundary=i\r\n\r\n)\r\n");
	CHECK_FETCH(
	    st, NESTED, "BODY.PEEK[2.HEADER.FIELDS (subject)]",
	    "* 4 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n)\r\n");
	CHECK_FETCH(st, NESTED, "BODY.PEEK[2.1]", "* 4 FETCH (BODY[2.1] {9}\r\ninner one)\r\n");
	CHECK_FETCH(st, NESTED, "BODY.PEEK[2.2.MIME]",
	            "* 4 FETCH (BODY[2.2.MIME] {63}\r\nContent-Type: text/plain\r\n"
	            "Content-Transfer-Encoding: base64\r\n\r\n)\r\n");
	CHECK_FETCH(st, NESTED, "BINARY.PEEK[2.2]", "* 4 FETCH (BINARY[2.2] {9}\r\ninner two)\r\n");
	CHECK_FETCH(st, NESTED, "BODY.PEEK[2.TEXT]<0.4>",
	            "* 4 FETCH (BODY[2.TEXT]<0> {4}\r\n--i\r)\r\n");
	CHECK_FETCH(st, NESTED, "BODY.PEEK[2.MIME]",
	            "* 4 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)\r\n");
}

static void test_binary(struct store *st)
{
	/* base64 with a NUL: literal8 */
	CHECK_FETCH(st, MIXED, "BINARY.PEEK[2]",
	            "* 3 FETCH (BINARY[2] ~{10}\r\n<NUL>\x01\x02\x03\x04hello)\r\n");
	CHECK_FETCH(st, MIXED, "BINARY.PEEK[2]<5.100>",
	            "* 3 FETCH (BINARY[2]<5> {5}\r\nhello)\r\n");
	CHECK_FETCH(st, MIXED, "BINARY.PEEK[2]<4.2>", "* 3 FETCH (BINARY[2]<4> {2}\r\n\x04h)\r\n");
	CHECK_FETCH(st, MIXED, "BINARY.SIZE[2]", "* 3 FETCH (BINARY.SIZE[2] 10)\r\n");
	/* quoted-printable: soft breaks, trailing blanks, =XX */
	CHECK_FETCH(st, MIXED, "BINARY.PEEK[1.1]",
	            "* 3 FETCH (BINARY[1.1] {20}\r\ncaf\xc3\xa9 softbreak\r\nx=y)\r\n");
	CHECK_FETCH(st, MIXED, "(BINARY.SIZE[1.1] BINARY.SIZE[1.2] BINARY.SIZE[9])",
	            "* 3 FETCH (BINARY.SIZE[1.1] 20 BINARY.SIZE[1.2] 8 BINARY.SIZE[9] 0)\r\n");
	CHECK_FETCH(st, MIXED, "BINARY.PEEK[9]", "* 3 FETCH (BINARY[9] NIL)\r\n");
	/* identity encodings and BINARY[] are the octets as stored */
	CHECK_FETCH(st, SIMPLE, "BINARY.PEEK[1]",
	            "* 1 FETCH (BINARY[1] {14}\r\nHello\r\nworld\r\n)\r\n");
	CHECK_FETCH(st, SIMPLE, "BINARY.PEEK[]<0.4>", "* 1 FETCH (BINARY[]<0> {4}\r\nFrom)\r\n");
	/* binary: as stored, literal8 only when the octets sent hold the NUL */
	CHECK_FETCH(st, BIN, "BINARY.PEEK[1]", "* 9 FETCH (BINARY[1] ~{7}\r\nab<NUL>cd\r\n)\r\n");
	CHECK_FETCH(st, BIN, "BINARY.PEEK[1]<3.9>", "* 9 FETCH (BINARY[1]<3> {4}\r\ncd\r\n)\r\n");
	CHECK_FETCH(st, BIN, "BINARY.PEEK[1]<2.1>", "* 9 FETCH (BINARY[1]<2> ~{1}\r\n<NUL>)\r\n");
	CHECK_FETCH(st, BIN, "BINARY.SIZE[1]", "* 9 FETCH (BINARY.SIZE[1] 7)\r\n");
	/* BODY[...] sends the octets as stored, in a plain literal */
	CHECK_FETCH(st, BIN, "BODY.PEEK[TEXT]", "* 9 FETCH (BODY[TEXT] {7}\r\nab<NUL>cd\r\n)\r\n");
	/* an unknown encoding: nothing written, IMAP_FETCH_UNKNOWN_CTE */
	CHECK_FETCH(st, MIXED, "(FLAGS BINARY.PEEK[3])",
	            "ERR -2 Unknown Content-Transfer-Encoding x-uuencode");
	CHECK_FETCH(st, MIXED, "BINARY.SIZE[3]",
	            "ERR -2 Unknown Content-Transfer-Encoding x-uuencode");
	/* BODY[3] of the same part is fine */
	CHECK_FETCH(st, MIXED, "BODY.PEEK[3]", "* 3 FETCH (BODY[3] {11}\r\nbegin 644 x)\r\n");
}

static void test_structure(struct store *st)
{
	CHECK_FETCH(st, SIMPLE, "BODY",
	            "* 1 FETCH (BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	            "\"7bit\" 14 2))\r\n");
	CHECK_FETCH(
	    st, ALT, "BODYSTRUCTURE",
	    "* 2 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 5 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL "
	    "NIL \"7bit\" 11 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"XX\") NIL NIL "
	    "NIL))\r\n");
}

#define ALICE "((\"Alice\" NIL \"alice\" \"example.test\"))"
#define INNER "((NIL NIL \"inner\" \"example.test\"))"
#define JORG8 "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"example.test\"))"
#define JORGU "((\"J\xc3\xb6rg\" NIL \"j\" \"example.test\"))"

static void test_envelope(struct store *st)
{
	CHECK_FETCH(st, SIMPLE, "ENVELOPE",
	            "* 1 FETCH (ENVELOPE (NIL \"hello\" " ALICE " " ALICE " " ALICE
	            " ((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL NIL))\r\n");
	CHECK_FETCH(st, SIMPLE, "ALL",
	            "* 1 FETCH (FLAGS (\\Seen) INTERNALDATE \" 2-Dec-2025 00:00:00 +0000\" "
	            "RFC822.SIZE 88 ENVELOPE (NIL \"hello\" " ALICE " " ALICE " " ALICE
	            " ((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL NIL))\r\n");
	CHECK_FETCH(
	    st, NOBODY, "(ENVELOPE BODYSTRUCTURE)",
	    "* 6 FETCH (ENVELOPE (NIL \"no body\" ((NIL NIL \"a\" \"example.test\")) ((NIL "
	    "NIL \"a\" \"example.test\")) ((NIL NIL \"a\" \"example.test\")) NIL NIL NIL NIL "
	    "NIL) BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 0 0 NIL NIL NIL NIL))\r\n");
	/* 8-bit strings: literals, or quoted with UTF8=ACCEPT */
	CHECK_FETCH(st, EIGHTBIT, "ENVELOPE",
	            "* 7 FETCH (ENVELOPE (NIL {7}\r\nGr\xc3\xbc\xc3\x9f"
	            "e " JORG8 " " JORG8 " " JORG8 " NIL NIL NIL NIL NIL))\r\n");
	use_utf8 = true;
	CHECK_FETCH(st, EIGHTBIT, "ENVELOPE",
	            "* 7 FETCH (ENVELOPE (NIL \"Gr\xc3\xbc\xc3\x9f"
	            "e\" " JORGU " " JORGU " " JORGU " NIL NIL NIL NIL NIL))\r\n");
	use_utf8 = false;
	/* the envelope of an embedded message inside BODY and BODYSTRUCTURE */
	CHECK_FETCH(
	    st, NESTED, "BODYSTRUCTURE",
	    "* 4 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	    "\"7bit\" 9 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 218 "
	    "(NIL \"inner\" " INNER " " INNER " " INNER " NIL NIL NIL NIL NIL) ((\"text\" "
	    "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL "
	    "NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 12 0 NIL "
	    "NIL NIL NIL) \"mixed\" (\"boundary\" \"i\") NIL NIL NIL) 13 NIL NIL NIL NIL) "
	    "\"mixed\" (\"boundary\" \"o\") NIL NIL NIL))\r\n");
	CHECK_FETCH(
	    st, NESTED, "BODY",
	    "* 4 FETCH (BODY ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
	    "9 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 218 (NIL \"inner\" " INNER " " INNER
	    " " INNER " NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 9 0)(\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"base64\" 12 0) \"mixed\") 13) \"mixed\"))\r\n");
	CHECK_FETCH(
	    st, MIXED, "BODYSTRUCTURE",
	    "* 3 FETCH (BODYSTRUCTURE (((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
	    "\"quoted-printable\" 31 2 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL) \"alternative\" "
	    "(\"boundary\" \"b2\") NIL NIL NIL)(\"application\" \"octet-stream\" (\"name\" "
	    "\"a.bin\") NIL NIL \"base64\" 18 NIL (\"attachment\" (\"filename\" \"a.bin\")) "
	    "NIL NIL)(\"application\" \"x-thing\" NIL NIL NIL \"x-uuencode\" 11 NIL NIL NIL "
	    "NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n");
}

static void test_compile_errors(void)
{
	static const struct {
		const char *atts;
		const char *error;
	} cases[] = {
	    {"FOO", "Unknown FETCH attribute"},
	    {"(FLAGS FOO)", "Unknown FETCH attribute"},
	    {"BODY[", "PARSE Invalid section"},
	    {"BODY[1", "PARSE Invalid section"},
	    {"BODY[]<1.0>", "PARSE Invalid partial"},
	    {"BODY[]<1>", "PARSE Invalid partial"},
	    {"BODY[MIME]", "PARSE Invalid section"},
	    {"BINARY[HEADER]", "PARSE Invalid section"},
	    {"BINARY.SIZE[1]<0.1>", "PARSE BINARY.SIZE takes no partial"},
	    {"FLAGS[1]", "Only BODY, BODY.PEEK and BINARY take a section"},
	    {"RFC822.HEADER[]", "Only BODY, BODY.PEEK and BINARY take a section"},
	    {"RFC822<0.5>", "Only BODY and BINARY sections take a partial"},
	    {"()", "Empty FETCH attribute list"},
	    {"(FLAGS (UID))", "Invalid FETCH attribute"},
	    {"(FLAGS ALL)", "FETCH macros cannot be combined with other attributes"},
	    {"\"FLAGS\"", "Invalid FETCH attribute"},
	    {"FLAGS UID", "Unexpected arguments after FETCH attributes"},
	    {"FLAGS (CHANGEDSINCE)", "CHANGEDSINCE needs a mod-sequence value"},
	    {"FLAGS (CHANGEDSINCE x)", "CHANGEDSINCE needs a mod-sequence value"},
	    {"FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "Duplicate FETCH modifier"},
	    {"FLAGS (FOO)", "Unknown FETCH modifier"},
	    {"FLAGS ()", "Invalid FETCH modifiers"},
	    {"FLAGS (CHANGEDSINCE 1 VANISHED)", "VANISHED is only allowed with UID FETCH"},
	    {"FLAGS (CHANGEDSINCE 1) x", "Unexpected arguments after FETCH modifiers"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct imap_fetch *f = (struct imap_fetch *)1;
		const char *err = NULL;
		int r = compile(cases[k].atts, false, &f, &err);
		CHECK(r == -1);
		if (r != -1 || err == NULL || strcmp(err, cases[k].error) != 0)
			fprintf(stderr, "case %s: got %s\n", cases[k].atts, r == -1 ? err : "ok");
		CHECK_STR(err, cases[k].error);
		if (strncmp(cases[k].error, "PARSE", 5) != 0)
			CHECK(f == NULL);
	}
	struct imap_fetch *f = NULL;
	const char *err = NULL;
	/* nothing after the sequence set */
	CHECK(imap_fetch_compile(NULL, 0, 0, false, &f, &err) == -1);
	CHECK_STR(err, "Missing FETCH attributes");
	CHECK(compile("FLAGS (VANISHED)", true, &f, &err) == -1);
	CHECK_STR(err, "VANISHED needs CHANGEDSINCE");
}

static void test_compile_flags(struct store *st)
{
	struct imap_fetch *f = NULL;
	const char *err = NULL;
	CHECK(compile("FLAGS (CHANGEDSINCE 12345 VANISHED)", true, &f, &err) == 1);
	CHECK(imap_fetch_changedsince(f) == 12345 && imap_fetch_vanished(f));
	CHECK(imap_fetch_wants_modseq(f) && !imap_fetch_needs_msg(f));
	/* CHANGEDSINCE implies MODSEQ */
	char *s = write_all(st, f, ALT, SIZE_MAX, NULL);
	CHECK_STR(s, "* 2 FETCH (UID 2 FLAGS () MODSEQ (101))\r\n");
	free(s);
	imap_fetch_free(&f);
	CHECK(compile("(body.peek[] BINARY.PEEK[1] BINARY.SIZE[1] RFC822.HEADER)", false, &f,
	              &err) == 1);
	CHECK(imap_fetch_needs_msg(f) && !imap_fetch_sets_seen(f));
	imap_fetch_free(&f);
	static const char *const seen[] = {"BODY[]", "RFC822", "RFC822.TEXT", "BINARY[1]",
	                                   "(FLAGS BODY[1.MIME])"};
	for (size_t k = 0; k < sizeof(seen) / sizeof(seen[0]); k++) {
		CHECK(compile(seen[k], false, &f, &err) == 1);
		CHECK(imap_fetch_sets_seen(f));
		imap_fetch_free(&f);
	}
	CHECK(compile("ALL", false, &f, &err) == 1);
	CHECK(imap_fetch_needs_msg(f));
	imap_fetch_free(&f);
	CHECK(compile("FLAGS (CHANGEDSINCE 0)", false, &f, &err) == 1);
	CHECK(imap_fetch_changedsince(f) == 0 && imap_fetch_wants_modseq(f));
	imap_fetch_free(&f);
	imap_fetch_free(&f); /* NULL is fine */
}

/* A message whose blob is gone gets no response. */
static void test_gone(struct store *st)
{
	struct imap_fetch *f = NULL;
	const char *err = NULL;
	CHECK(compile("BODY.PEEK[]", false, &f, &err) == 1);
	struct imap_fetch_item it = item_of(SIMPLE);
	it.blob_id = "0000000000000000000000000000000000000000000000000000000000000000";
	struct imap_fetch_cursor *cur = NULL;
	struct evbuffer *out = evbuffer_new();
	char *error = NULL;
	CHECK(imap_fetch_write(f, st, &it, false, &cur, out, SIZE_MAX, &error) == 1);
	CHECK(evbuffer_get_length(out) == 0 && cur == NULL);
	/* abandoning a response half-way frees everything */
	it = item_of(SIMPLE);
	CHECK(imap_fetch_write(f, st, &it, false, &cur, out, 10, &error) == 0);
	CHECK(cur != NULL);
	imap_fetch_cursor_free(&cur);
	CHECK(cur == NULL);
	free(error);
	evbuffer_free(out);
	imap_fetch_free(&f);
}

/* imap_msg: bytes by range and the tree, for every message of the corpus. */
static void test_msg(struct store *st)
{
	for (size_t i = 0; i < NMSGS; i++) {
		struct imap_msg m;
		char *error = NULL;
		CHECK(imap_msg_open(&m, st, msgs[i].blob_id, true, &error) == 1);
		CHECK(m.have_tree && m.tree.nparts > 0);
		CHECK(imap_msg_size(&m) == msgs[i].len);
		char buf[8];
		CHECK(imap_msg_read(&m, buf, sizeof(buf), 1) == 8 &&
		      memcmp(buf, msgs[i].data + 1, 8) == 0);
		CHECK(imap_msg_read(&m, buf, sizeof(buf), msgs[i].len - 2) == 2);
		CHECK(imap_msg_read(&m, buf, sizeof(buf), msgs[i].len) == 0);
		struct mime_tree t;
		CHECK(mime_parse(msgs[i].data, msgs[i].len, NULL, &t) == 1);
		CHECK(mime_tree_equal(&t, &m.tree) == 1);
		mime_tree_free(&t);
		imap_msg_close(&m);
		imap_msg_close(&m);
		CHECK(imap_msg_open(&m, st, msgs[i].blob_id, false, &error) == 1);
		CHECK(!m.have_tree);
		imap_msg_close(&m);
		free(error);
	}
	/* the parsed tree went into the store's cache */
	for (size_t i = 0; i < NMSGS; i++) {
		char *data = NULL;
		size_t len = 0;
		struct mime_tree a, b;
		CHECK(store_blob_cache_get(st, msgs[i].blob_id, &data, &len, NULL) == 1);
		CHECK(mime_tree_decode(data, len, &a) == 1);
		CHECK(mime_parse(msgs[i].data, msgs[i].len, NULL, &b) == 1);
		CHECK(mime_tree_equal(&a, &b) == 1);
		mime_tree_free(&a);
		mime_tree_free(&b);
		free(data);
	}
	/* the cache is read: a (wrong) tree put there is the one opened */
	struct imap_msg m;
	struct mime_tree other, t;
	struct buf enc;
	buf_init(&enc, 0);
	CHECK(mime_parse(m_alt, sizeof(m_alt) - 1, NULL, &other) == 1);
	CHECK(mime_tree_encode(&other, &enc) == 1);
	CHECK(store_blob_cache_put(st, msgs[LF].blob_id, enc.data, enc.len, NULL) == 1);
	CHECK(imap_msg_open(&m, st, msgs[LF].blob_id, true, NULL) == 1);
	CHECK(m.have_tree && mime_tree_equal(&m.tree, &other) == 1);
	imap_msg_close(&m);
	/* an entry that does not decode is a miss: parsed again and replaced */
	CHECK(store_blob_cache_put(st, msgs[LF].blob_id, "HMT\1garbage", 11, NULL) == 1);
	CHECK(imap_msg_open(&m, st, msgs[LF].blob_id, true, NULL) == 1);
	CHECK(mime_parse(m_lf, sizeof(m_lf) - 1, NULL, &t) == 1);
	CHECK(m.have_tree && mime_tree_equal(&m.tree, &t) == 1);
	imap_msg_close(&m);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_blob_cache_get(st, msgs[LF].blob_id, &data, &len, NULL) == 1);
	CHECK(len > 11);
	free(data);
	mime_tree_free(&t);
	mime_tree_free(&other);
	buf_free(&enc);
	CHECK(imap_msg_open(&m, st,
	                    "00000000000000000000000000000000000000000000000000000000000000ff",
	                    true, NULL) == 0);
	imap_msg_close(&m);
}

/* A large message in pieces: the same bytes whatever the budget, and the
 * pieces stay near the budget (the literal is not built in memory). */
static void test_large(struct store *st)
{
	size_t body = 300000;
	size_t hl = strlen(
	    "Subject: big\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	char *msg = malloc(hl + body);
	memcpy(msg,
	       "Subject: big\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n",
	       hl);
	for (size_t k = 0, j = 0; k < body; k++)
		msg[hl + k] = (k % 78 == 76) ? '\r' : (k % 78 == 77) ? '\n' : "QUJD"[j++ % 4];
	const char *accts[] = {"u@example.test"};
	uint32_t uid;
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = msg, .len = hl + body};
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	free(msg);
	/* find its blob: the last one listed */
	struct corpus saved = msgs[0];
	msgs[0].uid = uid;
	msgs[0].blob_id[0] = '\0';
	CHECK(store_message_list(st, "u@example.test", "INBOX", list_cb, NULL, NULL) == 1);
	msgs[0].len = hl + body;
	struct imap_fetch *f = NULL;
	const char *err;
	CHECK(compile("(BODY.PEEK[TEXT] BINARY.PEEK[1] BINARY.SIZE[1])", false, &f, &err) == 1);
	unsigned calls1, calls2;
	char *one = write_all(st, f, 0, SIZE_MAX, &calls1);
	char *many = write_all(st, f, 0, 4096, &calls2);
	CHECK(calls1 == 1 && calls2 > 100);
	CHECK_STR(many, one);
	/* 3846 lines of 76 base64 characters and a CRLF, then 12 characters:
	 * 292308 characters, 219231 octets decoded */
	CHECK(strstr(one, "BODY[TEXT] {300000}\r\nQUJD") != NULL);
	CHECK(strstr(one, "BINARY[1] {219231}\r\nABCABC") != NULL);
	CHECK(strstr(one, "BINARY.SIZE[1] 219231)\r\n") != NULL);
	free(one);
	free(many);
	imap_fetch_free(&f);
	msgs[0] = saved;
}

/* quoted-printable across the 64 KiB reads: a 17-octet unit, so that the
 * reads end at different places in it */
static void test_large_qp(struct store *st)
{
	static const char unit[] = "ab=3D  =\r\ncd  \r\n";
	static const char hdr[] =
	    "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
	size_t units = 20000, hl = sizeof(hdr) - 1, ul = sizeof(unit) - 1;
	char *msg = malloc(hl + units * ul);
	memcpy(msg, hdr, hl);
	for (size_t k = 0; k < units; k++)
		memcpy(msg + hl + k * ul, unit, ul);
	const char *accts[] = {"u@example.test"};
	uint32_t uid;
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = msg, .len = hl + units * ul};
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	free(msg);
	struct corpus saved = msgs[0];
	msgs[0].uid = uid;
	msgs[0].blob_id[0] = '\0';
	CHECK(store_message_list(st, "u@example.test", "INBOX", list_cb, NULL, NULL) == 1);
	msgs[0].len = hl + units * ul;
	struct imap_fetch *f = NULL;
	const char *err;
	CHECK(compile("(BINARY.SIZE[1] BINARY.PEEK[1]<179991.100>)", false, &f, &err) == 1);
	char *one = write_all(st, f, 0, SIZE_MAX, NULL);
	char *many = write_all(st, f, 0, 333, NULL);
	CHECK_STR(many, one);
	/* each unit decodes to "ab=  cd\r\n" (9 octets) */
	CHECK_STR(one,
	          "* 1 FETCH (BINARY.SIZE[1] 180000 BINARY[1]<179991> {9}\r\nab=  cd\r\n)\r\n");
	free(one);
	free(many);
	imap_fetch_free(&f);
	msgs[0] = saved;
}

/* A field name longer than HF_NAME_MAX matches nothing but is kept whole by
 * HEADER.FIELDS.NOT. */
static void test_long_field_name(struct store *st)
{
	char msg[4000];
	size_t n = 0;
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "Subject: s\r\nX-");
	memset(msg + n, 'a', 1200);
	n += 1200;
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, ": v\r\n folded\r\nTo: t\r\n\r\nbody\r\n");
	const char *accts[] = {"u@example.test"};
	uint32_t uid;
	struct store_delivery d = {.accounts = accts, .naccounts = 1, .data = msg, .len = n};
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	struct corpus saved = msgs[0];
	msgs[0].uid = uid;
	msgs[0].blob_id[0] = '\0';
	CHECK(store_message_list(st, "u@example.test", "INBOX", list_cb, NULL, NULL) == 1);
	char *got = fetch(st, 0, "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)]");
	char want[4000];
	int w =
	    snprintf(want, sizeof(want), "* 1 FETCH (BODY[HEADER.FIELDS.NOT (SUBJECT)] {%zu}\r\n",
	             n - strlen("Subject: s\r\n") - strlen("body\r\n"));
	memcpy(want + w, msg + 12, n - 12 - 6);
	snprintf(want + w + (n - 18), sizeof(want) - (size_t)w - (n - 18), ")\r\n");
	CHECK_STR(got, want);
	free(got);
	CHECK_FETCH(st, 0, "BODY.PEEK[HEADER.FIELDS (TO X-AAAA)]",
	            "* 1 FETCH (BODY[HEADER.FIELDS (TO X-AAAA)] {9}\r\nTo: t\r\n\r\n)\r\n");
	msgs[0] = saved;
}

int main(void)
{
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct store *st = setup();
	test_simple_items(st);
	test_sections(st);
	test_mime_parts(st);
	test_binary(st);
	test_structure(st);
	test_envelope(st);
	test_compile_errors();
	test_compile_flags(st);
	test_gone(st);
	test_msg(st);
	test_large(st);
	test_large_qp(st);
	test_long_field_name(st);
	store_close(&st);
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("imap_fetch");
}
